"""Pictures of a rollout map: heat maps over the frames, as a PNG grid and as an animated GIF.

Both pictures share one colour scale over the whole clip (the clip's smallest relevance to its
largest), so that frames can be compared with each other: a frame the cls token reads less stays
darker.  The scale is relative: a nearly uniform map still spans the whole colour range.
Files are written to a temporary file beside the target and renamed, never left half-written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from timesformer.checkpoints.io import write_atomic

__all__ = ["heat_to_frames", "save_overlay_gif", "save_overlay_grid"]


def _check(frames: np.ndarray | torch.Tensor, heat: np.ndarray | torch.Tensor):
    """-> (frames uint8 (T, H, W, 3) numpy, heat float32 (T, H', W') torch)."""
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    heat = torch.as_tensor(heat, dtype=torch.float32).cpu()
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if heat.ndim != 3 or heat.shape[0] != frames.shape[0]:
        raise ValueError(
            f"expected a heat map (T, H', W') for {frames.shape[0]} frames, got {tuple(heat.shape)}"
        )
    return frames, heat


def heat_to_frames(heat: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(T, H', W') relevance -> (T, H, W) float32 in [0, 1], bilinearly upsampled to ``size``
    and scaled from the clip's minimum to its maximum (one scale for all frames; a constant map
    gives zeros)."""
    up = F.interpolate(heat[:, None].float(), size=size, mode="bilinear", align_corners=False)
    up = up[:, 0]
    low, span = float(up.min()), float(up.max() - up.min())
    # A span at rounding level is a constant map: draw it flat rather than amplify the noise.
    if span <= 1e-6 * max(abs(float(up.max())), 1e-12):
        return torch.zeros_like(up).numpy()
    return ((up - low) / span).numpy()


def _blend(frames: np.ndarray, heat01: np.ndarray, alpha: float, cmap: str) -> np.ndarray:
    """uint8 (T, H, W, 3) and (T, H, W) in [0, 1] -> uint8 (T, H, W, 3) overlays."""
    colours = colormaps[cmap](heat01)[..., :3]  # (T, H, W, 3) in [0, 1]
    mixed = (1 - alpha) * frames.astype(np.float32) / 255.0 + alpha * colours
    return (mixed.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def save_overlay_grid(
    frames: np.ndarray | torch.Tensor,
    heat: np.ndarray | torch.Tensor,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    columns: int = 8,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Path:
    """Write a PNG grid of the frames with the upsampled heat map over each.

    Args:
        frames: uint8 (T, H, W, 3) RGB frames, as the model saw them.
        heat: (T, H', W') relevance (any positive scale).
        path: the PNG to write.
        labels: one caption per frame (default "frame i").
        title: a line above the grid.
        columns: frames per row (at most T).
    """
    frames, heat = _check(frames, heat)
    t, h, w, _ = frames.shape
    overlays = _blend(frames, heat_to_frames(heat, (h, w)), alpha, cmap)
    cols = max(1, min(columns, t))
    rows = math.ceil(t / cols)
    fig = Figure(figsize=(2.0 * cols, 2.0 * rows * h / w + (0.4 if title else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < t:
            ax.imshow(overlays[i], interpolation="bilinear")
            ax.set_title(labels[i] if labels else f"frame {i}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    path = Path(path)
    write_atomic(path, write)
    return path


def save_overlay_gif(
    frames: np.ndarray | torch.Tensor,
    heat: np.ndarray | torch.Tensor,
    path: str | Path,
    *,
    fps: float = 4.0,
    min_size: int = 224,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Path:
    """Write an animated GIF, one frame per clip frame, heat map blended over the frame.

    Small clips are enlarged (nearest neighbour, by a whole factor) to at least ``min_size`` on
    the short side.  A thin bar along the bottom shows the position in the clip; it also keeps
    consecutive frames distinct, which GIF writers would otherwise merge into one.
    """
    frames, heat = _check(frames, heat)
    t, h, w, _ = frames.shape
    overlays = _blend(frames, heat_to_frames(heat, (h, w)), alpha, cmap)
    scale = max(1, math.ceil(min_size / min(h, w)))
    overlays = overlays.repeat(scale, axis=1).repeat(scale, axis=2)
    bar = max(2, overlays.shape[1] // 50)
    for i in range(t):
        overlays[i, -bar:] = 0
        overlays[i, -bar:, : round(overlays.shape[2] * (i + 1) / t)] = 255
    images = [Image.fromarray(f) for f in overlays]
    duration = max(20, round(1000 / fps))

    def write(tmp: Path) -> None:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
        )

    path = Path(path)
    write_atomic(path, write)
    return path
