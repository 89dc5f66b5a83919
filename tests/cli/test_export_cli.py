"""`timesformer export`: written files, printed differences, one-line errors."""

from __future__ import annotations

import errno
import importlib.util
import os
from pathlib import Path

import pytest
import torch

import timesformer
from helpers import clip, randomize, tiny
from timesformer.cli import main


@pytest.fixture
def checkpoint(tmp_path):
    """A saved tiny divided model (this project's safetensors format) and the model itself."""
    model = randomize(tiny("divided"), seed=7)
    path = timesformer.save_checkpoint(model, tmp_path / "tiny.safetensors")
    return path, model


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_writes_a_file_and_prints_the_difference(tmp_path, capsys, checkpoint):
    path, model = checkpoint
    out = tmp_path / "out" / "model.pt"
    assert main(["export", str(path), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max abs diff on logits" in printed
    x = clip(b=2, seed=3)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(out))(x), model(x), atol=1e-5)


def test_onnx_export_via_cli(tmp_path, capsys, checkpoint):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    path, _ = checkpoint
    out = tmp_path / "model.onnx"
    code = main(["export", str(path), "--format", "onnx", "--out", str(out), "--batch-size", "2"])
    assert code == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "checked with onnxruntime" in printed
    assert "at batch 1" in printed and "at batch 3" in printed and "<= 0.0001" in printed


def test_hf_export_via_cli(tmp_path, capsys, checkpoint):
    pytest.importorskip("transformers")
    path, _ = checkpoint
    out = tmp_path / "hf"
    assert main(["export", str(path), "--format", "hf", "--out", str(out), "--no-check"]) == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    printed = capsys.readouterr().out
    assert f"wrote {out} (hf" in printed and "max abs diff" not in printed


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_checkpoint_can_be_given_as_an_option_like_the_other_commands(tmp_path, capsys, checkpoint):
    path, model = checkpoint
    out = tmp_path / "model.pt"
    argv = ["export", "--checkpoint", str(path), "--format", "torchscript", "--out", str(out)]
    assert main(argv) == 0
    x = clip(b=1, seed=4)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(out))(x), model(x), atol=1e-5)


@pytest.mark.parametrize("twice", [False, True])
def test_checkpoint_given_never_or_twice_is_exit_2_and_one_line(
    tmp_path, capsys, twice, checkpoint
):
    path, _ = checkpoint
    out = tmp_path / "model.pt"
    where = [str(path), "--checkpoint", str(path)] if twice else []
    assert main(["export", *where, "--format", "torchscript", "--out", str(out)]) == 2
    assert "give the checkpoint once" in one_error_line(capsys)
    assert not out.exists()


def test_missing_checkpoint_is_exit_2_and_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    code = main(["export", str(missing), "--format", "torchscript", "--out", str(tmp_path / "x")])
    assert code == 2
    assert str(missing) in one_error_line(capsys)
    assert not (tmp_path / "x").exists()


def test_unknown_format_is_an_argparse_error(tmp_path, capsys, checkpoint):
    path, _ = checkpoint
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(path), "--format", "tflite", "--out", str(tmp_path / "m")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


def test_scheme_hf_cannot_hold_is_exit_2_and_one_line(tmp_path, capsys):
    path = timesformer.save_checkpoint(tiny("axial"), tmp_path / "axial.safetensors")
    out = tmp_path / "hf"
    assert main(["export", str(path), "--format", "hf", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "'axial'" in line and "divided and joint" in line
    assert not out.exists()


def test_missing_onnxscript_is_exit_2_and_one_line(tmp_path, capsys, monkeypatch, checkpoint):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a)
    )
    path, _ = checkpoint
    out = tmp_path / "m.onnx"
    assert main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "onnxscript not installed" in line and "pip install onnxscript" in line
    assert not out.exists()


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fmt", ["torchscript", "hf"])
def test_a_write_that_fails_midway_is_one_line_and_leaves_nothing(
    tmp_path, capsys, monkeypatch, checkpoint, fmt
):
    path, _ = checkpoint
    if fmt == "torchscript":

        def half_then_full(self, data):
            with open(self, "wb") as f:
                f.write(bytes(data)[: len(data) // 2])
            _full_disk()

        monkeypatch.setattr(Path, "write_bytes", half_then_full)
    else:
        # The weights are written, then the disk fills up before the folder is complete.
        monkeypatch.setattr("timesformer.checkpoints.hf.write_text", _full_disk)
    out = tmp_path / "new" / "model"
    argv = ["export", str(path), "--format", fmt, "--out", str(out), "--no-check"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert (
        line == f"timesformer export: error: --out {out}: writing failed: No space left on device"
    )
    # No half-written file or folder, no temporary, and not the folder made for them.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]
