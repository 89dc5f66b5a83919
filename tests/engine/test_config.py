"""Typed run configs: YAML + key=value overrides, clear errors, shipped recipes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from timesformer.engine.config import load_config, packaged_config, to_yaml
from timesformer.errors import ConfigError

ROOT = ["data.root=/videos"]


def test_defaults_are_the_papers_recipe():
    cfg = load_config(overrides=ROOT)
    o = cfg.optim
    assert (o.name, o.lr, o.momentum, o.nesterov, o.weight_decay) == ("sgd", 0.005, 0.9, True, 1e-4)
    assert (o.epochs, o.lr_steps, o.lr_gamma, o.global_batch) == (15, [11, 14], 0.1, 64)
    assert cfg.model.attention == "divided" and cfg.data.num_frames == 8


def test_overrides_are_typed_and_merged_over_files(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.1\n  epochs: 3\ndata:\n  root: /a\n")
    cfg = load_config([f], ["optim.lr=0.02", "optim.lr_steps=[1, 2]", "model.init=null"])
    assert cfg.optim.lr == 0.02 and cfg.optim.epochs == 3 and cfg.optim.lr_steps == [1, 2]
    assert cfg.data.root == "/a" and cfg.model.init is None


def test_base_sits_between_the_defaults_and_the_files(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  crop_size: 64\n")
    base = {"data": {"num_frames": 4, "crop_size": 32, "train_scale": [64, 80]}}
    cfg = load_config([f], [*ROOT, "data.num_frames=2"], base=base)
    assert (cfg.data.num_frames, cfg.data.crop_size, cfg.data.train_scale) == (2, 64, [64, 80])
    assert cfg.data.sampling_rate == 32  # untouched by base: the default
    with pytest.raises(ConfigError, match="nope"):
        load_config(overrides=ROOT, base={"data": {"nope": 1}})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lr=fast"], "optim.lr"),
        (["optim.nope=1"], "Key 'nope' not in"),
        (["nope.x=1"], "Key 'nope' not in"),
        (["optim.lr"], "not of the form key=value"),
        (["run.precision=fp8"], "run.precision must be one of"),
        (["data.batch_size=0"], "data.batch_size must be at least 1"),
        (["data.train_scale=[100, 90]"], "data.train_scale"),
        (["data.root="], "data.root is not set"),
    ],
)
def test_bad_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=ROOT + overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config([tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([bad])
    typed = tmp_path / "typed.yaml"
    typed.write_text("optim:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"typed\.yaml: optim\.epochs"):
        load_config([typed])


@pytest.mark.parametrize("name", ["k400_base", "k400_hr", "k400_large", "ssv2_base", "synthetic"])
def test_shipped_configs_load_and_round_trip(tmp_path, name):
    cfg = load_config([packaged_config(name)], ROOT)
    # what a run writes into its folder reads back to the same config
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    assert load_config([tmp_path / "config.yaml"]) == cfg


def test_shipped_recipes_match_the_reference():
    base = load_config([packaged_config("k400_base")], ROOT)
    hr = load_config([packaged_config("k400_hr")], ROOT)
    large = load_config([packaged_config("k400_large")], ROOT)
    assert (base.data.num_frames, base.data.sampling_rate, base.data.crop_size) == (8, 32, 224)
    assert (hr.data.num_frames, hr.data.sampling_rate, hr.data.crop_size) == (16, 16, 448)
    assert (large.data.num_frames, large.data.sampling_rate, large.data.crop_size) == (96, 4, 224)
    ssv2 = load_config([packaged_config("ssv2_base")], ROOT)
    assert ssv2.data.sampling == "segment" and ssv2.data.flip is False


def test_cli_config_error_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "timesformer", "train", "--config", "synthetic", "optim.lr=fast"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("timesformer train: error: override 'optim.lr=fast'")
    assert proc.stderr.count("\n") == 1


def test_data_fields_is_the_inverse_of_clip_config():
    from timesformer.data import ClipConfig
    from timesformer.engine.builders import clip_config, data_fields

    clip = ClipConfig(num_frames=4, sampling_rate=3, target_fps=25.0, crop_size=16,
                      train_scale=(16, 20), flip=False, num_clips=2, num_crops=1)  # fmt: skip
    cfg = load_config(overrides=ROOT, base={"data": data_fields(clip)})
    assert clip_config(cfg) == clip


def test_model_init_options_reach_the_model(tmp_path):
    from timesformer.engine.builders import build_model

    cfg = load_config(
        [],
        [
            f"data.root={tmp_path}",
            "model.name=timesformer_tiny",
            "data.num_frames=4",
            "data.crop_size=16",
            "model.time_embed_std=1.0",
            "model.time_embed_init=sincos",
            "model.extra_step_init=normal",
        ],
    )
    config = build_model(cfg, 3).config
    assert (config.time_embed_init, config.extra_step_init) == ("sincos", "normal")
    assert config.time_embed_std == 1.0 and config.num_frames == 4
    with pytest.raises(ConfigError, match=r"model\.time_embed_init must be one of normal, sincos"):
        load_config([], [f"data.root={tmp_path}", "model.time_embed_init=smooth"])
