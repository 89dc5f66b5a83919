"""Which frames make a clip: the reference TimeSformer / PySlowFast temporal sampling.

Every function returns int64 frame indices into a video of ``num_frames`` frames at ``video_fps``.
A clip of ``clip_len`` frames at ``sampling_rate`` covers a window of ``clip_len * sampling_rate``
frames *at the target frame rate* (30 fps in the reference configs), i.e.
``clip_len * sampling_rate * video_fps / target_fps`` frames of the video itself. The clip's frames
are spread uniformly over the window (``linspace``, truncated to integers like the reference's
``.long()``) and clamped to the video, so a video shorter than the window repeats its first and
last frames: that clamping is the padding by repetition.

For variable frame rate video, treat the indices as positions on a constant-rate timeline and map
them to real frames with ``VideoReader.retime``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "clip_window",
    "segment_indices",
    "temporal_indices",
    "test_indices",
    "train_indices",
]


def clip_window(
    clip_len: int, sampling_rate: int, video_fps: float = 30.0, target_fps: float = 30.0
) -> float:
    """Frames of the video (at ``video_fps``) that one clip spans."""
    if clip_len < 1 or sampling_rate < 1:
        raise ValueError(
            f"clip_len and sampling_rate must be >= 1, got {clip_len}, {sampling_rate}"
        )
    if video_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {video_fps}, {target_fps}")
    return clip_len * sampling_rate * video_fps / target_fps


def temporal_indices(start: float, window: float, clip_len: int, num_frames: int) -> np.ndarray:
    """(clip_len,) int64: ``clip_len`` points spaced uniformly over [start, start + window - 1],
    truncated and clamped to [0, num_frames - 1] (the reference's ``temporal_sampling``)."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    index = np.linspace(start, start + window - 1.0, clip_len)
    return np.clip(index, 0, num_frames - 1).astype(np.int64)


def train_indices(
    num_frames: int,
    clip_len: int,
    sampling_rate: int,
    rng: np.random.Generator,
    video_fps: float = 30.0,
    target_fps: float = 30.0,
) -> np.ndarray:
    """(clip_len,) int64 indices of a training clip: the window starts uniformly at random in
    [0, max(0, num_frames - window)]."""
    window = clip_window(clip_len, sampling_rate, video_fps, target_fps)
    delta = max(num_frames - window, 0.0)
    start = float(rng.uniform(0.0, delta)) if delta > 0 else 0.0
    return temporal_indices(start, window, clip_len, num_frames)


def test_indices(
    num_frames: int,
    clip_len: int,
    sampling_rate: int,
    clip_idx: int,
    num_clips: int,
    video_fps: float = 30.0,
    target_fps: float = 30.0,
    spread: Literal["uniform", "reference"] = "uniform",
) -> np.ndarray:
    """(clip_len,) int64 indices of test clip ``clip_idx`` of ``num_clips``.

    ``spread="uniform"``: window starts at ``delta * i / (K - 1)`` (K > 1), so the first clip starts
    the video and the last ends it; a single clip is centred. ``spread="reference"``: the
    reference's ``delta * i / K``, which for one clip takes the first window and never reaches
    the end of the video.
    """
    if not 0 <= clip_idx < num_clips:
        raise ValueError(f"clip_idx must be in [0, {num_clips}), got {clip_idx}")
    window = clip_window(clip_len, sampling_rate, video_fps, target_fps)
    delta = max(num_frames - window, 0.0)
    if spread == "reference":
        start = delta * clip_idx / num_clips
    elif spread == "uniform":
        start = delta * clip_idx / (num_clips - 1) if num_clips > 1 else delta / 2.0
    else:
        raise ValueError(f"spread must be 'uniform' or 'reference', got {spread!r}")
    return temporal_indices(start, window, clip_len, num_frames)


def segment_indices(
    num_frames: int, clip_len: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(clip_len,) int64 indices for Something-Something-style data (the reference's
    ``get_seq_frames``): the video is cut into ``clip_len`` equal segments and one frame is taken
    from each, at random when ``rng`` is given (training) or at its centre (testing)."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    seg_size = (num_frames - 1) / clip_len
    bounds = [
        (int(np.round(seg_size * i)), int(np.round(seg_size * (i + 1)))) for i in range(clip_len)
    ]
    if rng is not None:
        picks = [int(rng.integers(lo, hi + 1)) for lo, hi in bounds]
    else:
        picks = [(lo + hi) // 2 for lo, hi in bounds]
    return np.asarray(picks, dtype=np.int64)


# pytest collects functions named test_* wherever they are imported; this one is not a test.
test_indices.__test__ = False  # type: ignore[attr-defined]
