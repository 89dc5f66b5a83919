"""Checkpoints by name, offline: Hub repo ids from a Hugging Face cache laid out here, and the
authors' model zoo downloaded from an HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import timesformer
from helpers import clip, randomize, tiny
from inference.conftest import videos  # noqa: F401
from timesformer.checkpoints import hub, zoo
from timesformer.cli import main
from timesformer.errors import CheckpointError

HASH = "a" * 40
HASH2 = "b" * 40


def _model(seed: int, names: list[str]) -> timesformer.TimeSformer:
    model = randomize(tiny(), seed=seed)
    model.class_names = names
    return model


def add_repo(cache: Path, repo: str, model, commit: str = HASH, ref: str | None = "main") -> Path:
    """Lay out ``repo`` in a Hugging Face cache as ``snapshot_download`` leaves it."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = timesformer.export_hf(model, root / "snapshots" / commit)
    if ref is not None:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline: nothing can be downloaded."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    # huggingface_hub reads these variables when imported: set both the variables and its copies.
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


# ---------------------------------------------------------------------- Hub repo ids
def test_hub_id_loads_with_its_class_names(hf_cache):
    src = _model(1, list("abcde"))
    add_repo(hf_cache, "org/tiny", src)
    model = timesformer.load_checkpoint("org/tiny")
    assert model.class_names == list("abcde")  # config.json's id2label
    assert model.load_report.source == "hf" and model.load_report.path == "org/tiny"
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=1e-5, atol=1e-5)


def test_revision_by_ref_and_by_commit(hf_cache):
    add_repo(hf_cache, "org/tiny", _model(1, list("abcde")))
    add_repo(hf_cache, "org/tiny", _model(2, list("vwxyz")), commit=HASH2, ref="v2")
    assert timesformer.load_checkpoint("org/tiny@v2").class_names == list("vwxyz")
    assert timesformer.load_checkpoint(f"org/tiny@{HASH2}").class_names == list("vwxyz")
    assert timesformer.load_checkpoint("org/tiny@main").class_names == list("abcde")


