"""`timesformer eval` on a checkpoint outside any run folder: its own clip settings, the data
named by overrides, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import timesformer
from helpers import randomize, tiny
from timesformer.cli import main
from timesformer.data import ClipConfig, make_synthetic

# What `timesformer train` would have stored with the checkpoint: 2 clips x 3 crops at test time
# (not the 1 clip of the defaults, so a test can tell whose settings were used).
CLIP = ClipConfig(
    num_frames=4, sampling_rate=2, crop_size=16, train_scale=(16, 18), flip=False, num_clips=2
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """4 classes of simple 8-frame 16x16 videos, 2 val videos per class."""
    out = tmp_path_factory.mktemp("synth") / "data"
    make_synthetic(
        out,
        seed=1,
        pairs=["horizontal", "depth"],
        train_per_class=1,
        val_per_class=2,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )
    return out


@pytest.fixture
def loose_checkpoint(tmp_path):
    """A 4-class tiny model with stored clip settings, saved in a folder without config.yaml."""
    model = randomize(tiny("divided", num_classes=4), seed=5)
    model.preprocess = dataclasses.asdict(CLIP)
    return timesformer.save_checkpoint(model, tmp_path / "loose" / "model.safetensors")


def evaluate(checkpoint, overrides: list[str], capsys, out=None) -> tuple[int, str]:
    argv = ["eval", "--checkpoint", str(checkpoint), *overrides, "data.workers=0"]
    code = main([*argv, "run.progress=false", *(["--out", str(out)] if out else [])])
    return code, capsys.readouterr().err.strip()


def test_a_loose_checkpoint_is_evaluated_with_its_own_clip_settings(
    data_root, loose_checkpoint, tmp_path, capsys
):
    out = tmp_path / "loose.json"
    code, err = evaluate(loose_checkpoint, [f"data.root={data_root}"], capsys, out)
    assert code == 0, err
    loose = json.loads(out.read_text())
    assert loose["num_videos"] == 8 and loose["num_views"] == 2 * 3  # the stored 2 clips

    # The same checkpoint in a run folder whose config.yaml holds the same settings scores the
    # same, view for view.
    run = tmp_path / "run"
    run.mkdir()
    data = {
        "root": str(data_root),
        "num_frames": 4,
        "sampling_rate": 2,
        "crop_size": 16,
        "train_scale": [16, 18],
        "flip": False,
        "test_clips": 2,
    }
    config = {"model": {"name": "timesformer_tiny"}, "data": data}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(loose_checkpoint, run / "best.safetensors")
    out_run = tmp_path / "run.json"
    code, err = evaluate(run / "best.safetensors", [], capsys, out_run)
    assert code == 0, err
    assert json.loads(out_run.read_text()) == loose


def test_overrides_win_over_the_checkpoint_settings(data_root, loose_checkpoint, tmp_path, capsys):
    out = tmp_path / "one_clip.json"
    overrides = [f"data.root={data_root}", "data.test_clips=1"]
    code, err = evaluate(loose_checkpoint, overrides, capsys, out)
    assert code == 0, err
    assert json.loads(out.read_text())["num_views"] == 1 * 3


def test_a_loose_checkpoint_without_data_root_is_one_line(loose_checkpoint, capsys):
    code, err = evaluate(loose_checkpoint, [], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(loose_checkpoint) in err and "data.root=" in err and "--config" in err
    assert not list(loose_checkpoint.parent.glob("eval_*.json"))  # nothing written


def test_the_checkpoint_classes_fix_the_labels(data_root, tmp_path, capsys, caplog):
    """A val split without one of the model's classes is scored with the model's label order
    (its own folders counted would give 3 classes and shifted labels)."""
    names = (data_root / "classes.txt").read_text().split()
    root = tmp_path / "data"
    shutil.copytree(data_root / "val", root / "val")  # no classes.txt: folders only
    shutil.rmtree(root / "val" / names[0])
    model = randomize(tiny("divided", num_classes=4), seed=5)
    model.class_names = names
    model.preprocess = dataclasses.asdict(CLIP)
    ckpt = timesformer.save_checkpoint(model, tmp_path / "loose" / "named.safetensors")
    out = tmp_path / "named.json"
    code, err = evaluate(ckpt, [f"data.root={root}"], capsys, out)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["num_videos"] == 6 and set(result["per_class"]) == set(names[1:])
    assert all(p["label"] == Path(p["path"]).parent.name for p in result["predictions"])

    # A class the checkpoint does not know (4 classes again, so the counts agree): matching by
    # name is impossible, so the data's own numbering is used, and the run says so.
    (root / "val" / "other").mkdir()
    shutil.copy(next((root / "val" / names[1]).iterdir()), root / "val" / "other" / "o.mp4")
    code, err = evaluate(ckpt, [f"data.root={root}"], capsys, tmp_path / "other.json")
    assert code == 0, err
    assert "not the checkpoint's classes (class 'other' of the data" in caplog.text
    per_class = json.loads((tmp_path / "other.json").read_text())["per_class"]
    assert set(per_class) == {*names[1:], "other"}


def test_a_class_list_in_another_order_is_matched_by_name(data_root, tmp_path, capsys):
    """data.classes in another order than the checkpoint's: labels follow the names, so a model
    that always answers one class is right on exactly that class's videos."""
    names = (data_root / "classes.txt").read_text().split()
    model = tiny("divided", num_classes=4)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[2] = 100.0  # always names[2]
    model.class_names = names
    model.preprocess = dataclasses.asdict(CLIP)
    ckpt = timesformer.save_checkpoint(model, tmp_path / "loose" / "constant.safetensors")
    reversed_list = tmp_path / "reversed.txt"
    reversed_list.write_text("\n".join(names[::-1]) + "\n")
    out = tmp_path / "constant.json"
    overrides = [f"data.root={data_root}", f"data.classes={reversed_list}"]
    code, err = evaluate(ckpt, overrides, capsys, out)
    assert code == 0, err
    per_class = json.loads(out.read_text())["per_class"]
    assert per_class == {name: (1.0 if name == names[2] else 0.0) for name in names}
