"""Hostile and broken checkpoints are refused with one clear error; nothing runs, nothing loads."""

from __future__ import annotations

import gzip
import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import timesformer
from helpers import randomize, tiny
from timesformer.checkpoints.io import clean_detail
from timesformer.checkpoints.sniff import Sniffed
from timesformer.data import write_video
from timesformer.errors import CheckpointError
from timesformer.inference.export import export_torchscript


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


# Every message about a file that is not a loadable checkpoint lists what is accepted.
ACCEPTED_WORDS = (".safetensors", ".pth", ".pyth", "Hugging Face model folder")
# torch's advice to load unsafely, in the words it uses (and in ours): never relayed.
UNSAFE_ADVICE = ("weights_only=False", "set to `False`", "add_safe_globals", "trusted source")


def assert_no_unsafe_advice(message: str) -> None:
    for advice in UNSAFE_ADVICE:
        assert advice not in message, message


def assert_names_what_is_accepted(message: str, path) -> None:
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message, message
    for word in ACCEPTED_WORDS:
        assert word in message, message
    assert_no_unsafe_advice(message)


@pytest.mark.parametrize("via", ["pickle", "torch.save"])
def test_pickle_that_would_run_code_is_refused(tmp_path, via):
    marker = tmp_path / "pwned"
    payload = {"model_state": {"model.cls_token": torch.zeros(1)}, "x": Exploit(marker)}
    path = tmp_path / "evil.pyth"
    if via == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match="refused") as err:
        timesformer.load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message
    assert "system" in message  # names the code it would call (posix.system)
    assert "cannot be loaded safely" in message and "only weights" in message
    assert_no_unsafe_advice(message)
    assert not marker.exists()


def test_numpy_arrays_in_a_torch_file_are_refused_without_advice(tmp_path):
    """torch's own refusal names the global and says how to allow it; only the name is kept."""
    path = tmp_path / "old.pyth"
    torch.save({"model_state": {"model.cls_token": np.zeros(2)}}, path)
    with pytest.raises(pickle.UnpicklingError) as raw:
        torch.load(path, weights_only=True)
    assert "add_safe_globals" in str(raw.value)  # what torch says, so the check below bites
    with pytest.raises(
        CheckpointError, match=r"cannot be loaded safely \(it references numpy"
    ) as err:
        timesformer.load_checkpoint(path)
    assert_no_unsafe_advice(str(err.value))


def test_clean_detail_drops_torchs_advice(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": Exploit(tmp_path / "pwned")}, path)
    with pytest.raises(pickle.UnpicklingError) as raw:
        torch.load(path, weights_only=True)
    assert "set to `False`" in str(raw.value)
    detail = clean_detail(raw.value)
    assert detail and "\n" not in detail
    assert_no_unsafe_advice(detail)


def saved(tmp_path):
    path = tmp_path / "m.safetensors"
    timesformer.save_checkpoint(randomize(tiny()), path)
    return path


@pytest.mark.parametrize("cut", [4, 100, 0.5, -10])
def test_truncated_safetensors_is_refused(tmp_path, cut):
    data = saved(tmp_path).read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut if cut > 0 else len(data) + cut
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match=re.escape(str(bad))) as err:
        timesformer.load_checkpoint(bad)
    assert re.search(r"truncated|too short", str(err.value)), err.value
    assert "copy or save it again" in str(err.value)


def test_truncated_safetensors_header_says_how_long_it_should_be(tmp_path):
    data = saved(tmp_path).read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:200])  # inside the JSON header
    with pytest.raises(CheckpointError, match="truncated or damaged safetensors file") as err:
        timesformer.load_checkpoint(tmp_path / "cut.safetensors")
    assert "but the file has 200" in str(err.value)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_truncated_torch_file_is_refused(tmp_path, zipped):
    ok = tmp_path / "ok.pyth"
    torch.save({"model_state": tiny().state_dict()}, ok, _use_new_zipfile_serialization=zipped)
    data = ok.read_bytes()
    (tmp_path / "cut.pyth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged PyTorch") as err:
        timesformer.load_checkpoint(tmp_path / "cut.pyth")
    assert "copy or save it again" in str(err.value)
    assert_no_unsafe_advice(str(err.value))


