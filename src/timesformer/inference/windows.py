"""Long videos: the model's clip slid over the whole video, decoded as one stream.

A window spans ``num_frames x sampling_rate`` frames at the target frame rate (as a test clip);
windows start every ``stride`` seconds (default: one window length, so they tile the video) and a
last window is aligned with the end so the tail is covered. The video is decoded once from start
to end (``VideoReader.iter_frames``), only the frames some window samples are converted, and each
is resized to the test scale at once; a frame is dropped as soon as no later window needs it. So
memory holds about one window's frames whatever the video's length.

Each window is scored with the test crops (3 by default); the video-level prediction is the
average of the windows' probabilities. ``window_views`` yields the windows' test views one by
one for any other consumer (``inference.extract`` embeds them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from timesformer.data import ClipConfig, VideoReader, sampling, transforms
from timesformer.errors import ConfigError
from timesformer.inference.results import Prediction, WindowPrediction

__all__ = [
    "WindowScorer",
    "batched_window_views",
    "plan_windows",
    "plot_timeline",
    "predict_windows",
    "window_views",
]


class WindowScorer(Protocol):
    """What ``predict_windows`` needs of a predictor (``Predictor`` is one): described here so
    that this module does not import ``predictor``, which imports it."""

    clip: ClipConfig

    def probabilities(self, views: torch.Tensor, per_clip: int | None = None) -> torch.Tensor:
        """Normalised views -> class probabilities, (V // per_clip, C) with ``per_clip``."""
        ...

    def top(self, probs: torch.Tensor) -> list[tuple[str, float]]:
        """The top (label, probability) pairs of probabilities (C,), best first."""
        ...


def plan_windows(
    num_frames: int, fps: float, clip_len: int, rate: int, target_fps: float, stride: float | None
) -> tuple[list[np.ndarray], float]:
    """The frame indices of every window: a list of (clip_len,) int64 arrays, and the window
    length in frames. ``stride`` in seconds (None: one window length)."""
    window = sampling.clip_window(clip_len, rate, fps, target_fps)
    step = window if stride is None else stride * fps
    if step <= 0 or not math.isfinite(step):
        raise ConfigError(f"the window stride must be a positive number of seconds, got {stride}")
    last_start = max(num_frames - window, 0.0)
    starts = list(np.arange(0.0, last_start + 1e-9, step))
    if starts[-1] < last_start - 1e-9:  # cover the tail with a window that ends the video
        starts.append(last_start)
    return [sampling.temporal_indices(s, window, clip_len, num_frames) for s in starts], window


def window_views(
    clip: ClipConfig, path: str | Path, *, stride: float | None = None
) -> Iterator[tuple[torch.Tensor, float, float]]:
    """The test views of every window of the video at ``path``, in order, decoded as one stream:
    (views (num_crops, 3, T, crop, crop) normalised, start seconds, end seconds) per window.

    Raises ``ConfigError`` at once when ``clip`` does not sample windows, and (while iterating)
    ``VideoDecodeError`` when the video does not decode at all."""
    if clip.sampling != "window":
        raise ConfigError(
            "sliding windows need window sampling (frames x sampling rate); this model samples "
            "segments of the whole video: pass --sampling-rate to slide windows anyway"
        )
    return _stream_windows(clip, path, stride)


def _stream_windows(
    clip: ClipConfig, path: str | Path, stride: float | None
) -> Iterator[tuple[torch.Tensor, float, float]]:
    with VideoReader(path) as reader:
        n, fps = reader.num_frames, reader.fps
        plans, _ = plan_windows(
            n, fps, clip.num_frames, clip.sampling_rate, clip.target_fps, stride
        )
        times = reader.frame_times
        positions = [reader.retime(p) for p in plans]  # nearest real frames (variable rate)
        last_use = {}  # frame index -> last window that needs it
        for w, idx in enumerate(positions):
            for i in idx.tolist():
                last_use[i] = w
        scale = clip.test_scale or clip.crop_size
        store: dict[int, torch.Tensor] = {}  # frame index -> (h, w, 3) uint8, resized
        latest: torch.Tensor | None = None
        next_window = 0

        def emit(w: int) -> tuple[torch.Tensor, float, float]:
            idx = positions[w].tolist()
            # A wanted frame that did not decode: the nearest decoded one before it (as clips
            # shorter than the window are padded by repetition), else the latest decoded.
            frames: list[torch.Tensor] = []
            for i in idx:
                f = store.get(i)
                frames.append(f if f is not None else (frames[-1] if frames else latest))
            video = torch.stack(frames)  # (T, h, w, 3), short side already at the test scale
            views = transforms.test_views(
                video, clip.crop_size, clip.num_crops, scale, clip.mean, clip.std
            )
            start = float(times[idx[0]])
            end = float(times[idx[-1]]) + 1.0 / fps
            for i in set(idx):
                if last_use.get(i) == w:
                    store.pop(i, None)
            return views, start, end

        for i, rgb in reader.iter_frames(sorted(last_use)):
            # Resized at once, so that the store holds small frames: (H, W, 3) -> (h, w, 3).
            frame = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W) view
            frame = transforms.short_side_resize(frame, scale)
            store[i] = latest = frame[0].permute(1, 2, 0).contiguous()
            while next_window < len(positions) and int(positions[next_window].max()) <= i:
                yield emit(next_window)
                next_window += 1
        if latest is None:
            from timesformer.data import VideoDecodeError

            raise VideoDecodeError(path, "no frame decodes")
        while next_window < len(positions):  # frames at the end that did not decode
            yield emit(next_window)
            next_window += 1


