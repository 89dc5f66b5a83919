"""The run folder ``run.out``, and what a run checks before it writes anything there.

This module owns what a new ``Trainer`` does with the folder it is given:

- which of its entries mean that a run has been there (``run_entries``);
- moving an old run aside to the sibling ``OUT.old-N`` (``aside_path``, ``plan_move_aside``,
  ``prepare_folder``);
- resuming the folder's run from its newest checkpoint that loads, with the settings changed
  since then as notes and the changes the run cannot continue with refused (``resume``,
  ``check_continuation``);
- the run's class count and optimizer steps per epoch, taken from the training data and checked
  against the config (``with_class_count``, ``accumulation``, ``steps_per_epoch``): the
  quantities a resume must find unchanged.

Everything here raises before the folder is touched, except ``prepare_folder``, which the main
process calls once every check has passed. The training loop itself is ``trainer.Trainer``.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from omegaconf import OmegaConf

from timesformer.checkpoints.io import remove_temp, write_text
from timesformer.engine import state as S
from timesformer.engine.config import SHIPPED_ORIGIN, TrainConfig, key_origin, to_yaml
from timesformer.engine.metrics import read_log, trim_log
from timesformer.errors import CheckpointError, ConfigError, TimesformerError
from timesformer.model import TimeSformer

log = logging.getLogger("timesformer")

# What a run writes in its folder: any of these in run.out means a run has been there.
RUN_ENTRIES = (
    "checkpoints",
    "config.yaml",
    "metrics.jsonl",
    "best.safetensors",
    "results.json",
    "curves.png",
    "confusion.png",
    "tensorboard",
)

# ModelConfig fields a checkpoint's weights are shaped by, and the config key that sets each.
_ARCHITECTURE = {
    "attention": "model.attention",
    "num_classes": "model.num_classes",
    "num_frames": "data.num_frames",
    "img_size": "data.crop_size",
    "patch_size": "model.patch_size",
    "in_chans": "model (in_chans)",
    "embed_dim": "model.embed_dim",
    "depth": "model.depth",
    "num_heads": "model.num_heads",
    "mlp_ratio": "model.mlp_ratio",
    "qkv_bias": "model (qkv_bias)",
}
# Keys that name the data set.
_DATA_SET = ("data.format", "data.root", "data.train", "data.classes")
# Keys whose change alters the number of optimizer steps in an epoch.
_EPOCH_LENGTH = (
    "data.root",
    "data.train",
    "data.format",
    "data.batch_size",
    "optim.global_batch",
    "run.max_steps_per_epoch",
)
# Keys a resume does not compare: run.out is the folder itself, run.resume how it was reached.
_NOT_COMPARED = {"run.out", "run.resume"}
# What a changed key means for the resumed run, where that is not obvious.
_CHANGE_NOTES = {
    "model.init": " (not used by a resume: the weights are the checkpoint's)",
    "optim.epochs": " (the learning-rate schedule follows the new count)",
}


# ---------------------------------------------------------------------- messages
def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``1 batch``, ``3 batches``."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _names(names: list[str]) -> str:
    """A class list in a message: its length and first names."""
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"{counted(len(names), 'class', 'classes')} ({shown})"


def _flat(sections: dict[str, Any]) -> dict[str, Any]:
    """``{"model": {"depth": 2}}`` -> ``{"model.depth": 2}`` (the keys one level down)."""
    return {
        f"{section}.{key}": value
        for section, values in sections.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


# ---------------------------------------------------------------------- config against data
def accumulation(cfg: TrainConfig, world: int) -> int:
    """The micro-batches of ``data.batch_size`` per process in one optimizer step of
    ``optim.global_batch``; a ``ConfigError`` when the one is not a multiple of the other."""
    per_step = cfg.data.batch_size * world
    if cfg.optim.global_batch % per_step:
        raise ConfigError(
            f"optim.global_batch {cfg.optim.global_batch} is not a multiple of data.batch_size "
            f"{cfg.data.batch_size} x {world} processes"
        )
    return cfg.optim.global_batch // per_step


def _too_few_batches(cfg: TrainConfig, videos: int, micro: int, accum: int, world: int) -> str:
    """Why the training set cannot give one optimizer step, and which setting to lower."""
    b, g = cfg.data.batch_size, cfg.optim.global_batch
    per_process = videos // world
    procs = f" over {counted(world, 'process', 'processes')}" if world > 1 else ""
    if per_process < 1:
        return f"the training set has {counted(videos, 'video')}{procs}: add training videos"
    if micro < 1:
        return (
            f"the training set has {counted(videos, 'video')}{procs}, fewer than one batch of "
            f"data.batch_size {b} per process: lower data.batch_size to at most {per_process} "
            "(and optim.global_batch to a multiple of it)"
        )
    return (
        f"the training set gives {counted(micro, 'batch', 'batches')} of data.batch_size {b} per "
        f"process, fewer than the {accum} needed for one optimizer step of optim.global_batch "
        f"{g}: lower optim.global_batch to at most {micro * b * world}"
    )


def steps_per_epoch(cfg: TrainConfig, videos: int, micro: int, accum: int, world: int) -> int:
    """The optimizer steps in an epoch of ``micro`` batches per process (at most
    ``run.max_steps_per_epoch`` when set); a ``ConfigError`` that says which setting to lower
    when the training set of ``videos`` does not give one."""
    if micro < accum:
        raise ConfigError(_too_few_batches(cfg, videos, micro, accum, world))
    steps = micro // accum
    if cfg.run.max_steps_per_epoch:
        steps = min(steps, cfg.run.max_steps_per_epoch)
    return steps


def with_class_count(cfg: TrainConfig, found: int) -> tuple[TrainConfig, str | None]:
    """A copy of ``cfg`` whose ``model.num_classes`` is ``found``, the training data's class
    count, and the line to say when that is not the config's value.

    Unset, it takes the data's count. A value from a shipped config (k400_base: 400) is that
    config's data set's count, so on other data it gives way, with one line that says so. A value
    the user set (a config file of theirs, an override, a config built in Python) that the data
    does not have is a ``ConfigError`` before anything is trained: a head of another size
    cannot be evaluated against the data's class list, and the mismatch is most likely a
    wrong data.root or a stale setting."""
    where = Path(cfg.data.root) / cfg.data.train
    cfg = copy.deepcopy(cfg)
    wanted = cfg.model.num_classes
    notice = None
    if wanted is not None and wanted != found:
        origin = key_origin(cfg, "model.num_classes")
        if origin is None or not origin.startswith(SHIPPED_ORIGIN):
            raise ConfigError(
                f"model.num_classes is {wanted} (from {origin or 'the config'}), but the "
                f"training data {where} has {counted(found, 'class', 'classes')}: set "
                f"model.num_classes={found}, or leave it unset to take the data's count"
            )
        classes = counted(found, "class", "classes")
        notice = f"model.num_classes: {wanted} in {origin}, {classes} in the data: using {found}"
    cfg.model.num_classes = found
    return cfg, notice


# ---------------------------------------------------------------------- the folder
def checkpoint_dir(out: Path) -> Path:
    """Where the run in ``out`` keeps its epoch checkpoints."""
    return out / "checkpoints"


def check_folder(out: Path) -> None:
    """A ``ConfigError`` when ``out`` exists but cannot be a run folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run.out {out}: is a file, not a run folder")


