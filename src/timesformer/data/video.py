"""Frame-accurate video decoding with PyAV that converts only the frames asked for.

``VideoReader(path).get_frames([3, 40, 41])`` returns a uint8 tensor (3, H, W, 3): frames 3, 40
and 41 in display order. Frame indices count the frames that really decode (0..num_frames-1),
not what the header claims: header counts lie in real files, so the count comes from reading the
packets (cheap, no decoding) and is replaced by a full decode pass when the packets cannot be
trusted (no timestamps, duplicates) or when decoding finds frames missing.

Display order is the order of the presentation timestamps where the container stores them (mp4,
mkv, webm, ogg, mpeg-ps/ts). AVI stores none (FFmpeg derives them from the decode order), and
DivX/XviD "packed B-frames" (UCF101, HMDB51) put two frames in one packet: there the timestamps
are not in display order, so the index of such files comes from decoding every frame, in the
order the decoder outputs them, which is the display order. A decode that sees frames come out
against their timestamps' order in any other file switches that file to the same treatment.

Random access seeks to the keyframe before each wanted frame (once per keyframe interval that
holds wanted frames) and decodes forward from there. Only
the wanted frames are converted to RGB; for codecs whose decoders honour ``skip_frame`` (H.264,
HEVC, MPEG-1/2/4) the non-reference frames that are not wanted are not even decoded. Frames are
returned as players show them: the rotation and mirroring of phone video (the display matrix) and
non-square pixels (the sample aspect ratio, applied to the width) are applied.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
import torch
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import VideoReformatter

from timesformer.data import index_cache
from timesformer.data.errors import VideoDecodeError
from timesformer.data.index_cache import FrameIndex, build_index
from timesformer.errors import ConfigError

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReader",
    "find_videos",
    "probe",
    "report_skipped",
    "scan_folder",
    "videos_under",
]

_log = logging.getLogger(__name__)

# The file extensions of the video containers and raw video streams FFmpeg demuxes, by family
# (the list docs/video.md gives). Folder scans take these and report the files they skip.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    *(".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mj2", ".f4v"),  # MP4 / QuickTime
    *(".avi", ".divx"),  # AVI
    *(".mkv", ".mk3d", ".webm"),  # Matroska / WebM
    *(".mpg", ".mpeg", ".mpe", ".vob"),  # MPEG program stream (DVD)
    *(".ts", ".mts", ".m2ts", ".m2t"),  # MPEG transport stream (camcorders, broadcast)
    *(".m1v", ".m2v", ".mpv"),  # MPEG-1/2 video streams
    *(".ogv", ".ogg", ".ogm"),  # Ogg
    *(".flv",),  # Flash video
    *(".wmv", ".asf"),  # Windows Media
    *(".dv", ".dif"),  # DV
    *(".mxf", ".nut", ".y4m", ".ivf", ".obu"),  # MXF, NUT, YUV4MPEG, IVF (VP8/VP9/AV1), AV1
    *(".rm", ".rmvb"),  # RealMedia
    *(".h264", ".264", ".avc", ".h265", ".265", ".hevc", ".mjpeg", ".mjpg"),  # raw streams
)

# Containers whose timestamps FFmpeg derives from the decode order, and the codecs whose frames
# can come out of the decoder in another order than they went in (B-frames): together they need
# the decoder to tell the display order. MPEG-4 Part 2 needs it in any container, as DivX/XviD
# packed B-frames survive remuxing.
_DECODE_ORDER_FORMATS = frozenset({"avi"})
_REORDERING_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4", "vc1", "wmv3"})

# Decoders whose skip_frame=NONREF drops only frames that no other frame references, so skipping
# unwanted ones cannot change the wanted ones.
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4"})
_DECODE_ERRORS = (av.error.FFmpegError, OSError, EOFError, ValueError)
# PyAV's demuxer raises IndexError for a packet of a stream that appears mid-file (a corrupt
# MPEG-TS packet header can announce one), and its generator ends there.
_DEMUX_ERRORS = (*_DECODE_ERRORS, IndexError)
_LATE_FRAMES = 8  # how far past the last wanted frame decoding goes before it gives up on it


# One colour converter per thread and process, shared by all readers: a frame's own converter is
# rebuilt for every new decoder, which costs 5x the conversion of a small frame. It runs
# single-threaded: FFmpeg's automatic scaler threads would not survive the fork of DataLoader
# workers (a converter inherited with a dead thread pool hangs), and workers are the parallelism.
_CONVERTERS = threading.local()


def _converter() -> VideoReformatter:
    pid = os.getpid()
    if getattr(_CONVERTERS, "pid", None) != pid:
        _CONVERTERS.reformatter, _CONVERTERS.pid = VideoReformatter(), pid
    return _CONVERTERS.reformatter


@dataclass(frozen=True)
class VideoInfo:
    """What ``timesformer probe`` prints for one file. ``height``/``width`` are as shown: after
    the sample aspect ratio, the mirror and the rotation."""

    path: str
    format: str
    codec: str
    height: int
    width: int
    rotation: int
    mirrored: bool
    sample_aspect_ratio: str
    fps: float
    num_frames: int
    header_frames: int | None
    duration: float
    variable_frame_rate: bool
    keyframes: int

    def to_dict(self) -> dict:
        return asdict(self)


class VideoReader:
    """Random access to the frames of one video file.

    Args:
        path: the video file.
        threads: decoder threads (1 suits DataLoader workers, which already run in parallel; 0 lets
            FFmpeg choose).
        exact: count frames by decoding every one (slower) instead of reading packets.
        skip_nonref: do not decode unwanted non-reference frames where the codec allows it.

    Raises ``VideoDecodeError`` (naming the file and the reason) for anything that is not a
    decodable video: missing, empty, truncated or corrupt files, files without a video stream.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int = 1,
        exact: bool = False,
        skip_nonref: bool = True,
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self._container: av.container.InputContainer | None = None
        self._fresh = False  # container just opened: decoding starts at the first packet
        self._orientation: tuple[int, bool] | None = None  # (quarter turns, mirrored)
        self._positions: dict[int, int] | None = None  # frame timestamp -> frame index
        self._out_of_order = False  # set by _decode_wanted
        self._coded_size: tuple[int, int] | None = None  # (height, width) before rotation
        if not self.path.is_file():
            reason = "is a directory" if self.path.is_dir() else "no such file"
            raise VideoDecodeError(self.path, reason)
        if self.path.stat().st_size == 0:
            raise VideoDecodeError(self.path, "empty file")
        self._open()
        stream = self._stream
        self.codec: str = stream.codec_context.name
        self.format: str = self._container.format.name
        self.header_frames: int | None = int(stream.frames) or None
        self._time_base = stream.time_base
        self._average_rate = stream.average_rate or stream.guessed_rate
        self._skip_allowed = skip_nonref and self.codec in _SKIP_NONREF_CODECS
        self._sar = _sample_aspect_ratio(stream)
        if stream.codec_context.width and stream.codec_context.height:
            h, w = stream.codec_context.height, stream.codec_context.width
            self._coded_size = (h, _display_width(w, self._sar))
        self._index = self._load_index(exact)
        if self._index.num_frames == 0:
            self.close()
            raise VideoDecodeError(self.path, "no frame decodes")

    # ---------------------------------------------------------------- opening and indexing

    def _open(self) -> None:
        self.close()
        try:
            container = av.open(str(self.path), mode="r")
        except _DECODE_ERRORS as err:
            raise VideoDecodeError(self.path, _reason(err)) from None
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(self.path, "no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        # PyAV gives no codec context at all for a codec FFmpeg has no decoder for (an unknown
        # FourCC, a corrupt codec ID): that is a video we cannot decode, not a crash.
        if ctx is None or ctx.name is None or ctx.codec is None:
            container.close()
            raise VideoDecodeError(self.path, "unknown video codec")
        ctx.thread_type = "SLICE"  # frame threading would delay the per-packet skip decisions
        ctx.thread_count = self.threads
        self._container, self._stream, self._fresh = container, stream, True

    def close(self) -> None:
        """Release the file. The reader reopens it if used again."""
        container = getattr(self, "_container", None)  # None too when __init__ failed early
        if container is not None:
            container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    @property
    def _skip_nonref(self) -> bool:
        # Packed B-frames name a frame by another packet's timestamp: a skip decision per packet
        # would drop frames that are wanted.
        return self._skip_allowed and not self._index.decoder_order

    def _load_index(self, exact: bool) -> FrameIndex:
        key = index_cache.key(self.path)
        # Where the container's timestamps may not be in display order only decoding tells it.
        exact = exact or (
            self.codec in _REORDERING_CODECS
            and (self.format in _DECODE_ORDER_FORMATS or self.codec == "mpeg4")
        )
        index = index_cache.get(key, exact)
        if index is None:
            index = self._scan(decode=exact)
            if index is None:  # packets without timestamps: only decoding can tell
                index = self._scan(decode=True)
            index_cache.put(key, index)
        return index

    def _scan(self, decode: bool) -> FrameIndex | None:
        """Read every packet (and decode every frame if ``decode``) to find the frames."""
        if not self._fresh:
            self._open()
        self._fresh = False
        # keyframe packet pts -> the timestamp to seek to: its own pts. Demuxers that seek by pts
        # (mp4) land one keyframe early when given the dts, which is smaller with B-frames;
        # those that seek by dts still land on this keyframe, as its dts <= its pts.
        key_seek: dict[int, int] = {}
        packet_pts: list[int] = []
        frame_pts: list[int | None] = []
        frame_keys: list[int] = []
        for packet in self._packets():
            if packet.pts is not None:
                packet_pts.append(packet.pts)
                if packet.is_keyframe:
                    key_seek[packet.pts] = packet.pts
            elif not decode:
                return None
            if decode:
                for frame in self._decode(packet):
                    if frame.key_frame:
                        frame_keys.append(len(frame_pts))
                    frame_pts.append(frame.pts)
        if decode:
            for frame in self._decode(None):
                if frame.key_frame:
                    frame_keys.append(len(frame_pts))
                frame_pts.append(frame.pts)
            return build_index(frame_pts, key_seek, frame_keys, True, *self._clock())
        return build_index(packet_pts, key_seek, [], False, *self._clock())

    def _clock(self) -> tuple[float, float | None]:
        """(seconds per timestamp unit, nominal frame rate) for ``build_index``."""
        rate = float(self._average_rate) if self._average_rate else None
        return float(self._time_base), rate

    # ---------------------------------------------------------------- facts

    @property
    def num_frames(self) -> int:
        """Frames that decode (the header may say otherwise)."""
        return self._index.num_frames

    @property
    def exact(self) -> bool:
        """True once the frames were counted by decoding them all (``exact=True``, or a file whose
        packets promised frames that did not decode: frames are then numbered anew)."""
        return self._index.exact

    @property
    def fps(self) -> float:
        """Average frame rate: the header's when it agrees with the timestamps, else theirs."""
        times, n = self._index.times, self._index.num_frames
        measured = (n - 1) / times[-1] if n > 1 and times[-1] > 0 else None
        header = float(self._average_rate) if self._average_rate else None
        if header and (measured is None or abs(header - measured) <= 0.01 * measured):
            return header
        return measured if measured else 25.0

    @property
    def duration(self) -> float:
        """Seconds: num_frames / fps."""
        return self.num_frames / self.fps

    @property
    def frame_times(self) -> np.ndarray:
        """(num_frames,) float64 presentation times in seconds, the first frame at 0."""
        return self._index.times.copy()

    @property
    def keyframe_indices(self) -> np.ndarray:
        """(K,) int64 indices of the keyframes (seek points)."""
        return self._index.keyframes.copy()

    @property
    def variable_frame_rate(self) -> bool:
        """True when the frame durations differ by more than 10% from their median."""
        if self.num_frames < 3:
            return False
        gaps = np.diff(self._index.times)
        median = float(np.median(gaps))
        return bool(median > 0 and np.abs(gaps - median).max() > 0.1 * median)

    @property
    def rotation(self) -> int:
        """Counter-clockwise degrees the decoded pictures are rotated by to show them upright
        (after the mirror, when ``mirrored``)."""
        if self._orientation is None:
            self._peek()
        assert self._orientation is not None
        return self._orientation[0] * 90

    @property
    def mirrored(self) -> bool:
        """True when the display matrix mirrors the pictures left to right (before rotating)."""
        if self._orientation is None:
            self._peek()
        assert self._orientation is not None
        return self._orientation[1]

    @property
    def sample_aspect_ratio(self) -> str:
        """The pixels' width:height as the file states it ("1:1" for square pixels)."""
        sar = self._sar or 1
        return f"{sar.numerator}:{sar.denominator}"

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames ``get_frames`` returns: the coded size with the width
        scaled by the sample aspect ratio, then rotated."""
        if self._coded_size is None or self._orientation is None:
            self._peek()
        assert self._coded_size is not None
        h, w = self._coded_size
        return (w, h) if self.rotation % 180 == 90 else (h, w)

    def info(self) -> VideoInfo:
        h, w = self.size
        return VideoInfo(
            path=str(self.path),
            format=self.format,
            codec=self.codec,
            height=h,
            width=w,
            rotation=self.rotation,
            mirrored=self.mirrored,
            sample_aspect_ratio=self.sample_aspect_ratio,
            fps=round(self.fps, 6),
            num_frames=self.num_frames,
            header_frames=self.header_frames,
            duration=round(self.duration, 6),
            variable_frame_rate=self.variable_frame_rate,
            keyframes=len(self._index.keyframes),
        )

    def retime(
        self, positions: Sequence[float] | np.ndarray, fps: float | None = None
    ) -> np.ndarray:
        """Map positions on a constant-rate timeline to the nearest real frames.

        Samplers work in frame units of a constant-rate video at ``fps`` (default: ``self.fps``);
        position p is the time p / fps. For constant frame rate video this is the identity; for
        variable frame rate video it picks the frame shown nearest that time.

        Returns (len(positions),) int64 frame indices.
        """
        times = self._index.times
        t = np.asarray(positions, dtype=np.float64) / (fps or self.fps)
        if len(times) == 1:  # a single frame (a still, or all that decodes): no neighbours
            return np.zeros(t.shape, dtype=np.int64)
        right = np.clip(np.searchsorted(times, t), 1, max(len(times) - 1, 1))
        left = right - 1
        nearest = np.where(np.abs(times[left] - t) <= np.abs(times[right] - t), left, right)
        return np.clip(nearest, 0, len(times) - 1).astype(np.int64)

    # ---------------------------------------------------------------- decoding

    def get_frames(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decode the frames at ``indices`` (any order, repeats allowed).

        Returns a uint8 tensor (T, H, W, 3), RGB, in the order asked, T = len(indices).
        """
        return gather_frames(self, indices, self._get_unique)

    def _get_unique(self, unique: np.ndarray) -> dict[int, np.ndarray]:
        index = self._index
        if index.pts is None:
            got = self._decode_in_order(set(unique.tolist()))
        else:
            wanted = {int(index.pts[i]): int(i) for i in unique}
            got = {}
            self._out_of_order = False
            for seek, run in self._runs(unique):
                got.update(self._decode_wanted(run, seek, self._skip_nonref))
            if self._out_of_order and not index.exact:
                # The decoder put frames out against their timestamps' order: those are not
                # presentation times, so the frames must be numbered by decoding (below).
                got = {}
            elif len(got) < len(wanted) and (len(index.keyframes) > 1 or self._skip_nonref):
                # A seek that landed late, or a codec that packs frames: try the plain way.
                missing = {p: i for p, i in wanted.items() if i not in got}
                got.update(self._decode_wanted(missing, None, False))
        if len(got) == len(unique):
            return got
        if not index.exact:
            # The packets promised frames that do not decode, or in another order: number the
            # frames that do, in the order they come out.
            promised = index.num_frames
            self._reindex_by_decoding()
            if self.num_frames == 0:
                raise VideoDecodeError(self.path, "no frame decodes")
            if unique.max() < self.num_frames:
                return self._get_unique(unique)
            raise VideoDecodeError(
                self.path,
                f"only {self.num_frames} of the {promised} frames in its packets decode "
                f"(frame {int(unique.max())} was asked for)",
            )
        missing = sorted(set(unique.tolist()) - set(got))
        raise VideoDecodeError(
            self.path, f"frame {missing[0]} of {self.num_frames} does not decode"
        )

    def _reindex_by_decoding(self) -> None:
        self._index = self._scan(decode=True)
        self._positions = None
        index_cache.put(index_cache.key(self.path), self._index)

    def _position(self, pts: int | None) -> int | None:
        """The frame index of the frame with timestamp ``pts`` (None: not a frame of the index)."""
        if self._positions is None:
            pts_list = [] if self._index.pts is None else self._index.pts.tolist()
            self._positions = {int(p): i for i, p in enumerate(pts_list)}
        return None if pts is None else self._positions.get(pts)

    def iter_frames(
        self, indices: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode the video once from the start, as a stream.

        Yields (index, (H, W, 3) uint8 RGB) for each wanted index that decodes, in increasing
        order (all frames when ``indices`` is None). Only one decoded frame is held at a time, so
        memory stays flat however long the video; unwanted non-reference frames are skipped
        where the codec allows. A wanted frame that does not decode is left out, not an error.
        """
        index = self._index
        wanted = None if indices is None else {int(i) for i in np.asarray(indices).reshape(-1)}
        self._seek(None)
        if index.pts is None:  # no timestamps: number frames as they come
            for count, frame in enumerate(self._frames()):
                if wanted is None or count in wanted:
                    yield count, self._to_rgb(frame)
                if wanted is not None and count >= max(wanted, default=-1):
                    return
            return
        pts_index = {int(p): i for i, p in enumerate(index.pts.tolist())}  # index.pts: not None
        if wanted is not None:
            pts_index = {p: i for p, i in pts_index.items() if i in wanted}
        final = max(pts_index.values(), default=-1)  # stop once the last wanted frame is out
        last = -1  # the index yielded last
        ctx = self._stream.codec_context
        skipping = False
        try:
            for packet in self._packets():
                if last >= final:
                    return
                if self._skip_nonref and wanted is not None:
                    skip = packet.pts is not None and packet.pts not in pts_index
                    if skip != skipping:
                        ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                        skipping = skip
                for frame in self._decode(packet):
                    i = pts_index.get(frame.pts) if frame.pts is not None else None
                    # A corrupt stream can emit a frame again or late (a repeated timestamp):
                    # leave it out rather than break the increasing order callers rely on.
                    if i is not None and i > last:
                        last = i
                        yield i, self._to_rgb(frame)
            for frame in self._decode(None):
                i = pts_index.get(frame.pts) if frame.pts is not None else None
                if i is not None and i > last:
                    last = i
                    yield i, self._to_rgb(frame)
        finally:
            if skipping:
                ctx.skip_frame = "DEFAULT"

    def _runs(self, unique: np.ndarray) -> list[tuple[int | None, dict[int, int]]]:
        """Split sorted frame indices into runs that each start from their own keyframe.

        Wanted frames after different keyframes are decoded from those keyframes: when frame j
        has a later keyframe than frame i, that keyframe lies after i, so seeking to it skips
        the frames between i and it instead of decoding through them. Returns (seek timestamp or
        None for the start, {pts: index}) per run.
        """
        index = self._index
        assert index.pts is not None
        starts = np.searchsorted(index.keyframes, unique, side="right") - 1
        runs: list[tuple[int | None, dict[int, int]]] = []
        for k in np.unique(starts):
            members = unique[starts == k]
            seek = int(index.seek_ts[k]) if k > 0 and len(index.seek_ts) > k else None
            runs.append((seek, {int(index.pts[i]): int(i) for i in members}))
        return runs

    def _decode_wanted(
        self, wanted: dict[int, int], seek: int | None, skip_nonref: bool
    ) -> dict[int, np.ndarray]:
        """Decode from ``seek`` (None: the start) until every wanted pts has come out.

        Notes in ``self._out_of_order`` when frames come out against the index's order."""
        self._seek(seek)
        ctx = self._stream.codec_context
        remaining = dict(wanted)
        last = max(remaining.values())
        out: dict[int, np.ndarray] = {}
        skipping = False
        previous = -1  # index of the frame that came out last
        past = 0  # frames seen after the last wanted one: decoders may emit late (broken B-frames)

        def take(frame: av.VideoFrame) -> None:
            nonlocal previous, past
            self._take(frame, remaining, out)
            position = self._position(frame.pts)
            if position is not None:
                self._out_of_order |= position < previous
                previous = position
                past += position > last

        for packet in self._packets():
            if skip_nonref:
                skip = packet.pts is not None and packet.pts not in remaining
                if skip != skipping:
                    ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
            for frame in self._decode(packet):
                take(frame)
            if not remaining or past > _LATE_FRAMES:
                break
        else:
            for frame in self._decode(None):
                take(frame)
        if skipping:
            ctx.skip_frame = "DEFAULT"
        return out

    def _take(self, frame: av.VideoFrame, remaining: dict[int, int], out: dict) -> None:
        """Convert ``frame`` if it is wanted."""
        i = remaining.pop(frame.pts, None) if frame.pts is not None else None
        if i is not None:
            out[i] = self._to_rgb(frame)

    def _decode_in_order(self, wanted: set[int]) -> dict[int, np.ndarray]:
        """For files without timestamps: decode from the start, numbering frames as they come."""
        self._seek(None)
        out: dict[int, np.ndarray] = {}
        last = max(wanted)
        for count, frame in enumerate(self._frames()):
            if count in wanted:
                out[count] = self._to_rgb(frame)
            if count >= last:
                break
        return out

    def _seek(self, ts: int | None) -> None:
        if ts is None:
            if not self._fresh:
                self._open()  # reopening is the one rewind that works for every container
        else:
            if self._container is None:
                self._open()
            try:
                self._container.seek(ts, stream=self._stream, backward=True, any_frame=False)
            except _DECODE_ERRORS:
                self._open()
        self._fresh = False

    def _packets(self) -> Iterator[av.Packet]:
        """The video packets, without empty ones: a zero-size packet would flush the decoder."""
        if self._container is None:
            self._open()
        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    yield packet
        except _DEMUX_ERRORS:
            return  # a truncated or corrupt tail: the frames before it still count

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return self._stream.decode(packet)
        except _DECODE_ERRORS:
            return []  # a corrupt packet: skip it as FFmpeg's own tools do

    def _frames(self) -> Iterator[av.VideoFrame]:
        for packet in self._packets():
            yield from self._decode(packet)
        yield from self._decode(None)

    def _peek(self) -> None:
        """Decode the first frame to learn the orientation (and size) before any get_frames."""
        self._seek(None)
        for frame in self._frames():
            self._orientation = _orientation(frame)
            self._coded_size = (frame.height, _display_width(frame.width, self._sar))
            break
        else:
            self._orientation = (0, False)
            self._coded_size = (0, 0)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """(H, W, 3) uint8 as a player shows it: non-square pixels scaled to square ones along
        the width, then mirrored and rotated upright as the display matrix says."""
        width = _display_width(frame.width, self._sar)
        size = {} if width == frame.width else {"width": width, "height": frame.height}
        array = _converter().reformat(frame, format="rgb24", threads=1, **size).to_ndarray()
        turns, mirrored = self._orientation = _orientation(frame)
        self._coded_size = array.shape[:2]
        if mirrored:
            array = array[:, ::-1]
        if turns:
            array = np.rot90(array, k=turns)
        if mirrored or turns:
            array = np.ascontiguousarray(array)
        return array


def gather_frames(
    reader: VideoReader | Any,
    indices: Sequence[int] | np.ndarray | torch.Tensor,
    decode: Callable[[np.ndarray], dict[int, np.ndarray]],
) -> torch.Tensor:
    """``reader.get_frames``: check ``indices`` against ``reader.num_frames``, decode each
    distinct one once with ``decode`` (sorted indices -> {index: (H, W, 3) uint8}) and stack
    them in the order asked. Returns (T, H, W, 3) uint8, T = len(indices)."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    n = reader.num_frames
    if idx.size == 0:
        h, w = reader.size
        return torch.zeros((0, h, w, 3), dtype=torch.uint8)
    if idx.min() < 0 or idx.max() >= n:
        bad = int(idx[(idx < 0) | (idx >= n)][0])
        raise IndexError(f"frame {bad} out of range for {reader.path} ({n} frames)")
    frames = decode(np.unique(idx))
    try:
        stacked = np.stack([frames[int(i)] for i in idx])
    except ValueError:  # frames of different sizes (a resolution change mid-stream)
        raise VideoDecodeError(reader.path, "frame size changes within the video") from None
    return torch.from_numpy(stacked)


def _orientation(frame: av.VideoFrame) -> tuple[int, bool]:
    """(counter-clockwise quarter turns, mirrored) that show ``frame`` as its display matrix says.

    The matrix's 2 x 2 part M is a rotation R, or a left-right mirror H followed by one
    (M = H R, with a negative determinant); FFmpeg's own rotation getter ignores the mirror and
    would turn a mirrored picture upside down. Angles are rounded to a multiple of 90 degrees.
    """
    matrix = None
    try:
        for data in frame.side_data:
            if data.type == SideDataType.DISPLAYMATRIX:
                matrix = np.frombuffer(bytes(data), dtype=np.int32)
                break
    except (AttributeError, ValueError, TypeError):
        return (0, False)
    if matrix is None or matrix.size != 9:
        return (0, False)
    # The matrix is row-major [a b u; c d v; x y w]; M = [a b; c d] and R = [cos -sin; sin cos].
    a, b, c, d = (float(v) for v in matrix[[0, 1, 3, 4]])
    mirrored = a * d - b * c < 0
    cos, sin = (-a if mirrored else a), c  # H M negates the first row
    if cos == 0 and sin == 0:
        return (0, mirrored)
    turns = round(np.degrees(np.arctan2(sin, cos)) / 90.0) % 4
    return (int(turns), bool(mirrored))


def _sample_aspect_ratio(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's sample aspect ratio where it is set and valid, else the codec's (as FFmpeg
    guesses it); None for square or unknown pixels."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            return None if sar == 1 else Fraction(sar.numerator, sar.denominator)
    return None


def _display_width(width: int, sar: Fraction | None) -> int:
    """The width square pixels need to show ``width`` pixels of aspect ``sar`` (players scale
    the width and keep the height)."""
    return width if sar is None else max(1, round(width * sar))


def _reason(err: BaseException) -> str:
    """FFmpeg's words for what went wrong, without the file name it repeats."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(text).strip().rstrip(".").lower() if text else type(err).__name__


def probe(path: str | os.PathLike[str], *, exact: bool = True) -> VideoInfo:
    """The facts of one video (frame count by decoding every frame unless ``exact=False``)."""
    with VideoReader(path, exact=exact, threads=0) as reader:
        return reader.info()


def scan_folder(
    folder: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> tuple[list[Path], list[Path]]:
    """(video files, other files) anywhere under ``folder``, each sorted. Videos are told by
    their extension (any case); hidden files (``.DS_Store``, macOS's ``._clip.mp4``) are neither."""
    suffixes = {e.lower() for e in extensions}
    videos: list[Path] = []
    others: list[Path] = []
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        (videos if path.suffix.lower() in suffixes else others).append(path)
    return videos, others


def report_skipped(folder: Path, skipped: Sequence[Path]) -> None:
    """One warning line: how many files under ``folder`` were not taken, by extension."""
    if not skipped:
        return
    counts: dict[str, int] = {}
    for path in skipped:
        counts[path.suffix.lower() or "(none)"] = counts.get(path.suffix.lower() or "(none)", 0) + 1
    kinds = ", ".join(f"{n} {ext}" for ext, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    noun = "file" if len(skipped) == 1 else "files"
    _log.warning(
        "%s: skipped %d %s that are not videos by their extension (%s), e.g. %s",
        folder,
        len(skipped),
        noun,
        kinds,
        skipped[0],
    )


def videos_under(folder: Path) -> list[Path]:
    """The video files (by extension, ``VIDEO_EXTENSIONS``) anywhere under ``folder``, sorted;
    logs one warning with the count of the other files it skipped.

    Raises ``ConfigError`` when there is none."""
    videos, others = scan_folder(folder)
    if not videos:
        other = f" ({len(others)} files of other types, e.g. {others[0].name})" if others else ""
        raise ConfigError(f"{folder}: no video files in this folder{other}")
    report_skipped(folder, others)
    return videos


def find_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files given, plus the video files under folders given (``videos_under``), in order.

    Raises ``ConfigError`` for a path that does not exist or a folder with no video."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += videos_under(path)
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    return found
