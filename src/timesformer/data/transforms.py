"""Spatial transforms of video clips in plain torch (torchvision does not import beside CPU torch).

Frames come from the decoder as uint8 (T, H, W, 3). The composed transforms (``train_transform``,
``val_transform``, ``test_views``) resize and crop them while they are still uint8 (a zero-copy
(T, 3, H, W) channels-last view, for which torch has a fast antialiased bilinear kernel: about 10x
the float path) and only then convert to normalised float (3, T, H, W), the per-clip layout the
model consumes. The single steps work on any tensor whose last two dimensions are (H, W), uint8
(T, 3, H, W) or float. Randomness comes from a ``numpy.random.Generator`` so that a dataset can
be reproduced from one seed.

The geometry follows the reference (PySlowFast ``transform.py``): short side resized to a random
size in [256, 320] then a random 224 crop and a horizontal flip for training; short side resized
to the crop size and three crops along the long side for testing. Differences: bilinear resizing
is antialiased when it shrinks (the reference aliases when it shrinks a lot), resized pixels are
rounded to uint8 before normalising (at most 1/255 apart from the float path), and the random
crop offset may also take its largest value (the reference's ``randint`` excludes it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MEAN",
    "STD",
    "horizontal_flip",
    "normalize",
    "random_crop",
    "random_short_side_scale",
    "resize",
    "short_side_resize",
    "test_views",
    "to_float",
    "train_transform",
    "uniform_crop",
    "val_transform",
]

MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
STD: tuple[float, float, float] = (0.225, 0.225, 0.225)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (3, T, H, W) in [0, 1]."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    return frames.permute(3, 0, 1, 2).float().div_(255.0)


def resize(video: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of uint8 (T, 3, H, W) or float (..., H, W) to size = (height, width)."""
    h, w = video.shape[-2:]
    size = (int(size[0]), int(size[1]))
    if (h, w) == size:
        return video
    shrinking = size[0] < h or size[1] < w
    if video.dtype == torch.uint8:
        if video.ndim != 4 or video.shape[1] != 3:
            raise ValueError(f"uint8 video must be (T, 3, H, W), got {tuple(video.shape)}")
        # The uint8 kernel is the antialiased one (identical to plain bilinear when enlarging).
        return F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=True)
    lead = video.shape[:-2]
    flat = video.reshape(1, -1, h, w)
    out = F.interpolate(
        flat, size=size, mode="bilinear", align_corners=False, antialias=antialias and shrinking
    )
    return out.reshape(*lead, *size)


def _short_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    # The reference floors the long side.
    if w < h:
        return math.floor(h / w * size), size
    return size, math.floor(w / h * size)


def short_side_resize(video: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Resize float (..., H, W) so that min(H, W) == size, keeping the aspect ratio."""
    h, w = video.shape[-2:]
    if min(h, w) == size:
        return video
    return resize(video, _short_side_shape(h, w, size), antialias)


def random_short_side_scale(
    video: torch.Tensor, min_size: int, max_size: int, rng: np.random.Generator
) -> torch.Tensor:
    """Short side resized to an integer drawn uniformly from [min_size, max_size]."""
    size = round(rng.uniform(min_size, max_size))
    return short_side_resize(video, size)


def random_crop(video: torch.Tensor, size: int, rng: np.random.Generator) -> torch.Tensor:
    """A size x size crop of (..., H, W) at a uniformly random position."""
    h, w = video.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w}")
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return video[..., y : y + size, x : x + size]


def uniform_crop(video: torch.Tensor, size: int, idx: int) -> torch.Tensor:
    """A size x size crop of (..., H, W) along the long side: ``idx`` 0, 1, 2 = left, centre,
    right (top, centre, bottom when the height is the long side); centred on the short side."""
    if idx not in (0, 1, 2):
        raise ValueError(f"crop index must be 0, 1 or 2, got {idx}")
    h, w = video.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w}")
    y = math.ceil((h - size) / 2)
    x = math.ceil((w - size) / 2)
    if h > w:
        y = {0: 0, 1: y, 2: h - size}[idx]
    else:
        x = {0: 0, 1: x, 2: w - size}[idx]
    return video[..., y : y + size, x : x + size]


def horizontal_flip(video: torch.Tensor, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Mirror (..., H, W) left-right with probability ``p``."""
    return video.flip(-1) if p > 0 and rng.random() < p else video


def normalize(
    video: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD
) -> torch.Tensor:
    """(x - mean) / std per channel of float (3, T, H, W) (or (V, 3, T, H, W)), x in [0, 1]."""
    shape = (3, 1, 1, 1)
    m = torch.as_tensor(mean, dtype=video.dtype).reshape(shape)
    s = torch.as_tensor(std, dtype=video.dtype).reshape(shape)
    return (video - m) / s


def _channels_first(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> a (T, 3, H, W) view of the same memory (channels last)."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    return frames.permute(0, 3, 1, 2)


def _to_model(video: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (..., T, 3, H, W) -> normalised float (..., 3, T, H, W), contiguous."""
    video = video.transpose(-4, -3).float().div_(255.0)
    return normalize(video, mean, std).contiguous()


def train_transform(
    frames: torch.Tensor,
    rng: np.random.Generator,
    crop_size: int = 224,
    scale: tuple[int, int] = (256, 320),
    flip: bool = True,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> normalised float (3, T, crop_size, crop_size): random short-side
    scale in ``scale``, random crop, horizontal flip with p = 0.5 if ``flip``."""
    video = random_short_side_scale(_channels_first(frames), scale[0], scale[1], rng)
    video = random_crop(video, crop_size, rng)
    video = horizontal_flip(video, 0.5 if flip else 0.0, rng)
    return _to_model(video, mean, std)


def val_transform(
    frames: torch.Tensor,
    crop_size: int = 224,
    scale: int | None = None,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> normalised float (3, T, crop_size, crop_size): short side resized to
    ``scale`` (default: the crop size), centre crop."""
    video = short_side_resize(_channels_first(frames), scale or crop_size)
    return _to_model(uniform_crop(video, crop_size, 1), mean, std)


def test_views(
    frames: torch.Tensor,
    crop_size: int = 224,
    num_crops: int = 3,
    scale: int | None = None,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> normalised float (num_crops, 3, T, crop_size, crop_size): short side
    resized to ``scale`` (default: the crop size), then left/centre/right crops (3) or the centre
    crop (1)."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    video = short_side_resize(_channels_first(frames), scale or crop_size)
    crops = (1,) if num_crops == 1 else (0, 1, 2)
    views = torch.stack([uniform_crop(video, crop_size, i) for i in crops])
    return _to_model(views, mean, std)


test_views.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
