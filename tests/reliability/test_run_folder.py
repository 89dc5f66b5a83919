"""`timesformer train` never loses an epoch and never mixes two runs in one folder.

- A shipped config on the user's own data takes the class count from the data (one line says
  so); a count the user set that the data does not have is refused before training.
- Each epoch's checkpoint is on disk before its evaluation: a failure there loses nothing, and
  the next start does the evaluation it missed.
- A used run folder: ``run.resume=false`` moves the old run to ``OUT.old-N``; a resume lists
  the settings changed since its checkpoint and refuses the changes it cannot continue with.
- Config checks come before anything is written (local_global's grid, the batch count).

Everything runs in-process through ``timesformer.cli.main``, as the user's command would, on a
tiny 3-class folder and a 2-block model (a few seconds per training run).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from helpers import tiny_overrides
from timesformer.checkpoints import load_checkpoint
from timesformer.cli import main
from timesformer.data import make_synthetic
from timesformer.engine.state import epoch_checkpoints, read_train_state
from timesformer.engine.trainer import Trainer


@pytest.fixture(scope="module")
def four_classes(tmp_path_factory) -> Path:
    """The synthetic set: 4 classes (4 train and 1 val video each, 8 frames of 16 x 16)."""
    return make_synthetic(
        tmp_path_factory.mktemp("synth") / "data",
        seed=3,
        pairs=["horizontal", "depth"],
        train_per_class=4,
        val_per_class=1,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )


@pytest.fixture(scope="module")
def three_classes(four_classes, tmp_path_factory) -> Path:
    """Three of its classes, without a class list: the classes are its folders, as in a
    user's own data."""
    root = tmp_path_factory.mktemp("own") / "data"
    shutil.copytree(four_classes, root)
    dropped = (root / "classes.txt").read_text().split()[-1]
    for split in ("train", "val"):
        shutil.rmtree(root / split / dropped)
    (root / "classes.txt").unlink()
    return root


@pytest.fixture
def logs(caplog) -> pytest.LogCaptureFixture:
    """The lines the command logs (the CLI prints them on stderr; pytest captures them)."""
    caplog.set_level(logging.INFO, logger="timesformer")
    return caplog


def args(root: Path, out: Path, *extra: str, **values) -> list[str]:
    """k400_base with tiny overrides: 3 optimizer steps per epoch, 1 epoch, fp32."""
    settings = {
        "data.train": "train",
        "data.val": "val",
        "data.batch_size": 4,
        "optim.global_batch": 4,
        "optim.epochs": 1,
        "run.precision": "fp32",
        **values,
    }
    return ["train", "--config", "k400_base", *extra, *tiny_overrides(root, out, **settings)]


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def epochs_logged(out: Path) -> list[int]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r["epoch"] for r in map(json.loads, lines) if r["kind"] == "epoch"]


def snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` and its modification time (ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


# ---------------------------------------------------------------------- the class count
def test_shipped_config_on_own_folder_takes_the_class_count_from_the_data(
    three_classes, tmp_path, logs, capsys
):
    out = tmp_path / "run"
    assert main(args(three_classes, out)) == 0
    assert (
        "model.num_classes: 400 in the shipped config k400_base, 3 classes in the data: using 3"
        in logs.messages
    )
    assert [e for e, _ in epoch_checkpoints(out / "checkpoints")] == [1]
    assert epochs_logged(out) == [1]
    assert "val_top1" in json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    result = json.loads((out / "results.json").read_text())  # the final evaluation ran
    assert result["num_videos"] == 3 and len(result["confusion"]) == 3
    assert load_checkpoint(out / "best.safetensors").config.num_classes == 3
    assert "num_classes: 3" in (out / "config.yaml").read_text()  # the count used
    assert "test (3 views/video, 3 videos)" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["override", "file"])
def test_a_class_count_the_user_set_must_match_the_data(three_classes, tmp_path, where, capsys):
    out = tmp_path / "run"
    extra: list[str] = []
    values = {}
    if where == "override":
        values["model.num_classes"] = 5
        origin = "the override model.num_classes=5"
    else:
        mine = tmp_path / "mine.yaml"
        mine.write_text("model:\n  num_classes: 5\n")
        extra = ["--config", str(mine)]
        origin = str(mine)
    assert main(args(three_classes, out, *extra, **values)) == 2
    assert error_lines(capsys) == [
        f"timesformer train: error: model.num_classes is 5 (from {origin}), but the training "
        f"data {three_classes / 'train'} has 3 classes: set model.num_classes=3, or leave it "
        "unset to take the data's count"
    ]
    assert not out.exists()  # refused before anything was written


def test_a_class_count_that_matches_the_data_is_used_without_a_word(three_classes, tmp_path, logs):
    from timesformer.engine import load_config, packaged_config

    argv = args(three_classes, tmp_path / "run", **{"model.num_classes": 3})
    trainer = Trainer(load_config([packaged_config("k400_base")], argv[3:]))
    assert trainer.model.head.out_features == 3
    assert not [m for m in logs.messages if m.startswith("model.num_classes")]


# ---------------------------------------------------------------------- no lost epoch
def test_the_epoch_checkpoint_is_written_before_a_failing_evaluation(
    three_classes, tmp_path, monkeypatch, logs
):
    out = tmp_path / "run"

    def broken(self):
        raise RuntimeError("injected evaluation failure")

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "validate", broken)
        with pytest.raises(RuntimeError, match="injected"):
            main(args(three_classes, out))
    ckpt = out / "checkpoints" / "epoch_001.safetensors"
    state = read_train_state(ckpt)
    assert state.epoch == 1 and state.step == 3 and not state.epoch_finished
    assert not (out / "best.safetensors").exists()
    # What a stopped run logged after its checkpoint is dropped when the run resumes.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "step", "epoch": 2, "step": 99, "loss": 1.0}) + "\n")

    # The same command again: the epoch is not trained again, its evaluation is done.
    assert main(args(three_classes, out)) == 0
    assert f"resumed from {ckpt} (epoch 1, step 3)" in logs.messages
    ends = [m for m in logs.messages if m.startswith("epoch 1/1: ")]
    assert len(ends) == 1 and "val_top1" in ends[0]
    assert read_train_state(ckpt).epoch_finished and read_train_state(ckpt).step == 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3]
    assert epochs_logged(out) == [1] and "val_top1" in records[-1]
    assert (out / "best.safetensors").is_file() and (out / "results.json").is_file()


# ---------------------------------------------------------------------- a used run folder
@pytest.fixture(scope="module")
def finished_run(three_classes, tmp_path_factory) -> Path:
    """A finished 1-epoch run of ``args`` (no final test); tests copy it or leave it as it is."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*args(three_classes, out), "--no-test"]) == 0
    return out


def test_resume_false_moves_the_old_run_aside_and_starts_afresh(
    three_classes, finished_run, tmp_path, logs
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (tmp_path / "run.old-1").mkdir()  # an earlier run moved aside: the next number is taken
    old = snapshot(out)
    assert main([*args(three_classes, out, **{"run.resume": "false"}), "--no-test"]) == 0
    aside = tmp_path / "run.old-2"
    assert f"run.out {out} held another run: moved to {aside}; this run starts afresh" in (
        logs.messages
    )
    assert snapshot(aside) == old  # the old run, whole and untouched
    assert epochs_logged(out) == [1] and "resume: false" in (out / "config.yaml").read_text()
    assert not [m for m in logs.messages if m.startswith("resumed from")]
    # The next plain run resumes the new run, not the old one.
    logs.clear()
    assert main([*args(three_classes, out), "--no-test"]) == 0
    newest = out / "checkpoints" / "epoch_001.safetensors"
    assert f"resumed from {newest} (epoch 1, step 3)" in logs.messages
    assert f"the run in {out} has trained 1 epoch (optim.epochs 1): nothing left to train" in (
        logs.messages
    )
    assert epochs_logged(out) == [1]


def test_resume_with_changed_settings_says_what_changed(
    three_classes, finished_run, tmp_path, logs
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    more = args(three_classes, out, **{"optim.epochs": 2, "optim.lr": 0.001})
    assert main([*more, "--no-test"]) == 0
    assert [m for m in logs.messages if m.startswith("changed since that checkpoint")] == [
        "changed since that checkpoint: optim.lr: 0.003 -> 0.001",
        "changed since that checkpoint: optim.epochs: 1 -> 2 (the learning-rate schedule "
        "follows the new count)",
    ]
    assert epochs_logged(out) == [1, 2]
    state = read_train_state(out / "checkpoints" / "epoch_002.safetensors")
    assert state.epoch == 2 and state.step == 6 and state.epoch_finished
    assert "lr: 0.001" in (out / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model.depth": 3}, "model.depth: 2 -> 3"),
        ({"data.crop_size": 32, "data.train_scale": "[32, 36]"}, "data.crop_size: 16 -> 32"),
        (
            {"optim.global_batch": 8},
            "optimizer steps per epoch 3 -> 1 (optim.global_batch: 4 -> 8)",
        ),
        ({"optim.name": "sgd"}, "optim.name: adamw -> sgd"),
        ({"data.root": "FOUR"}, "the data's classes 3 classes (approaching, left, right) -> 4 "),
    ],
    ids=["depth", "crop", "steps", "optimizer", "classes"],
)
def test_a_resume_that_cannot_continue_the_run_is_refused(
    three_classes, four_classes, finished_run, change, problem, capsys, logs
):
    out = finished_run
    before = snapshot(out)
    change = {k: str(four_classes) if v == "FOUR" else v for k, v in change.items()}
    assert main(args(three_classes, out, **change)) == 2
    # The class-count notice waits for every check to pass: the refusal is the only line.
    assert not [m for m in logs.messages if m.startswith("model.num_classes")]
    lines = error_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"timesformer train: error: run.out {out} holds a run that this config cannot continue: "
    )
    assert problem in lines[0]
    assert lines[0].endswith(
        f"Resume it with its own settings ({out / 'config.yaml'}), set run.resume=false to move "
        f"it aside to {out.parent / 'run.old-1'} and start over, or choose another run.out"
    )
    assert snapshot(out) == before  # nothing written, nothing moved


def test_a_folder_with_results_but_no_checkpoint_is_not_overwritten(
    three_classes, tmp_path, capsys
):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.safetensors").write_bytes(b"the best model of an earlier run")
    assert main(args(three_classes, out)) == 2
    assert error_lines(capsys) == [
        f"timesformer train: error: run.out {out} holds a run with no epoch checkpoint to resume "
        f"from (best.safetensors): set run.resume=false to move it aside to "
        f"{tmp_path / 'run.old-1'} and start over, or choose another run.out"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors"]


def test_a_folder_holding_the_data_is_not_moved_aside(three_classes, tmp_path, capsys):
    out = tmp_path / "work"
    shutil.copytree(three_classes, out / "data")
    (out / "config.yaml").write_text("model: {}\n")  # an earlier run's
    assert main(args(out / "data", out, **{"run.resume": "false"})) == 2
    assert error_lines(capsys) == [
        f"timesformer train: error: run.out {out} holds another run and data.root is inside it: "
        "not moved aside; choose a run.out of its own"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


# ---------------------------------------------------------------------- checks come first
def test_local_global_with_an_odd_frame_count_fails_before_the_run_folder(
    three_classes, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = args(three_classes, out, **{"model.attention": "local_global", "data.num_frames": 3})
    assert main(argv) == 2
    assert error_lines(capsys) == [
        "timesformer train: error: model section: local_global attention needs an even number "
        "of frames and of patches per side, got 3 frames of 4x4 patches (data.num_frames 3, "
        "data.crop_size 16 / patch size 4); change data.num_frames or data.crop_size, or "
        "model.attention"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"data.batch_size": 4, "optim.global_batch": 32},
            "the training set gives 3 batches of data.batch_size 4 per process, fewer than the 8 "
            "needed for one optimizer step of optim.global_batch 32: lower optim.global_batch to "
            "at most 12",
        ),
        (
            {"data.batch_size": 8, "optim.global_batch": 16},
            "the training set gives 1 batch of data.batch_size 8 per process, fewer than the 2 "
            "needed for one optimizer step of optim.global_batch 16: lower optim.global_batch to "
            "at most 8",
        ),
        (
            {"data.batch_size": 16, "optim.global_batch": 16},
            "the training set has 12 videos, fewer than one batch of data.batch_size 16 per "
            "process: lower data.batch_size to at most 12 (and optim.global_batch to a multiple "
            "of it)",
        ),
    ],
    ids=["batches", "one-batch", "no-batch"],
)
def test_too_few_batches_names_the_setting_to_lower(
    three_classes, tmp_path, values, message, capsys
):
    out = tmp_path / "run"
    assert main(args(three_classes, out, **values)) == 2
    assert error_lines(capsys) == [f"timesformer train: error: {message}"]
    assert not out.exists()
