"""The shipped fine-tuning configs load, start from the K400 model, and train with their own
optimizer recipe (on a tiny model and data set, without the download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import tiny_overrides
from timesformer.engine import Trainer, load_config
from timesformer.engine.config import packaged_config

FINE_TUNING = ["ucf101_from_k400", "hmdb51_from_k400", "folder_from_k400"]


@pytest.mark.parametrize("name", FINE_TUNING)
def test_fine_tuning_config_starts_from_k400_with_a_one_gpu_recipe(name):
    cfg = load_config([packaged_config(name)], check=False)
    assert cfg.model.init == "reference:TimeSformer_divST_8x32_224_K400"
    assert cfg.model.name == "timesformer_base" and cfg.data.num_frames == 8
    assert cfg.optim.name == "sgd" and 0 < cfg.optim.lr <= 0.005
    assert cfg.optim.epochs == 15 and max(cfg.optim.lr_steps) < cfg.optim.epochs
    assert cfg.optim.global_batch % cfg.data.batch_size == 0
    text = packaged_config(name).read_text()
    # The file says how to shrink the batch for a small set and how to smoke-test on a CPU.
    assert "optim.global_batch=" in text and "run.device=cpu" in text


def as_lists(synth_root: Path, out: Path) -> Path:
    """``out/train.csv``, ``val.csv`` and ``classes.txt`` for the synthetic set, as
    ``timesformer data prepare`` writes them (``path label``, label = line in classes.txt)."""
    out.mkdir()
    classes = (synth_root / "classes.txt").read_text().split()
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    for split in ("train", "val"):
        lines = [
            f"{video} {label}\n"
            for label, name in enumerate(classes)
            for video in sorted((synth_root / split / name).glob("*.mp4"))
        ]
        (out / f"{split}.csv").write_text("".join(lines))
    return out


@pytest.mark.parametrize("name", FINE_TUNING)
def test_fine_tuning_config_trains_one_tiny_epoch(name, synth_root, tmp_path):
    # The tiny model and data, but the config's own optimizer, schedule and sampling; no
    # model.init, which would download the K400 model.
    tiny = tiny_overrides(synth_root, tmp_path / "run")
    overrides = [o for o in tiny if not o.startswith(("optim.", "data.format"))]
    overrides += ["model.init=null", "optim.epochs=1", "optim.global_batch=8"]
    overrides.append("run.max_steps_per_epoch=4")
    if name != "folder_from_k400":  # the csv lists that `timesformer data prepare` writes
        lists = as_lists(synth_root, tmp_path / "lists")
        overrides.append(f"data.root={lists}")  # its classes.txt names the classes
    cfg = load_config([packaged_config(name)], overrides)
    shipped = load_config([packaged_config(name)], check=False)
    assert (cfg.optim.name, cfg.optim.lr, cfg.data.sampling) == (
        shipped.optim.name,
        shipped.optim.lr,
        shipped.data.sampling,
    )
    trainer = Trainer(cfg)
    trainer.fit()
    assert trainer.model.head.out_features == 4  # the class count of the data, not 101 or 51
    assert trainer.class_names == (synth_root / "classes.txt").read_text().split()
    history = trainer.state.history
    assert len(history) == 1 and history[0]["train_loss"] > 0
    assert (tmp_path / "run" / "best.safetensors").is_file()
