"""A tiny synthetic data set and run config shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from timesformer.data import make_synthetic


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """Two time-reversal pairs (4 classes) of simple 8-frame 16x16 videos: 32 train, 6 val per
    class."""
    out = tmp_path_factory.mktemp("synth") / "data"
    make_synthetic(
        out,
        seed=0,
        pairs=["horizontal", "depth"],
        train_per_class=32,
        val_per_class=6,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )
    return out