def run_entries(out: Path) -> list[str]:
    """The names of ``RUN_ENTRIES`` that ``out`` holds."""
    return [name for name in RUN_ENTRIES if (out / name).exists()] if out.is_dir() else []


def aside_path(out: Path) -> Path:
    """Where a new run moves the old run of ``out``: the sibling ``OUT.old-N``, N one more
    than the highest already there (so that the numbers follow the order of the runs)."""
    pattern = re.compile(re.escape(out.name) + r"\.old-(\d+)")
    siblings = out.parent.iterdir() if out.parent.is_dir() else []
    used = [int(m.group(1)) for p in siblings if (m := pattern.fullmatch(p.name))]
    return out.with_name(f"{out.name}.old-{max(used, default=0) + 1}")


def _ways_out(out: Path) -> str:
    """The two ways to start over when the folder's run cannot go on."""
    return (
        f"set run.resume=false to move it aside to {aside_path(out)} and start over, "
        "or choose another run.out"
    )


def plan_move_aside(out: Path, data_root: str | Path) -> Path:
    """Where the old run of ``out`` goes (checked now, moved by ``prepare_folder``): a
    ``ConfigError`` when the current folder or ``data_root`` is inside it."""
    here = out.resolve()
    for what, path in (("the current folder", Path.cwd()), ("data.root", data_root)):
        if Path(path).resolve().is_relative_to(here):
            raise ConfigError(
                f"run.out {out} holds another run and {what} is inside it: not moved "
                "aside; choose a run.out of its own"
            )
    return aside_path(out)