def test_damaged_torch_zip_is_named(tmp_path):
    """The zip is whole but its pickle is not: torch's error is relayed, cleaned."""
    ok, bad = tmp_path / "ok.pth", tmp_path / "bad.pth"
    torch.save(tiny().state_dict(), ok)
    with zipfile.ZipFile(ok) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"\x80\x02}q\x00(" if info.filename.endswith("data.pkl") else data)
    with pytest.raises(CheckpointError, match="damaged PyTorch checkpoint") as err:
        timesformer.load_checkpoint(bad)
    assert "\n" not in str(err.value)
    assert_no_unsafe_advice(str(err.value))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"hello world, not a model", "this is a text file"),
        (b'{"json": true}', "this is a JSON file"),
        (b"model:\n  depth: 2\n", "this is a YAML file"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "a Git LFS pointer"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "an HTML page"),
        (bytes(range(256)) * 4, "content of no known kind"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        timesformer.load_checkpoint(path)
    assert_names_what_is_accepted(str(err.value), path)


# ---------------------------------------------------------------- files of another kind
class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def scripted(path: Path) -> None:
    """A TorchScript file as torch.jit.script writes it (deprecated in torch 2.9+, still used)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Double()).save(str(path))


def traced(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)).save(str(path))


def torchscript_pickle_only(path: Path) -> None:
    """A TorchScript archive without its code/ folder and constants.pkl: its data.pkl still
    pickles ``__torch__`` classes."""
    full = path.with_suffix(".full")
    scripted(full)
    with zipfile.ZipFile(full) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if "/code/" not in info.filename and not info.filename.endswith("constants.pkl"):
                dst.writestr(info, src.read(info))


def onnx_bytes(metadata: dict[str, str] | None = None) -> bytes:
    """A minimal ONNX model (one Identity node), as torch.onnx.export would frame it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["video"], ["logits"])], "g", [x], [y])
    model = helper.make_model(graph, producer_name="pytorch")
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)


def image(fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        Image = pytest.importorskip("PIL.Image")
        Image.fromarray(frames()[0]).save(path, format=fmt)

    return make


def zipped(files: dict[str, bytes]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)

    return make


def npz(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, w=np.zeros(3))


# kind -> (writes the file, what the message must call it)
NOT_CHECKPOINTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "torchscript_scripted": (
        scripted,
        r"this is a TorchScript program \(torch\.jit\.save\), not a checkpoint; pass the "
        "checkpoint it was exported from",
    ),
    "torchscript_pickle_only": (torchscript_pickle_only, r"this is a TorchScript program"),
    "torchscript_traced": (
        traced,
        r"this is a TorchScript program",
    ),
    "torchscript_export": (
        lambda p: export_torchscript(tiny(num_classes=2), p, check=False),
        r"this is a TorchScript export \(made by `timesformer export --format torchscript`\), "
        "not a checkpoint; pass the checkpoint it was exported from",
    ),
    "onnx_model": (
        lambda p: p.write_bytes(onnx_bytes()),
        r"this is an ONNX model, not a checkpoint; pass the checkpoint it was exported from",
    ),
    "onnx_export": (
        lambda p: p.write_bytes(onnx_bytes({"timesformer.clip": "{}"})),
        r"this is an ONNX export \(made by `timesformer export --format onnx`\)",
    ),
    "video_mp4": (
        lambda p: write_video(p, frames(), 30.0, container_format="mp4"),
        r"this is a video file \(MP4\)",
    ),
    "video_avi": (
        lambda p: write_video(p, frames(), 30.0, "mpeg4", container_format="avi"),
        r"this is a video file \(AVI\)",
    ),
    "video_mkv": (
        lambda p: write_video(p, frames(), 30.0, container_format="matroska"),
        r"this is a video file \(Matroska/WebM\)",
    ),
    "image_png": (image("PNG"), r"this is an image \(PNG\)"),
    "image_jpeg": (image("JPEG"), r"this is an image \(JPEG\)"),
    "zip_of_notes": (
        zipped({"notes.txt": b"hi"}),
        r"this is a zip archive \(it holds notes\.txt\)",
    ),
    "zip_holding_a_checkpoint": (
        zipped({"run/model.safetensors": b"x"}),
        r"zip archive holding run/model\.safetensors, not a checkpoint; unpack it",
    ),
    "npz": (npz, r"this is a NumPy \.npz archive"),
    "gzip": (
        lambda p: p.write_bytes(gzip.compress(b"weights")),
        r"this is a gzip-compressed file, not a checkpoint; decompress it",
    ),
    "plain_pickle": (
        lambda p: p.write_bytes(pickle.dumps({"w": torch.zeros(2)})),
        r"this is a plain Python pickle",
    ),
    "hf_config": (
        lambda p: p.write_text(json.dumps({"model_type": "timesformer", "hidden_size": 8})),
        r"this is a Hugging Face config\.json, not a checkpoint; pass the folder that holds it",
    ),
}


