"""`timesformer info` reproduces SPEC's parameter and compute table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from timesformer.cli import main

SPEC_PARAMS = {
    "space": 86_106_256,
    "joint": 86_112_400,
    "divided": 121_566_352,
    "local_global": 121_566_352,
    "axial": 157_020_304,
}
SPEC_GMACS = {"timesformer_base": 195.8, "timesformer_hr": 1702.7, "timesformer_large": 2379.9}


def info_json(capsys, *args) -> dict | list:
    assert main(["info", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("attention", list(SPEC_PARAMS))
def test_parameter_counts_match_spec(capsys, attention):
    row = info_json(capsys, "timesformer_base", "--attention", attention)
    assert row["params"] == SPEC_PARAMS[attention]


@pytest.mark.parametrize("name", list(SPEC_GMACS))
def test_macs_match_spec_within_one_percent(capsys, name):
    row = info_json(capsys, name)
    assert abs(row["gmacs_per_view"] - SPEC_GMACS[name]) / SPEC_GMACS[name] < 0.01
    assert row["tmacs_test"] == pytest.approx(3 * row["gmacs_per_view"] / 1000, rel=1e-3)


def test_joint_at_32_frames_is_the_papers_out_of_memory_point(capsys):
    row = info_json(capsys, "timesformer_base", "--attention", "joint", "--num-frames", "32")
    assert abs(row["gmacs_per_view"] - 1261.8) < 1.0


def test_table_for_all_schemes(capsys):
    assert main(["info", "timesformer_base", "--attention", "all"]) == 0
    out = capsys.readouterr().out
    for attention, params in SPEC_PARAMS.items():
        assert f"{params:,}" in out and attention in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown model 'nope'"),
        (["timesformer_base", "--num-frames", "0"], "num_frames must be a positive integer"),
        (["timesformer_base", "--img-size", "100"], "not divisible by patch_size"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "timesformer.cli", "info", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------- checkpoints
@pytest.fixture
def trained(tmp_path):
    """A tiny model saved as a model checkpoint and as a training checkpoint, with class names
    and the clip settings a training run stores."""
    import torch

    import timesformer
    from helpers import randomize, tiny
    from timesformer.engine.state import TrainState, save_train_state

    model = randomize(tiny("divided", num_classes=3), seed=2)
    model.class_names = ["left", "right", "up"]
    model.preprocess = {"num_frames": 4, "sampling_rate": 3, "crop_size": 16, "num_clips": 2}
    plain = timesformer.save_checkpoint(model, tmp_path / "model.safetensors")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = TrainState(epoch=3, step=12, best_metric=0.75, best_epoch=2)
    train = save_train_state(
        tmp_path / "epoch_003.safetensors",
        model,
        optimizer,
        state,
        class_names=model.class_names,
        run_config="{}",
    )
    return model, plain, train


def test_a_checkpoint_is_described(capsys, trained):
    from timesformer.flops import count_macs, count_params

    model, plain, _ = trained
    d = info_json(capsys, str(plain))
    assert (d["source"], d["attention"], d["depth"], d["embed_dim"]) == (
        "timesformer",
        "divided",
        2,
        32,
    )
    assert d["params"] == count_params(model)
    assert d["gmacs_per_view"] == round(count_macs(model.config) / 1e9, 3)
    assert d["class_names"] == ["left", "right", "up"] and d["num_classes"] == 3
    assert d["clip_stored"] == ["crop_size", "num_clips", "num_frames", "sampling_rate"]
    assert d["clip"]["sampling_rate"] == 3 and d["test_views"] == 2 * 3
    assert d["train_state"] is None
    assert main(["info", str(plain)]) == 0
    text = capsys.readouterr().out
    assert "timesformer checkpoint" in text and "3 classes: left, right, up" in text
    assert "crop_size, num_clips, num_frames, sampling_rate stored" in text
    assert "every 3 at 30 fps" in text


def test_a_training_checkpoint_shows_its_progress(capsys, trained):
    _, _, train = trained
    d = info_json(capsys, str(train))
    assert d["train_state"] == {"epoch": 3, "step": 12, "best_metric": 0.75, "best_epoch": 2}
    assert main(["info", str(train)]) == 0
    assert "3 epochs done, 12 steps; best val top-1 75.0% (epoch 2)" in capsys.readouterr().out


def test_checkpoint_sizes_can_be_changed(capsys, trained):
    _, plain, _ = trained
    small = info_json(capsys, str(plain))
    big = info_json(capsys, str(plain), "--num-frames", "8", "--img-size", "32")
    assert (big["num_frames"], big["img_size"]) == (8, 32)
    assert (big["clip"]["num_frames"], big["clip"]["crop_size"]) == (8, 32)
    assert big["gmacs_per_view"] > 4 * small["gmacs_per_view"]


def test_a_hf_folder_and_an_image_vit_are_described(capsys, tmp_path):
    import timesformer
    from helpers import tiny

    folder = timesformer.export_hf(tiny("joint"), tmp_path / "hf")
    d = info_json(capsys, str(folder))
    # Its processor file gives the crop, mean and std; the sampling is the reference's.
    assert (d["source"], d["attention"]) == ("hf", "joint")
    assert d["clip_stored"] == ["crop_size", "mean", "std"]
    vit = {k: v for k, v in tiny("divided").state_dict().items() if "temporal" not in k}
    vit.pop("time_embed")
    from safetensors.torch import save_file

    save_file(vit, tmp_path / "vit.safetensors")
    assert main(["info", str(tmp_path / "vit.safetensors")]) == 0
    assert "image ViT" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attention", "joint"], "--attention does not apply to a checkpoint"),
        (["--num-classes", "5"], "--num-classes does not apply to a checkpoint"),
    ],
)
def test_variant_options_are_refused_for_a_checkpoint(capsys, trained, extra, message):
    _, plain, _ = trained
    assert main(["info", str(plain), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_missing_checkpoint_is_named(capsys, tmp_path):
    missing = tmp_path / "gone.pyth"
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "no such file" in err


def test_damaged_training_state_and_bad_sizes_are_one_line(capsys, trained, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    _, plain, train = trained
    with safe_open(str(train), "pt") as f:
        meta = dict(f.metadata())
    meta["train_state"] = json.dumps({"epoch": "three", "step": 12, "best_metric": None,
                                      "best_epoch": None})  # fmt: skip
    bad = tmp_path / "bad_state.safetensors"
    save_file(load_file(train), bad, metadata=meta)
    for argv, message in (
        ([str(bad)], "damaged training state"),
        ([str(plain), "--num-frames", "0"], "num_frames must be a positive integer"),
    ):
        assert main(["info", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and argv[0] in err