def _remove_stale_temps(*folders: Path) -> None:
    """Delete the temporaries of checkpoint writes that a killed run left behind (named
    ``.NAME.XXXX.tmp`` by ``atomic_path``): never read as checkpoints, but each as large as one."""
    for folder in folders:
        for tmp in folder.glob(".*.safetensors.*.tmp"):
            remove_temp(tmp)


def prepare_folder(
    out: Path,
    cfg: TrainConfig,
    state: S.TrainState,
    *,
    moved_to: Path | None,
    resumed_from: Path | None,
) -> None:
    """Move the old run aside to ``moved_to`` when set, make the folder, tidy what a stopped
    run left (temporaries, a prune it did not finish, log records after ``state``) and write
    config.yaml (the main process)."""
    ckpt_dir = checkpoint_dir(out)
    if moved_to is not None:
        try:
            os.rename(out, moved_to)
        except OSError as err:
            raise ConfigError(
                f"run.out {out}: cannot move the old run aside to {moved_to} "
                f"({err.strerror or err})"
            ) from None
        log.warning(
            "run.out %s held another run: moved to %s; this run starts afresh", out, moved_to
        )
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"run.out {out}: cannot make the folder ({err})") from None
    _remove_stale_temps(out, ckpt_dir)
    if resumed_from is not None and resumed_from == S.epoch_checkpoints(ckpt_dir)[-1][1]:
        # A stop between writing an epoch and pruning the old ones leaves one checkpoint
        # too many; the resume finishes the prune (only from the newest checkpoint: when
        # that one did not load, nothing is deleted).
        S.prune(ckpt_dir, cfg.run.keep_last)
    # What a stopped run logged after its checkpoint is trained again: logged once.
    trim_log(out / "metrics.jsonl", state.step, state.epoch - (not state.epoch_finished))
    write_text(out / "config.yaml", to_yaml(cfg))


# ---------------------------------------------------------------------- resuming
class Resumed(NamedTuple):
    """A run continued from its folder: the state loaded, the checkpoint it came from and the
    notices to say (one per setting changed since that checkpoint)."""

    state: S.TrainState
    path: Path
    notices: list[str]