@pytest.mark.parametrize("kind", list(NOT_CHECKPOINTS))
def test_a_file_of_another_kind_is_named(kind, tmp_path):
    """Named by its content: each file is called model.pth, a checkpoint's name."""
    make, named = NOT_CHECKPOINTS[kind]
    path = tmp_path / "model.pth"
    make(path)
    with pytest.raises(CheckpointError) as err:
        timesformer.load_checkpoint(path)
    message = str(err.value)
    assert re.search(named, message), message
    assert_names_what_is_accepted(message, path)


def test_torchscript_missed_by_the_sniffer_is_still_named(tmp_path, monkeypatch):
    """torch.load's own refusal of a TorchScript archive (which advises weights_only=False) is
    reworded too, should the content check ever let one through."""
    import timesformer.checkpoints.io as io

    path = tmp_path / "model.pt"
    scripted(path)
    monkeypatch.setattr(io.sniff, "sniff", lambda _: Sniffed("torch-zip"))
    with pytest.raises(CheckpointError, match="this is a TorchScript program") as err:
        timesformer.load_checkpoint(path)
    assert_names_what_is_accepted(str(err.value), path)


def test_a_checkpoint_is_not_mistaken_for_another_kind(tmp_path):
    """Each format this project reads passes the content check (and loads)."""
    model = randomize(tiny())
    ours = saved(tmp_path)
    torch.save({"model_state": {f"model.{k}": v for k, v in model.state_dict().items()}},
               tmp_path / "ref.pyth")  # fmt: skip
    torch.save(model.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    for path in (ours, tmp_path / "ref.pyth", tmp_path / "legacy.pth"):
        assert timesformer.load_checkpoint(path).config.depth == model.config.depth


def test_missing_file_and_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        timesformer.load_checkpoint(tmp_path / "nope.pyth")
    with pytest.raises(CheckpointError, match=r"config\.json"):
        timesformer.load_checkpoint(tmp_path)


def test_a_run_folder_points_at_its_checkpoints(tmp_path):
    saved(tmp_path)
    with pytest.raises(CheckpointError, match=r"it holds m\.safetensors: pass one of those"):
        timesformer.load_checkpoint(tmp_path)


def test_a_pickle_of_no_tensors_says_what_it_holds(tmp_path):
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="it holds a list, not a mapping") as err:
        timesformer.load_checkpoint(tmp_path / "list.pth")
    assert_names_what_is_accepted(str(err.value), tmp_path / "list.pth")


def test_tensors_that_are_not_a_model(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a TimeSformer or ViT checkpoint"):
        timesformer.load_checkpoint(tmp_path / "other.pth")


def test_wrong_shapes_are_refused_and_the_model_is_untouched(tmp_path):
    path = saved(tmp_path)
    model = tiny("divided", embed_dim=48, num_heads=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="shapes do not fit"):
        timesformer.load_checkpoint(path, model)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_wrong_model_family_lists_the_keys(tmp_path):
    path = saved(tmp_path)  # divided
    model = tiny("joint")
    with pytest.raises(CheckpointError, match=r"unexpected keys: blocks\.0\.temporal"):
        timesformer.load_checkpoint(path, model)
    report = timesformer.load_checkpoint(path, model, strict=False).load_report
    assert "blocks.0.temporal_fc.weight" in report.unexpected


def test_missing_keys_are_reported(tmp_path):
    from safetensors.torch import load_file, save_file

    path = saved(tmp_path)
    state = load_file(path)
    del state["blocks.1.mlp.fc2.bias"]
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(state, tmp_path / "partial.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match=r"missing keys: blocks\.1\.mlp\.fc2\.bias"):
        timesformer.load_checkpoint(tmp_path / "partial.safetensors")
