"""Reference-format (.pyth) checkpoints, the project's own format, and resizing on load."""

from __future__ import annotations

import pytest
import torch
import yaml

import timesformer
from helpers import clip, randomize, tiny

REF_ATTENTION = {
    "divided": "divided_space_time",
    "joint": "joint_space_time",
    "space": "space_only",
}


def write_reference_pyth(model, path, attention: str) -> None:
    """What the authors' training code saves: a pickle of plain containers and tensors."""
    cfg = {
        "TIMESFORMER": {"ATTENTION_TYPE": REF_ATTENTION[attention]},
        "DATA": {"NUM_FRAMES": 4, "TRAIN_CROP_SIZE": 16},
        "MODEL": {"NUM_CLASSES": 5},
    }
    blob = {
        "epoch": 15,
        "model_state": {f"model.{k}": v.clone() for k, v in model.state_dict().items()},
        "optimizer_state": {
            "state": {0: {"momentum_buffer": torch.ones(3)}},
            "param_groups": [{"lr": 0.005}],
        },
        "cfg": yaml.safe_dump(cfg),
    }
    torch.save(blob, path)


@pytest.mark.parametrize("attention", ["divided", "joint", "space"])
def test_reference_pyth_loads_and_round_trips(tmp_path, attention):
    src = randomize(tiny(attention, num_heads=2))
    write_reference_pyth(src, tmp_path / "ref.pyth", attention)
    # The reference has 12 heads of 64; a tiny model needs its head count stated.
    model = timesformer.load_checkpoint(tmp_path / "ref.pyth", num_heads=2).eval()
    assert model.config.attention == attention
    assert model.load_report.source == "reference"
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))

    # Back to the reference layout: the same keys and tensors as the file we started from.
    timesformer.save_checkpoint(model, tmp_path / "back.pyth", format="reference")
    a = torch.load(tmp_path / "ref.pyth", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "back.pyth", weights_only=True)["model_state"]
    assert sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k])

    # And through the project's own format, with class names.
    timesformer.save_checkpoint(model, tmp_path / "m.safetensors", class_names=list("vwxyz"))
    again = timesformer.load_checkpoint(tmp_path / "m.safetensors").eval()
    assert again.config == model.config and again.class_names == list("vwxyz")
    with torch.no_grad():
        torch.testing.assert_close(again(x), src(x))


def test_divided_reference_checkpoint_has_the_reference_keys():
    keys = set(timesformer.create_model("timesformer_base").state_dict())
    assert len(keys) == 249
    assert {
        "cls_token",
        "pos_embed",
        "time_embed",
        "patch_embed.proj.weight",
        "head.bias",
        "blocks.11.temporal_fc.weight",
        "blocks.0.temporal_norm1.bias",
    } <= keys


@pytest.mark.parametrize("scheme_name", ["local_global", "axial"])
def test_own_format_round_trips_every_scheme(tmp_path, scheme_name):
    src = randomize(tiny(scheme_name))
    timesformer.save_checkpoint(src, tmp_path / "m.safetensors")
    model = timesformer.load_checkpoint(tmp_path / "m.safetensors").eval()
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))


def test_load_at_other_frame_count_and_size(tmp_path):
    """8 -> 16 frames, 16 -> 32 px: embeddings resized, logits equal the run-time resize."""
    src = randomize(tiny("divided"))
    timesformer.save_checkpoint(src, tmp_path / "m.safetensors")
    model = timesformer.load_checkpoint(tmp_path / "m.safetensors", num_frames=8, img_size=32)
    assert model.time_embed.shape == (1, 8, 32) and model.pos_embed.shape == (1, 65, 32)
    assert any("time_embed" in r for r in model.load_report.resized)
    assert any("pos_embed 4x4->8x8" in r for r in model.load_report.resized)
    x = clip(t=8, h=32, w=32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), src(x))


def test_new_class_count_replaces_the_head_and_says_so(tmp_path):
    src = randomize(tiny("divided"))
    timesformer.save_checkpoint(src, tmp_path / "m.safetensors")
    model = timesformer.load_checkpoint(tmp_path / "m.safetensors", num_classes=9)
    assert model.head.weight.shape == (9, 32)
    assert any(r.startswith("head.weight") for r in model.load_report.initialised)
    torch.testing.assert_close(model.blocks[1].attn.qkv.weight, src.blocks[1].attn.qkv.weight)


def test_load_into_an_existing_model(tmp_path):
    src = randomize(tiny("axial"))
    timesformer.save_checkpoint(src, tmp_path / "m.safetensors")
    model = tiny("axial")
    out = timesformer.load_checkpoint(tmp_path / "m.safetensors", model)
    assert out is model
    torch.testing.assert_close(model.time_embed, src.time_embed)


@pytest.mark.parametrize("fmt", ["timesformer", "reference"])
def test_a_built_model_comes_in_eval_mode_and_a_given_one_keeps_its_mode(tmp_path, fmt):
    src = randomize(tiny("divided", drop_path_rate=0.5))
    path = tmp_path / ("m.safetensors" if fmt == "timesformer" else "m.pyth")
    timesformer.save_checkpoint(src, path, format=fmt)
    model = timesformer.load_checkpoint(path)
    assert not model.training and model.config.drop_path_rate > 0
    x = clip()
    with torch.no_grad():  # no drop path: the checkpoint's outputs, the same every call
        assert torch.equal(model(x), model(x))  # exact: one path run twice, nothing random
    into = tiny("divided", drop_path_rate=0.5).train()
    assert timesformer.load_checkpoint(path, into).training


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    timesformer.save_checkpoint(tiny(), tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_reference_layout_written_here_loads_back_as_the_same_model(tmp_path):
    """The reference layout has no place for the head count, class names or clip settings; the
    file this project writes keeps them in its own cfg section, which the authors' code never
    reads, so no num_heads= is needed to load it back."""
    model = randomize(tiny("divided", num_heads=2), seed=4)
    model.class_names = list("abcde")
    model.preprocess = {"num_frames": 4, "sampling_rate": 3, "crop_size": 16}
    timesformer.save_checkpoint(model, tmp_path / "m.pyth", format="reference")
    blob = torch.load(tmp_path / "m.pyth", weights_only=True)
    assert yaml.safe_load(blob["cfg"])["TIMESFORMER"]["ATTENTION_TYPE"] == "divided_space_time"
    back = timesformer.load_checkpoint(tmp_path / "m.pyth")
    assert back.load_report.source == "reference"
    assert back.config == model.config and back.config.num_heads == 2
    assert back.class_names == list("abcde") and back.preprocess == model.preprocess
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(back(x), model.eval()(x))


def test_a_reference_cfg_of_unexpected_shape_is_ignored(tmp_path):
    """The cfg string only helps: a section that is not a mapping is passed over and the
    attention is read from the keys (it once raised AttributeError)."""
    src = randomize(tiny("joint", num_heads=2))
    state = {f"model.{k}": v for k, v in src.state_dict().items()}
    torch.save({"model_state": state, "cfg": "TIMESFORMER: [1, 2]"}, tmp_path / "odd.pyth")
    model = timesformer.load_checkpoint(tmp_path / "odd.pyth", num_heads=2)
    assert model.config.attention == "joint"
