"""Fixtures for the inference tests: a tiny checkpoint and small real videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import randomize, tiny
from timesformer.checkpoints import save_checkpoint
from timesformer.data import write_video

CLASSES = ["left", "right", "up", "down", "still"]


def moving_frames(n: int, size: int = 24, seed: int = 0) -> list[np.ndarray]:
    """(size, size, 3) uint8 frames of a bright square crossing a textured background."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (2 * i) % (size - 6)
        f[8:14, x : x + 6] = 255
        frames.append(f)
    return frames


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A random tiny divided model (4 frames of 16 px, 5 classes) with its class names."""
    model = randomize(tiny(), seed=1)
    model.class_names = list(CLASSES)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> list[Path]:
    """Three short H.264 videos of 40 frames at 10 fps, 24 x 32 px."""
    folder = tmp_path_factory.mktemp("videos")
    out = []
    for k in range(3):
        frames = [np.pad(f, ((0, 0), (4, 4), (0, 0))) for f in moving_frames(40, seed=k)]
        out.append(write_video(folder / f"clip{k}.mp4", frames, 10, options={"g": "10"}))
    return out
