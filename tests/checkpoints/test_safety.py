"""Hostile and broken checkpoints are refused with one clear error; nothing runs, nothing loads."""

from __future__ import annotations

import pickle
import re

import pytest
import torch

import timesformer
from helpers import randomize, tiny
from timesformer.errors import CheckpointError


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


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
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert not marker.exists()


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
    with pytest.raises(CheckpointError, match=re.escape(str(bad))):
        timesformer.load_checkpoint(bad)


def test_truncated_torch_file_is_refused(tmp_path):
    torch.save({"model_state": tiny().state_dict()}, tmp_path / "ok.pyth")
    data = (tmp_path / "ok.pyth").read_bytes()
    (tmp_path / "cut.pyth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        timesformer.load_checkpoint(tmp_path / "cut.pyth")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello world, not a model", "not a readable checkpoint"),
        (b'{"json": true}', "not a readable checkpoint"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        timesformer.load_checkpoint(path)


def test_missing_file_and_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        timesformer.load_checkpoint(tmp_path / "nope.pyth")
    with pytest.raises(CheckpointError, match=r"config\.json"):
        timesformer.load_checkpoint(tmp_path)


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
