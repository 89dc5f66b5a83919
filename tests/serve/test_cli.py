"""``timesformer serve``: one error line (exit 2) for a missing extra, a bad option or a bad
checkpoint, before any model loads; and the application it hands to uvicorn."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install 'timesformer[serve]'")

from serve.conftest import RATE
from timesformer.cli import main


def _errors(capsys, *argv) -> tuple[int, list[str]]:
    code = main(["serve", *map(str, argv)])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("package", ["fastapi", "uvicorn", "python_multipart"])
def test_a_missing_extra_says_how_to_install_it(capsys, monkeypatch, package):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a)
    )
    code, lines = _errors(capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0] == (
        f"timesformer serve: error: {package.replace('_', '-')} is not installed: "
        "pip install 'timesformer[serve]'"
    )


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--workers", "0"], "--workers"),
        (["--queue-size", "0"], "--queue-size"),
        (["--max-batch", "0"], "--max-batch"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--batch-window-ms", "-1"], "--batch-window-ms"),
        (["--allow-dir", "no/such/folder"], "no/such/folder"),
        (["--upload-dir", "no/such/folder"], "--upload-dir"),
        (["--checkpoint", "missing.safetensors"], "missing.safetensors"),
    ],
)
def test_bad_options_are_one_line(capsys, argv, word):
    code, lines = _errors(capsys, *argv)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("timesformer serve: error: ") and word in lines[0]


def test_serve_hands_uvicorn_the_app_and_settings(monkeypatch, checkpoint, videos, tmp_path):
    import uvicorn
    from fastapi.testclient import TestClient

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    code = main(["serve", "--checkpoint", str(checkpoint), "--sampling-rate", str(RATE),
                 "--port", "8123", "--allow-dir", str(videos[0].parent),
                 "--upload-dir", str(tmp_path), "--max-upload-mb", "5"])  # fmt: skip
    assert code == 0
    assert (seen["host"], seen["port"], seen["access_log"]) == ("127.0.0.1", 8123, False)
    server = seen["app"].state.server
    assert server.settings.allow_dirs == (videos[0].parent,)
    assert server.settings.max_upload_bytes == 5 * 2**20
    with TestClient(seen["app"]) as client:
        body = client.post("/v1/predict", json={"path": videos[0].name}).json()
    assert len(body["top"]) == 5 and body["views"] == 3
