"""Shared fixtures: tiny models, random clips, and an offline environment."""

from __future__ import annotations

import os

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
