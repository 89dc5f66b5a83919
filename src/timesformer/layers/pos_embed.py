"""Resizing of the learned position embeddings to other grids and frame counts, and a smooth
start for the time embedding.

Used both at run time (a clip of another size than the model was built for) and when a
checkpoint is loaded into a model of another size, so both paths give the same numbers.
The reference and Hugging Face models resize with ``mode="nearest"`` at run time; that is the
default, so their checkpoints give their outputs at any size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _interp_kwargs(mode: str) -> dict:
    return {} if mode in ("nearest", "area", "nearest-exact") else {"align_corners": False}


def resize_pos_embed(
    pos_embed: Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    mode: str = "nearest",
) -> Tensor:
    """Resize a spatial position embedding on its 2-D grid.

    Args:
        pos_embed: (1, 1 + h*w, D); slot 0 belongs to the cls token and is kept as it is.
        new_grid: (h', w') patches per frame wanted.
        old_grid: (h, w) of ``pos_embed``; square when not given.
        mode: ``F.interpolate`` mode ("nearest" as the reference, or "bilinear"/"bicubic").

    Returns:
        (1, 1 + h'*w', D).
    """
    n = pos_embed.shape[1] - 1
    if old_grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"position embedding of {n} patches is not a square grid")
        old_grid = (side, side)
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    cls_pos, grid_pos = pos_embed[:, :1], pos_embed[:, 1:]
    d = grid_pos.shape[-1]
    grid_pos = grid_pos.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    grid_pos = F.interpolate(grid_pos, size=tuple(new_grid), mode=mode, **_interp_kwargs(mode))
    grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return torch.cat((cls_pos, grid_pos), dim=1)


def resize_time_embed(time_embed: Tensor, num_frames: int, mode: str = "nearest") -> Tensor:
    """Resize a temporal embedding (1, T, D) to (1, num_frames, D) along time (1-D)."""
    if time_embed.shape[1] == num_frames:
        return time_embed
    if mode in ("bilinear", "bicubic"):
        mode = "linear"  # the 1-D counterpart of the 2-D modes
    t = F.interpolate(
        time_embed.transpose(1, 2), size=num_frames, mode=mode, **_interp_kwargs(mode)
    )
    return t.transpose(1, 2)


def sincos_time_embed(num_frames: int, dim: int) -> Tensor:
    """(num_frames, dim): sines and cosines of each frame's place t / num_frames in the clip, at
    dim // 2 frequencies spaced geometrically from num_frames / 2 cycles over the clip down to
    about half a cycle, scaled to unit variance per entry. The slowest pair separates the first
    half of the clip from the second along one direction; the fastest tells neighbours apart.
    An odd last column is zero."""
    half = dim // 2
    place = torch.arange(num_frames, dtype=torch.float64)[:, None] / num_frames
    k = torch.arange(half, dtype=torch.float64)[None, :]
    cycles = (num_frames / 2) * torch.exp(-k / max(half, 1) * math.log(max(num_frames, 2)))
    angle = 2 * math.pi * place * cycles
    table = torch.zeros(num_frames, dim, dtype=torch.float64)
    table[:, :half] = torch.sin(angle)
    table[:, half : 2 * half] = torch.cos(angle)
    return (table * math.sqrt(2)).float()