def test_predict_cli_with_a_hub_id(hf_cache, videos, capsys):  # noqa: F811
    add_repo(hf_cache, "org/tiny", _model(1, list("abcde")))
    argv = ["predict", str(videos[0]), "--checkpoint", "org/tiny", "--json", "--no-progress"]
    assert main([*argv, "--sampling-rate", "2", "--topk", "2"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(row["top"]) == 2 and {t["label"] for t in row["top"]} <= set("abcde")


def test_predict_without_checkpoint_uses_the_default_model(hf_cache, videos, capsys):  # noqa: F811
    argv = ["predict", str(videos[0]), "--json", "--no-progress", "--sampling-rate", "2"]
    assert main(argv) == 2  # not cached, offline: one line naming the default and the fix
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("timesformer predict: error: ")
    assert zoo.DEFAULT_MODEL in err and "HF_HUB_OFFLINE" in err
    add_repo(hf_cache, zoo.DEFAULT_MODEL, _model(3, list("fghij")))
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["top"][0]["label"] in set("fghij")


def test_offline_and_not_cached_is_one_line(hf_cache, capsys):
    with pytest.raises(CheckpointError) as err:
        timesformer.load_checkpoint("org/missing")
    text = str(err.value)
    assert text.startswith("org/missing: ") and "\n" not in text
    assert "HF_HUB_OFFLINE" in text and "local path" in text
    # A revision that is not cached either.
    add_repo(hf_cache, "org/tiny", _model(1, list("abcde")))
    with pytest.raises(CheckpointError, match=r"^org/tiny@nope: .*not in the Hugging Face cache"):
        timesformer.load_checkpoint("org/tiny@nope")
    assert main(["info", "org/missing"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_local_folder_named_like_an_id_wins(hf_cache, tmp_path, monkeypatch):
    add_repo(hf_cache, "org/tiny", _model(1, list("abcde")))
    timesformer.export_hf(_model(2, list("vwxyz")), tmp_path / "org" / "tiny")
    monkeypatch.chdir(tmp_path)
    assert timesformer.load_checkpoint("org/tiny").class_names == list("vwxyz")


def test_what_counts_as_a_hub_id(tmp_path):
    assert hub.hub_id("facebook/timesformer-base-finetuned-k400") == (
        "facebook/timesformer-base-finetuned-k400",
        None,
    )
    assert hub.hub_id("org/name@v1.0") == ("org/name", "v1.0")
    for path in ("runs/best.safetensors", "a/b/c", "./x/y", "../x/y", "/abs/x", "name"):
        assert hub.hub_id(path) is None, path
    # A mistyped path keeps the reader's own error, with no Hub lookup.
    with pytest.raises(CheckpointError, match="no such file or folder"):
        timesformer.load_checkpoint(tmp_path / "runs" / "best.safetensors")


def test_hub_errors_become_one_line(monkeypatch):
    """Each huggingface_hub failure is one CheckpointError line saying how to fix it."""
    import huggingface_hub
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    class Response:
        status_code = 404
        headers: dict = {}  # noqa: RUF012
        request = None

    def fail(error):
        def snapshot_download(*args, **kwargs):
            raise error

        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)

    for error, words in (
        (RepositoryNotFoundError("gone", response=Response()), "HF_TOKEN"),
        (GatedRepoError("gated", response=Response()), "gated"),
    ):
        fail(error)
        with pytest.raises(CheckpointError) as err:
            hub.resolve_checkpoint("org/private")
        assert str(err.value).startswith("org/private: ") and words in str(err.value)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- the reference zoo
class _Server:
    """Serves ``blob`` at any path; honours Range; can cut the connection after ``cut`` bytes."""

    def __init__(self, blob: bytes):
        self.blob = blob
        self.cut: int | None = None
        self.requests: list[str | None] = []  # the Range header of each request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = server.blob[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.blob) - 1}/*")
                self.end_headers()
                self.wfile.write(body if server.cut is None else body[: server.cut])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ref.pyth"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


NAME = "TimeSformer_divST_8x32_224_K400"


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A tiny reference .pyth served on 127.0.0.1 as the zoo's K400 entry; an empty cache."""
    from huggingface_hub import constants

    src = _model(4, list("abcde"))
    timesformer.save_checkpoint(src, tmp_path / "ref.pyth", format="reference")
    server = _Server((tmp_path / "ref.pyth").read_bytes())
    table = dict(zoo.REFERENCE)
    table[NAME] = dataclasses.replace(table[NAME], url=server.url)
    monkeypatch.setattr(zoo, "REFERENCE", table)
    monkeypatch.setenv("TIMESFORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server, src, tmp_path / "cache" / "reference"
    server.httpd.shutdown()
    server.httpd.server_close()


def test_zoo_downloads_once_and_loads(served):
    server, src, folder = served
    model = timesformer.load_checkpoint(f"reference:{NAME}")
    assert model.load_report.source == "reference"
    assert (folder / f"{NAME}.pyth").read_bytes() == server.blob
    assert (folder / f"{NAME}.pyth.sha256").read_text().split()[0]
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))
    timesformer.load_checkpoint(f"reference:{NAME}")
    assert server.requests == [None]  # the second load came from the cache


def test_zoo_resumes_a_partial_download(served):
    server, _, folder = served
    folder.mkdir(parents=True)
    half = len(server.blob) // 2
    (folder / f"{NAME}.pyth.part").write_bytes(server.blob[:half])
    path = zoo.fetch_reference(f"reference:{NAME}", progress=False)
    assert server.requests == [f"bytes={half}-"]
    assert path.read_bytes() == server.blob and not (folder / f"{NAME}.pyth.part").exists()


def test_a_broken_download_never_has_the_final_name(served):
    server, _, folder = served
    server.cut = 1000
    with pytest.raises(CheckpointError) as err:
        zoo.fetch_reference(f"reference:{NAME}", progress=False)
    assert str(err.value).startswith(f"reference:{NAME}: download from ") and "\n" not in str(
        err.value
    )
    assert not (folder / f"{NAME}.pyth").exists()
    assert (folder / f"{NAME}.pyth.part").stat().st_size == 1000
    server.cut = None  # the network is back: the next call continues from the partial file
    assert zoo.fetch_reference(f"reference:{NAME}", progress=False).read_bytes() == server.blob
    assert server.requests == [None, "bytes=1000-"]


def test_a_changed_cached_file_is_refused(served):
    path = zoo.fetch_reference(f"reference:{NAME}", progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="has changed since it was downloaded"):
        timesformer.load_checkpoint(f"reference:{NAME}")


def test_zoo_offline_or_unknown_name(served, monkeypatch):
    from huggingface_hub import constants

    with pytest.raises(CheckpointError, match=r"^reference:nope: not in the authors' model zoo"):
        timesformer.load_checkpoint("reference:nope")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"not in the cache .* HF_HUB_OFFLINE"):
        timesformer.load_checkpoint(f"reference:{NAME}")
    assert served[0].requests == []


def test_zoo_names_its_label_set(served):
    """The authors' files have no class names: a 400-class K400 file gets Kinetics-400's."""
    server, _, folder = served
    model = randomize(tiny(num_classes=400), seed=5)
    folder.mkdir(parents=True)
    blob = {"model_state": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save(blob, folder / f"{NAME}.pyth")
    loaded = timesformer.load_checkpoint(f"reference:{NAME}", num_heads=2)
    assert len(loaded.class_names) == 400 and loaded.class_names[0] == "abseiling"
    assert server.requests == []


def test_model_init_and_predictor_take_a_hub_id(hf_cache):
    """``model.init`` in a training config and ``Predictor.from_checkpoint`` resolve names too."""
    from timesformer.engine.builders import build_model
    from timesformer.engine.config import load_config
    from timesformer.inference.predictor import Predictor

    add_repo(hf_cache, "org/tiny", _model(1, list("abcde")))
    overrides = ["model.init=org/tiny", "data.num_frames=4", "data.crop_size=16"]
    cfg = load_config(overrides=overrides, check=False)
    model = build_model(cfg, num_classes=5, class_names=list("abcde"))
    assert model.load_report.path == "org/tiny" and model.load_report.loaded
    predictor = Predictor.from_checkpoint("org/tiny", device="cpu")
    assert predictor.labels == list("abcde")


def test_published_models_are_sampled_as_their_authors_tested_them(hf_cache):
    """The official repos carry no frame sampling (transformers' preprocessor config has none):
    SSv2 models spread their frames over the whole video, K400 ones take every 32nd frame."""
    import json

    from timesformer.checkpoints.hf import CLIP_KEY
    from timesformer.inference.predictor import default_clip_config

    for repo, want in (
        ("facebook/timesformer-base-finetuned-ssv2", ("segment", None)),
        ("facebook/timesformer-base-finetuned-k400", ("window", 32)),
    ):
        snapshot = add_repo(hf_cache, repo, _model(1, list("abcde")))
        config = json.loads((snapshot / "config.json").read_text())
        config.pop(CLIP_KEY, None)  # as the official repos are: no clip settings of this project's
        (snapshot / "config.json").write_text(json.dumps(config))
        clip = default_clip_config(timesformer.load_checkpoint(repo))
        got = (clip.sampling, clip.sampling_rate if clip.sampling == "window" else None)
        assert got == want, repo
