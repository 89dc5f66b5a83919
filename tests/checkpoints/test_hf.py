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
def test_hf_folder_loads_with_the_same_logits(tmp_path, attention):
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
    # Two implementations: the same logits to fp32 rounding, not bit for bit.
    torch.testing.assert_close(ours, hf_logits(ref, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("attention", "pos_embed"),
    [("divided", "space_time"), ("joint", "space_time"), ("divided", "space"), ("joint", "none")],
)
def test_export_hf_loads_in_transformers_with_the_same_logits(tmp_path, attention, pos_embed):
    """A model without a time or position embedding goes out with zeros there, which is the
    same model for transformers, which always adds both."""
    model = randomize(tiny(attention, pos_embed=pos_embed), seed=2)
    model.class_names = list("abcde")
    out = timesformer.export_hf(model, tmp_path / "export")
    ref = transformers.TimesformerForVideoClassification.from_pretrained(out).eval()
    assert ref.config.id2label[4] == "e"
    x = clip(seed=5)
    with torch.no_grad():
        ours = model(x)
    # Two implementations: the same logits to fp32 rounding, not bit for bit.
    torch.testing.assert_close(ours, hf_logits(ref, x), rtol=1e-4, atol=1e-4)


def test_hf_weights_file_without_folder(tmp_path):
    """A bare HF weights file (timesformer.* keys) is recognised by its key names."""
    from safetensors.torch import save_file

    ref = hf_model("divided")
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "w.safetensors")
    model = timesformer.load_checkpoint(tmp_path / "w.safetensors", num_heads=2).eval()
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf_logits(ref, x), rtol=1e-4, atol=1e-4)


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


# Clip settings unlike the defaults in every field a test reads, so that a setting that is lost
# or taken from the wrong place shows.
PREPROCESS = {
    "num_frames": 4,
    "sampling_rate": 3,
    "target_fps": 25.0,
    "sampling": "window",
    "crop_size": 16,
    "train_scale": [16, 20],
    "test_scale": 20,
    "flip": False,
    "num_clips": 2,
    "num_crops": 3,
    "spread": "uniform",
    "mean": [0.3, 0.5, 0.7],
    "std": [0.2, 0.25, 0.3],
}


def test_export_round_trip_keeps_the_clip_settings(tmp_path):
    from timesformer.inference.predictor import default_clip_config

    model = randomize(tiny("divided"), seed=3)
    model.preprocess = dict(PREPROCESS)
    out = timesformer.export_hf(model, tmp_path / "export")
    back = timesformer.load_checkpoint(out)
    assert back.preprocess == PREPROCESS
    assert default_clip_config(back) == default_clip_config(model)
    # Without stored settings only the processor file speaks, and it gives the defaults back.
    plain_model = tiny("divided")
    plain = timesformer.export_hf(plain_model, tmp_path / "plain")
    assert "timesformer_clip" not in json.loads((plain / "config.json").read_text())
    assert default_clip_config(timesformer.load_checkpoint(plain)) == default_clip_config(
        plain_model
    )


def test_exported_processor_prepares_frames_as_the_test_transform(tmp_path):
    """transformers' AutoImageProcessor, loaded from the exported folder, gives the centre view
    of our test transform: same size, mean and std (the resize kernels differ slightly)."""
    from timesformer.data import transforms

    model = tiny("divided")
    model.preprocess = dict(PREPROCESS)
    out = timesformer.export_hf(model, tmp_path / "export")
    processor = transformers.AutoImageProcessor.from_pretrained(out)
    # Smooth frames (ramps), where two bilinear kernels agree closely.
    y, x = torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 40), indexing="ij")
    frames = torch.stack([torch.stack((x, y, (x + y) / 2 + 0.1 * t), -1) for t in range(4)]).clamp(
        0, 1
    )
    frames = (frames * 255).round().to(torch.uint8)  # (T, H, W, 3)
    theirs = processor(list(frames.numpy()), return_tensors="pt")["pixel_values"][0]
    ours = transforms.val_transform(
        frames, 16, PREPROCESS["test_scale"], PREPROCESS["mean"], PREPROCESS["std"]
    ).transpose(0, 1)  # (T, 3, 16, 16) as transformers gives it
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().mean() < 0.02
    # The default mean and std would be far off: the comparison can tell them apart.
    default = transforms.val_transform(frames, 16, PREPROCESS["test_scale"]).transpose(0, 1)
    assert (theirs - default).abs().mean() > 0.2


def test_a_transformers_processor_file_gives_mean_std_and_sizes(tmp_path):
    ref = hf_model("divided")
    ref.save_pretrained(tmp_path / "hf")
    processor = {
        "image_processor_type": "VideoMAEImageProcessor",
        "size": {"shortest_edge": 18},
        "crop_size": {"height": 16, "width": 16},
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": 0.25,  # one number for every channel, as transformers allows
    }
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(processor))
    model = timesformer.load_checkpoint(tmp_path / "hf")
    assert model.preprocess == {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.25, 0.25, 0.25],
        "crop_size": 16,
        "test_scale": 18,
    }
    # A fixed (height, width) resize has no short-side equivalent: left out, not guessed.
    processor["size"] = {"height": 20, "width": 24}
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(processor))
    assert "test_scale" not in timesformer.load_checkpoint(tmp_path / "hf").preprocess


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": "wide"}, "hidden_size must be an integer"),
        ({"num_frames": None}, "num_frames must be an integer"),
        ({"hidden_size": 0}, "hidden_size must be at least 1"),
        ({"layer_norm_eps": "small"}, "layer_norm_eps must be a number"),
        ({"id2label": {"a": "x"}}, "id2label keys must be class indices"),
        ({"timesformer_clip": [4]}, "timesformer_clip is not a mapping"),
        ({"timesformer_clip": {"num_frames": 2.5}}, "damaged clip settings"),
    ],
)
def test_a_damaged_config_json_is_one_clear_error(tmp_path, change, message):
    out = timesformer.export_hf(tiny("divided"), tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=message) as err:
        timesformer.load_checkpoint(out)
    assert str(out) in str(err.value)
