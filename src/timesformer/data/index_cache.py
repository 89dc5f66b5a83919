"""Where the frames of a video are, and a per-process cache of it.

A ``FrameIndex`` lists the presentation timestamps of the frames that decode (from the packets,
or from decoding every frame when the packets cannot be trusted) and the keyframes to seek to.
Building one reads the whole file, so it is cached per process, keyed by the file's path, size and
modification time: a DataLoader worker that meets a video again (the next epoch) skips the scan.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FrameIndex", "build_index", "clear", "get", "key", "put"]

MAX_ENTRIES = 4096  # a few KB each


@dataclass(frozen=True)
class FrameIndex:
    """Where each decodable frame is. ``pts is None``: no usable timestamps, decode in order."""

    pts: np.ndarray | None  # (N,) int64 presentation timestamps (stream time base), increasing
    times: np.ndarray  # (N,) float64 seconds since the first frame
    keyframes: np.ndarray  # (K,) int64 frame indices of keyframes, increasing
    seek_ts: np.ndarray  # (K,) int64 timestamp to seek to for each keyframe (its pts)
    exact: bool  # True: built by decoding every frame; False: by reading packets only

    @property
    def num_frames(self) -> int:
        return len(self.times)


_CACHE: OrderedDict[tuple, FrameIndex] = OrderedDict()


def key(path: Path) -> tuple | None:
    """The cache key of ``path`` (None when it cannot be read)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def get(cache_key: tuple | None, exact: bool) -> FrameIndex | None:
    """The cached index; an exact one (counted by decoding) serves both kinds of request."""
    if cache_key is None:
        return None
    for want_exact in (True,) if exact else (True, False):
        entry = _CACHE.get((cache_key, want_exact))
        if entry is not None:
            _CACHE.move_to_end((cache_key, want_exact))
            return entry
    return None


def put(cache_key: tuple | None, index: FrameIndex) -> None:
    if cache_key is None:
        return
    _CACHE[(cache_key, index.exact)] = index
    while len(_CACHE) > MAX_ENTRIES:
        _CACHE.popitem(last=False)


def clear() -> None:
    """Forget every index (benchmarks use it to measure a first epoch)."""
    _CACHE.clear()


def build_index(
    pts_list: Sequence[int | None],
    key_seek: dict[int, int],
    decoded_keys: list[int],
    exact: bool,
    seconds_per_tick: float,
    nominal_fps: float | None,
) -> FrameIndex | None:
    """The index of frames with timestamps ``pts_list`` (any order; None where unknown).

    ``key_seek`` maps keyframe packet pts to the timestamp seeks go by (their pts);
    ``decoded_keys`` are decode-order positions of key frames. Returns None when the timestamps
    cannot number the frames and they came from packets (``exact=False``): only decoding can.
    """
    n = len(pts_list)
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return FrameIndex(None, np.zeros(0), empty, empty, exact)
    usable = all(p is not None for p in pts_list)
    pts = np.sort(np.asarray(pts_list, dtype=np.int64)) if usable else None
    if pts is not None and (np.diff(pts) == 0).any():
        usable, pts = False, None
    if pts is None:
        if not exact:
            return None
        # Decode order is all we have: frames are numbered as they come out.
        times = np.arange(n, dtype=np.float64) / (nominal_fps or 25.0)
        return FrameIndex(None, times, np.zeros(1, dtype=np.int64), empty, exact)
    times = (pts - pts[0]).astype(np.float64) * seconds_per_tick
    present = set(pts.tolist())
    key_pts = np.asarray(sorted(p for p in key_seek if p in present), dtype=np.int64)
    if len(key_pts):
        keyframes = np.searchsorted(pts, key_pts)
        seek_ts = np.asarray([key_seek[int(p)] for p in key_pts], dtype=np.int64)
    else:  # no keyframe flags: never seek, always decode from the start
        keyframes = np.asarray(decoded_keys[:1] or [0], dtype=np.int64)
        seek_ts = empty
    return FrameIndex(pts, times, keyframes.astype(np.int64), seek_ts, exact)