def resume(
    out: Path,
    cfg: TrainConfig,
    model: TimeSformer,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    *,
    class_names: list[str],
    steps_per_epoch: int,
    found: list[str],
) -> Resumed | None:
    """Continue the run of ``out`` from its newest checkpoint that loads (into ``model``,
    ``optimizer`` and ``scaler``), after checking that ``cfg`` can continue it; ``None`` when
    the folder holds no run to continue. A folder whose run left no epoch checkpoint but
    results (``found`` among best.safetensors, results.json; epoch records) is refused rather
    than overwritten, and one whose checkpoints all fail to load is a ``CheckpointError``."""
    ckpt_dir = checkpoint_dir(out)
    notes: list[str] | None = None
    settings = [
        {k: v for k, v in group.items() if k not in ("params", "lr", "initial_lr")}
        for group in optimizer.param_groups
    ]
    newest_error: TimesformerError | None = None
    for epoch, path in reversed(S.epoch_checkpoints(ckpt_dir)):
        try:
            record = S.read_run_record(path) if notes is None else None
        except TimesformerError as err:
            log.warning("skipping checkpoint %s", err)  # the error names the file
            newest_error = newest_error or err
            continue
        if record is not None:  # the newest readable one: the run's settings
            notes = check_continuation(
                out, cfg, record, model, class_names=class_names, steps_per_epoch=steps_per_epoch
            )
        try:
            state = S.load_train_state(path, model, optimizer, scaler)
        except TimesformerError as err:
            log.warning("skipping checkpoint %s", err)
            newest_error = newest_error or err
            continue
        # The config's optimizer settings (weight decay, momentum, betas), not the
        # checkpoint's: a change is then a change, as the notes say.
        for group, setting in zip(optimizer.param_groups, settings, strict=True):
            group.update(setting)
        log.info("resumed from %s (epoch %d, step %d)", path, epoch, state.step)
        notices = [f"changed since that checkpoint: {note}" for note in notes or []]
        return Resumed(state, path, notices)
    if newest_error is not None:
        # Starting over would write new epochs over the run's damaged ones: stop instead.
        raise CheckpointError(
            f"{newest_error} (no checkpoint of {ckpt_dir} loads; {_ways_out(out)})"
        )
    results = [n for n in ("best.safetensors", "results.json") if n in found]
    if any(r.get("kind") == "epoch" for r in read_log(out / "metrics.jsonl")):
        results.append("metrics.jsonl")
    if results:
        raise ConfigError(
            f"run.out {out} holds a run with no epoch checkpoint to resume from "
            f"({', '.join(results)}): {_ways_out(out)}"
        )
    return None


def check_continuation(
    out: Path,
    cfg: TrainConfig,
    record: S.RunRecord,
    model: TimeSformer,
    *,
    class_names: list[str],
    steps_per_epoch: int,
) -> list[str]:
    """The settings of ``cfg`` changed since the checkpoint ``record`` of the run in ``out``,
    as ``KEY: OLD -> NEW`` lines; a ``ConfigError`` naming the changes this run cannot continue
    with (``model``'s architecture or class count, the data's classes, the optimizer steps per
    epoch, the optimizer)."""
    new = _flat(OmegaConf.to_container(OmegaConf.structured(cfg)))
    old = _flat(record.run_config)
    if "num_classes" in record.model_config:  # the count used (an older config.yaml: null)
        old["model.num_classes"] = record.model_config["num_classes"]
    changed = {
        key: f"{key}: {old[key]} -> {value}"
        for key, value in new.items()
        if key in old and key not in _NOT_COMPARED and old[key] != value
    }
    problems = []
    model_now = model.config.to_dict()
    for name, key in _ARCHITECTURE.items():
        before = record.model_config.get(name, model_now[name])
        if before != model_now[name]:
            problems.append(f"{key}: {before} -> {model_now[name]}")
            changed.pop(key, None)  # said once, as a problem
    if problems and "model.name" in changed:
        problems.insert(0, changed.pop("model.name"))
    if record.class_names is not None and record.class_names != list(class_names):
        causes = [changed.pop(k) for k in _DATA_SET if k in changed]
        problems.append(
            f"the data's classes {_names(record.class_names)} -> {_names(class_names)}"
            + (f" ({', '.join(causes)})" if causes else "")
        )
    st = record.state
    if st.epoch and st.step // st.epoch != steps_per_epoch:
        # The schedule and the epoch count are in optimizer steps: they would not line up.
        causes = [changed.pop(k) for k in _EPOCH_LENGTH if k in changed]
        causes = causes or ["the training set has another size"]
        problems.append(
            f"optimizer steps per epoch {st.step // st.epoch} -> {steps_per_epoch} "
            f"({', '.join(causes)})"
        )
    if "optim.name" in changed:  # the optimizer state is another optimizer's
        problems.append(changed.pop("optim.name"))
    if problems:
        raise ConfigError(
            f"run.out {out} holds a run that this config cannot continue: "
            f"{'; '.join(problems)}. Resume it with its own settings "
            f"({out / 'config.yaml'}), {_ways_out(out)}"
        )
    return [f"{line}{_CHANGE_NOTES.get(key, '')}" for key, line in changed.items()]
