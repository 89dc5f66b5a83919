"""Equivalence with transformers' TimesformerForVideoClassification, both directions."""

from __future__ import annotations

import json

import pytest
import torch

import timesformer
from helpers import clip, randomize, tiny
from timesformer.errors import CheckpointError

transformers = pytest.importorskip("transformers")

HF_ATTENTION = {"divided": "divided_space_time", "joint": "joint_space_time"}


def hf_model(attention: str, num_labels: int = 5):
    cfg = transformers.TimesformerConfig(
        image_size=16,
        patch_size=4,
        num_channels=3,
        num_frames=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        attention_type=HF_ATTENTION[attention],
        num_labels=num_labels,
    )
    model = transformers.TimesformerForVideoClassification(cfg).eval()
    return randomize(model, seed=1)


def hf_logits(model, x: torch.Tensor) -> torch.Tensor:
    """transformers takes (B, T, C, H, W)."""
    with torch.no_grad():
        return model(pixel_values=x.transpose(1, 2)).logits


@pytest.mark.parametrize("attention", ["divided", "joint"])
def test_hf_folder_loads_with_identical_logits(tmp_path, attention):
    ref = hf_model(attention)
    ref.config.id2label = {i: f"class {i}" for i in range(5)}
    ref.config.label2id = {f"class {i}": i for i in range(5)}
    ref.save_pretrained(tmp_path / "hf")
    model = timesformer.load_checkpoint(tmp_path / "hf").eval()
    assert model.config.attention == attention
    assert model.class_names == [f"class {i}" for i in range(5)]
    assert model.load_report.source == "hf"
    assert model.load_report.missing == [] and model.load_report.unexpected == []
    x = clip()
    with torch.no_grad():
        ours = model(x)
    assert (ours - hf_logits(ref, x)).abs().max() <= 1e-4


@pytest.mark.parametrize("attention", ["divided", "joint"])
def test_export_hf_loads_in_transformers_with_identical_logits(tmp_path, attention):
    model = randomize(tiny(attention), seed=2)
    model.class_names = list("abcde")
    out = timesformer.export_hf(model, tmp_path / "export")
    ref = transformers.TimesformerForVideoClassification.from_pretrained(out).eval()
    assert ref.config.id2label[4] == "e"
    x = clip(seed=5)
    with torch.no_grad():
        ours = model(x)
    assert (ours - hf_logits(ref, x)).abs().max() <= 1e-4


def test_hf_weights_file_without_folder(tmp_path):
    """A bare HF weights file (timesformer.* keys) is recognised by its key names."""
    from safetensors.torch import save_file

    ref = hf_model("divided")
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "w.safetensors")
    model = timesformer.load_checkpoint(tmp_path / "w.safetensors", num_heads=2).eval()
    x = clip()
    with torch.no_grad():
        assert (model(x) - hf_logits(ref, x)).abs().max() <= 1e-4


def test_hf_key_mapping_matches_spec():
    state = tiny("divided").state_dict()
    hf = timesformer.checkpoints.keys.to_hf(state)
    assert "timesformer.encoder.layer.1.temporal_attention.attention.qkv.weight" in hf
    assert "timesformer.encoder.layer.0.output.dense.weight" in hf  # mlp.fc2
    assert "timesformer.encoder.layer.0.attention.output.dense.weight" in hf  # attn.proj
    assert "timesformer.embeddings.position_embeddings" in hf and "classifier.bias" in hf
    assert set(timesformer.checkpoints.keys.from_hf(hf)) == set(state)


@pytest.mark.parametrize("attention", ["space", "local_global", "axial"])
def test_export_refuses_schemes_transformers_cannot_run(tmp_path, attention):
    with pytest.raises(CheckpointError, match="transformers implements divided and joint"):
        timesformer.export_hf(tiny(attention), tmp_path / "x")
    assert not (tmp_path / "x" / "config.json").exists()


def test_export_writes_a_loadable_config(tmp_path):
    out = timesformer.export_hf(tiny("joint"), tmp_path / "e")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["attention_type"] == "joint_space_time" and cfg["num_frames"] == 4
