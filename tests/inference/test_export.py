"""ONNX, TorchScript and Hugging Face exports reproduce the model's logits."""

from __future__ import annotations

import importlib.util
import json
import warnings

import pytest
import torch

from helpers import SCHEMES, clip, randomize, tiny
from timesformer.errors import CheckpointError
from timesformer.inference.export import (
    TOLERANCE,
    ExportError,
    ExportReport,
    export_hf_folder,
    export_metadata,
    export_onnx,
    export_torchscript,
)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def hide_package(monkeypatch, name: str) -> None:
    """Make ``importlib.util.find_spec(name)`` say the package is not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == name else real(n, *a)
    )


# Each ONNX export of a tiny model takes 2-5 s on a CPU; divided and joint run by default, the
# other schemes with the slow tests (`-m slow`).
SLOW = pytest.mark.slow


# ---------------------------------------------------------------------- ONNX
@pytest.mark.parametrize(
    "attention",
    [s if s in ("divided", "joint") else pytest.param(s, marks=SLOW) for s in SCHEMES],
)
def test_onnx_matches_model_at_two_batch_sizes(tmp_path, attention):
    ort = pytest.importorskip("onnxruntime")
    model = randomize(tiny(attention), seed=3)
    model.train()  # the export must still run in eval mode and hand the mode back
    report = export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    model.eval()

    assert report.path.is_file() and report.size_bytes == report.path.stat().st_size
    assert set(report.max_abs_diff) == {1, 3} and report.passed
    assert report.checked_with.startswith("onnxruntime")
    # An independent run at a batch size the report did not use: the batch axis is dynamic.
    proto = onnx.load(str(report.path))
    assert [i.name for i in proto.graph.input] == ["video"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    x = clip(b=2, seed=9)
    out = torch.from_numpy(session.run(["logits"], {"video": x.numpy()})[0])
    assert out.shape == (2, 5)
    assert (out - logits(model, x)).abs().max() <= TOLERANCE


def test_onnx_plain_softmax_path_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    model = randomize(tiny("joint"), seed=4)
    model.set_fused_attention(False)
    report = export_onnx(model, tmp_path / "plain.onnx", batch_size=4)
    assert set(report.max_abs_diff) == {1, 4, 5} and report.passed
    assert report.max_diff <= TOLERANCE


def test_onnx_without_onnxruntime_is_reported_not_an_error(tmp_path, monkeypatch):
    hide_package(monkeypatch, "onnxruntime")
    report = export_onnx(randomize(tiny("joint")), tmp_path / "m.onnx")
    assert report.path.is_file()
    assert report.max_abs_diff == {} and report.passed is None
    assert "onnxruntime is not installed" in report.note
    assert "onnxruntime is not installed" in report.summary()


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_missing_exporter_package_is_a_one_line_error(tmp_path, monkeypatch, package):
    hide_package(monkeypatch, package)
    with pytest.raises(ExportError, match=f"{package} not installed") as err:
        export_onnx(tiny(), tmp_path / "m.onnx")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "m.onnx").exists()


def test_failed_export_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous export")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::something\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match=r"unsupported operator aten::something$"):
        export_onnx(tiny(), target)
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_onnx_refuses_bad_options(tmp_path):
    with pytest.raises(ExportError, match="opset 9 is too old"):
        export_onnx(tiny(), tmp_path / "m.onnx", opset=9)
    with pytest.raises(ExportError, match="at least 1"):
        export_onnx(tiny(), tmp_path / "m.onnx", batch_size=0)
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(tiny(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_report_flags_a_difference_over_tolerance(tmp_path):
    report = ExportReport("onnx", tmp_path / "m.onnx", 10, 0.1, "onnxruntime", {1: 1e-6, 3: 2e-3})
    assert report.max_diff == 2e-3 and report.passed is False
    assert "EXCEEDS" in report.summary()
    assert ExportReport("onnx", tmp_path / "m.onnx", 10, 0.1).passed is None


# ---------------------------------------------------------------------- TorchScript
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("attention", SCHEMES)
def test_torchscript_matches_model(tmp_path, attention):
    model = randomize(tiny(attention), seed=5)
    report = export_torchscript(model, tmp_path / "m.pt")
    assert report.passed and set(report.max_abs_diff) == {1, 3}
    loaded = torch.jit.load(str(report.path))
    x = clip(b=2, seed=11)
    # Equal to rounding: the trace may record the inference graph, whose extra-step linears
    # are folded into one (schemes/base.py), where the model with gradients runs two.
    assert torch.allclose(logits(loaded, x), logits(model, x), atol=1e-5)


def test_exports_carry_the_class_names_and_clip_settings(tmp_path):
    """How to prepare a clip travels with the file: ONNX metadata_props (read with onnxruntime)
    and TorchScript extra files."""
    ort = pytest.importorskip("onnxruntime")
    model = randomize(tiny("divided"), seed=4)
    model.class_names = list("abcde")
    model.preprocess = {"num_frames": 4, "sampling_rate": 3, "crop_size": 16, "test_scale": 20,
                        "num_clips": 2, "mean": [0.3, 0.5, 0.7], "std": [0.2, 0.25, 0.3]}  # fmt: skip
    report = export_onnx(model, tmp_path / "m.onnx", check=False)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["timesformer.class_names"]) == list("abcde")
    clip_settings = json.loads(meta["timesformer.clip"])
    assert {k: clip_settings[k] for k in model.preprocess} == model.preprocess
    assert clip_settings["num_crops"] == 3 and "train_scale" not in clip_settings

    # Without stored settings or names: the reference protocol at the model's size, no names.
    plain = tiny("divided")
    ts = export_torchscript(plain, tmp_path / "m.pt", check=False)
    extra = {"clip.json": "", "class_names.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(ts.path), _extra_files=extra)
    assert not extra["class_names.json"]  # not written
    clip_settings = json.loads(extra["clip.json"])
    assert clip_settings == json.loads(export_metadata(plain)["clip"])
    assert (clip_settings["num_frames"], clip_settings["crop_size"]) == (4, 16)
    assert clip_settings["mean"] == [0.45, 0.45, 0.45] and clip_settings["test_scale"] is None


# ---------------------------------------------------------------------- Hugging Face
@pytest.mark.parametrize("attention", ["divided", "joint"])
def test_hf_folder_loads_in_transformers_with_equal_logits(tmp_path, attention):
    transformers = pytest.importorskip("transformers")
    model = randomize(tiny(attention), seed=6)
    model.class_names = list("vwxyz")
    report = export_hf_folder(model, tmp_path / "hf")
    assert report.passed and report.checked_with.startswith("transformers")
    hf = transformers.TimesformerForVideoClassification.from_pretrained(report.path).eval()
    assert hf.config.id2label[2] == "x"
    x = clip(b=3, seed=12)
    with torch.no_grad():
        theirs = hf(pixel_values=x.transpose(1, 2)).logits  # HF takes (B, T, C, H, W)
    assert (theirs - logits(model, x)).abs().max() <= TOLERANCE


@pytest.mark.parametrize("attention", ["space", "local_global", "axial"])
def test_hf_refuses_schemes_transformers_cannot_hold(tmp_path, attention):
    with pytest.raises(CheckpointError, match=f"cannot export attention '{attention}'"):
        export_hf_folder(tiny(attention), tmp_path / "hf")
    assert not (tmp_path / "hf" / "config.json").exists()
