"""Fixtures for the server's tests: the tiny checkpoint and videos of the inference tests, the
model loaded once, and an application per test with its own upload folder and limits."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inference.conftest import checkpoint, videos  # noqa: F401

# The clips' frame step: the tiny model's 4 frames x 2 fit the 4-second test videos.
RATE = 2


@pytest.fixture(scope="session")
def served(checkpoint):  # noqa: F811
    """The tiny checkpoint loaded as ``timesformer serve --sampling-rate 2`` loads it."""
    pytest.importorskip("fastapi", reason="the serve extra: pip install 'timesformer[serve]'")
    from timesformer.serve.model import load_model
    from timesformer.serve.settings import ServeSettings

    return load_model(ServeSettings(checkpoint=str(checkpoint), sampling_rate=RATE))


@pytest.fixture
def uploads(tmp_path) -> Path:
    """The test's upload folder, which every request must leave empty."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def allowed(tmp_path, videos) -> Path:  # noqa: F811
    """The folder JSON paths may name: copies of the test videos (the shared folder of the
    videos stays as the other tests expect it)."""
    folder = tmp_path / "allowed"
    folder.mkdir()
    for video in videos:
        shutil.copy(video, folder / video.name)
    return folder


@pytest.fixture
def make_client(served, checkpoint, allowed, uploads) -> Iterator[Callable]:  # noqa: F811
    """``make_client(**settings)``: a started ``TestClient`` of an app over ``served``, with
    ``allowed`` the allowed folder and uploads in ``uploads``; all are closed after the test."""
    from fastapi.testclient import TestClient

    from timesformer.serve.app import create_app
    from timesformer.serve.settings import ServeSettings

    opened = []

    def make(**changes):
        values = {
            "checkpoint": str(checkpoint),
            "sampling_rate": RATE,
            "allow_dirs": (allowed,),
            "upload_dir": uploads,
            **changes,
        }
        client = TestClient(create_app(served, ServeSettings(**values)))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    """A client of the app with the default limits."""
    return make_client()


def upload(path: Path, name: str | None = None) -> dict:
    """The ``files=`` argument that uploads ``path`` as the field ``video``."""
    return {"video": (name or path.name, path.read_bytes(), "video/mp4")}
