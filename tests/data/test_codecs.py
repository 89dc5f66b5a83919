"""Every codec and container this PyAV build can write: count, display order, random access equal
to sequential decoding, probe."""

from __future__ import annotations

import av
import numpy as np
import pytest

from data.video_helpers import CODECS, INDEX_H, INDEX_W, read_indices, skip_without_encoder
from timesformer.data import VideoReader, probe

# XviD's packed stream ends on a frame that holds the last B-frames, which no decoder shows
# (FFmpeg's own command line decodes these counts of the 60 frames too).
FRAMES = {"xvid-packed-avi": 59, "xvid-packed-bf2-avi": 58}


@pytest.mark.parametrize(("name", "encoder"), [(c[0], c[2]) for c in CODECS])
def test_codec_random_access(codec_videos, name, encoder):
    skip_without_encoder(encoder)
    path, n = codec_videos[name], FRAMES.get(name, 60)
    reader = VideoReader(path)
    assert reader.num_frames == n
    assert VideoReader(path, exact=True).num_frames == n
    assert reader.size == (INDEX_H, INDEX_W)
    assert reader.fps == pytest.approx(25.0)
    assert read_indices(reader.get_frames(range(n))) == list(range(n))
    rng = np.random.default_rng(7)
    for _ in range(8):
        idx = rng.integers(0, n, size=int(rng.integers(1, 7)))
        assert read_indices(reader.get_frames(idx)) == idx.tolist(), idx


@pytest.mark.parametrize(("name", "encoder"), [(c[0], c[2]) for c in CODECS])
def test_random_access_equals_sequential_decoding(codec_videos, name, encoder):
    skip_without_encoder(encoder)
    path = codec_videos[name]
    sequential = dict(VideoReader(path).iter_frames())
    assert list(sequential) == list(range(FRAMES.get(name, 60)))
    reader = VideoReader(path)
    for idx in ([40, 3, 27], [59, 58, 0], [13, 14, 15, 16], [11, 12, 24, 25]):
        idx = [i for i in idx if i in sequential]
        got = reader.get_frames(idx).numpy()
        for i, frame in zip(idx, got, strict=True):
            # One decoder, the same references: decoding from a keyframe is exact.
            np.testing.assert_array_equal(frame, sequential[i], err_msg=f"frame {i}")


@pytest.mark.parametrize("name", ["xvid-packed-avi", "xvid-packed-bf2-avi"])
def test_packed_b_frames_are_what_the_avi_holds(codec_videos, name):
    """The premise of the xvid-packed cases: N-VOP packets (a few bytes) follow packets that
    hold a P- and a B-frame, and the decoder puts out timestamps against their order."""
    skip_without_encoder("libxvid")
    with av.open(str(codec_videos[name])) as container:
        stream = container.streams.video[0]
        sizes = [packet.size for packet in container.demux(stream) if packet.size]
    with av.open(str(codec_videos[name])) as container:
        out = [frame.pts for frame in container.decode(video=0)]
    assert sum(size < 20 for size in sizes) >= 10
    assert out != sorted(out)


@pytest.mark.parametrize(("name", "encoder"), [(c[0], c[2]) for c in CODECS])
def test_codec_probe(codec_videos, name, encoder):
    skip_without_encoder(encoder)
    info, n = probe(codec_videos[name]), FRAMES.get(name, 60)
    assert (info.num_frames, info.height, info.width) == (n, INDEX_H, INDEX_W)
    assert info.duration == pytest.approx(n / 25)
    # Headers that give no count (MPEG-PS/TS, Matroska, Ogg) say None, not a wrong number.
    assert info.header_frames in (None, 60)
