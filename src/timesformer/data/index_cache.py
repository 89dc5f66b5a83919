"""Where the frames of a video are, and a per-process cache of it.

A ``FrameIndex`` lists the frames that decode, in display order, each with its timestamp (from the
packets, or from decoding every frame when the packets cannot be trusted), and the keyframes to
seek to. Display order is the timestamps' order where the container stores presentation times;
where it does not (AVI derives them from decode order, and DivX/XviD "packed B-frames" shuffle
them), it is the order in which the decoder outputs the frames, and the timestamps only name them.
Building one reads the whole file, so it is cached per process, keyed by the file's path, size and
modification time: a DataLoader worker that meets a video again (the next epoch) skips the scan.
The cache is shared by the threads of a process (the server's decoding threads): one lock guards
every read and change of it, so that a lookup never meets an entry that another thread evicts.
"""

from __future__ import annotations

import os
import threading
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

    pts: np.ndarray | None  # (N,) int64 timestamp of each frame in display order (stream time base)
    times: np.ndarray  # (N,) float64 seconds since the first frame
    keyframes: np.ndarray  # (K,) int64 frame indices of keyframes, increasing
    seek_ts: np.ndarray  # (K,) int64 timestamp to seek to for each keyframe (its pts)
    exact: bool  # True: built by decoding every frame; False: by reading packets only
    decoder_order: bool = False  # True: ``pts`` are not increasing, only names for the frames

    @property
    def num_frames(self) -> int:
        return len(self.times)


_CACHE: OrderedDict[tuple, FrameIndex] = OrderedDict()
_LOCK = threading.Lock()  # held for each whole get, put and clear


def _new_lock() -> None:
    """A forked child (a DataLoader worker) gets a fresh lock: the parent's may have been held
    by another of its threads at the fork, and that thread does not exist in the child."""
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which spawns
    os.register_at_fork(after_in_child=_new_lock)


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
    with _LOCK:
        for want_exact in (True,) if exact else (True, False):
            entry = _CACHE.get((cache_key, want_exact))
            if entry is not None:
                _CACHE.move_to_end((cache_key, want_exact))
                return entry
    return None


def put(cache_key: tuple | None, index: FrameIndex) -> None:
    if cache_key is None:
        return
    with _LOCK:
        _CACHE[(cache_key, index.exact)] = index
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)


def clear() -> None:
    """Forget every index (benchmarks use it to measure a first epoch)."""
    with _LOCK:
        _CACHE.clear()


def build_index(
    pts_list: Sequence[int | None],
    key_seek: dict[int, int],
    decoded_keys: list[int],
    exact: bool,
    seconds_per_tick: float,
    nominal_fps: float | None,
) -> FrameIndex | None:
    """The index of frames with timestamps ``pts_list``.

    From packets (``exact=False``) ``pts_list`` is in any order and its sorted order is the display
    order. From decoding (``exact=True``) it is in the decoder's output order, which is the display
    order: where those timestamps are not increasing the container's timestamps are not
    presentation times, and the frames keep the decoder's order (``decoder_order``).
    ``key_seek`` maps keyframe packet pts to the timestamp seeks go by (their pts);
    ``decoded_keys`` are output positions of key frames. Returns None when the timestamps
    cannot name the frames and they came from packets: only decoding can.
    """
    n = len(pts_list)
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return FrameIndex(None, np.zeros(0), empty, empty, exact)
    usable = all(p is not None for p in pts_list)
    pts = np.asarray(pts_list, dtype=np.int64) if usable else None
    if pts is not None and len(np.unique(pts)) < n:
        pts = None  # repeated timestamps cannot name frames
    if pts is None:
        if not exact:
            return None
        # Decode order is all we have: frames are numbered as they come out.
        times = np.arange(n, dtype=np.float64) / (nominal_fps or 25.0)
        return FrameIndex(None, times, np.zeros(1, dtype=np.int64), empty, exact)
    ordered = np.sort(pts)
    times = (ordered - ordered[0]).astype(np.float64) * seconds_per_tick
    if exact and not np.array_equal(ordered, pts):
        return _decoder_order_index(pts, times, key_seek, decoded_keys)
    present = set(ordered.tolist())
    key_pts = np.asarray(sorted(p for p in key_seek if p in present), dtype=np.int64)
    if len(key_pts):
        keyframes = np.searchsorted(ordered, key_pts)
        seek_ts = np.asarray([key_seek[int(p)] for p in key_pts], dtype=np.int64)
    else:  # no keyframe flags: never seek, always decode from the start
        keyframes = np.asarray(decoded_keys[:1] or [0], dtype=np.int64)
        seek_ts = empty
    return FrameIndex(ordered, times, keyframes.astype(np.int64), seek_ts, exact)


def _decoder_order_index(
    pts: np.ndarray, times: np.ndarray, key_seek: dict[int, int], decoded_keys: list[int]
) -> FrameIndex:
    """Frames in output order, named by their timestamps. A seek point is a frame the decoder
    flagged as key whose timestamp is also a keyframe packet's: seeking by that timestamp lands
    on the packet that starts it. The first frame stands for the start of the file."""
    keys = [0] + [int(i) for i in decoded_keys if i > 0 and int(pts[i]) in key_seek]
    keyframes = np.asarray(keys, dtype=np.int64)
    seek_ts = np.asarray([key_seek.get(int(pts[i]), int(pts[i])) for i in keys], dtype=np.int64)
    return FrameIndex(pts, times, keyframes, seek_ts, True, decoder_order=True)