def batched_window_views(
    clip: ClipConfig, path: str | Path, *, stride: float | None = None, batch: int = 4
) -> Iterator[tuple[torch.Tensor, list[tuple[float, float]]]]:
    """``window_views`` in groups of up to ``batch`` windows, for one forward pass each:
    (views (n * num_crops, 3, T, crop, crop), [(start, end) seconds] * n)."""
    views: list[torch.Tensor] = []
    spans: list[tuple[float, float]] = []
    for window, start, end in window_views(clip, path, stride=stride):
        views.append(window)
        spans.append((start, end))
        if len(views) >= batch:
            yield torch.cat(views), spans
            views, spans = [], []
    if views:
        yield torch.cat(views), spans


def predict_windows(
    predictor: WindowScorer, path: str | Path, *, stride: float | None = None, batch: int = 4
) -> Prediction:
    """Per-window predictions over the whole video at ``path`` plus their average; windows are
    scored ``batch`` at a time.

    Raises ``VideoDecodeError`` when the video does not decode at all."""
    clip = predictor.clip
    results: list[WindowPrediction] = []
    for views, spans in batched_window_views(clip, path, stride=stride, batch=batch):
        probs = predictor.probabilities(views, per_clip=clip.num_crops)
        for (start, end), p in zip(spans, probs, strict=True):
            results.append(WindowPrediction(start, end, predictor.top(p), probs=p))
    mean = torch.stack([r.probs for r in results]).mean(0)
    return Prediction(
        str(path),
        predictor.top(mean),
        num_views=len(results) * clip.num_crops,
        windows=results,
        probs=mean,
    )


def plot_timeline(
    prediction: Prediction, labels: Sequence[str], path: str | Path, classes: int = 5
) -> Path:
    """A PNG of the probability of the video's top ``classes`` classes over time, one line per
    class across the windows (a point at each window's centre)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timesformer.checkpoints.io import atomic_path

    windows = prediction.windows or []
    if not windows or prediction.probs is None:
        raise ConfigError(f"{prediction.path}: no windows to plot")
    probs = torch.stack([w.probs for w in windows])  # (W, C)
    top = prediction.probs.topk(min(classes, probs.shape[1])).indices.tolist()
    centres = [(w.start + w.end) / 2 for w in windows]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for c in top:
        ax.plot(centres, probs[:, c].numpy(), marker="o", markersize=3, label=labels[c])
    for w in windows:
        ax.axvspan(w.start, w.end, color="0.5", alpha=0.04)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max(w.end for w in windows))
    ax.set_title(f"{Path(prediction.path).name}: {len(windows)} windows")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
