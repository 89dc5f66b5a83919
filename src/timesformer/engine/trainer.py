"""The training loop: one process or many (torchrun), CPU or GPU."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from timesformer.checkpoints import save_checkpoint
from timesformer.checkpoints.io import remove_temp, write_text
from timesformer.data import DecodeFailures
from timesformer.engine import state as S
from timesformer.engine.builders import build_dataset, build_model, clip_config, train_loader
from timesformer.engine.config import SHIPPED_ORIGIN, TrainConfig, check_grid, key_origin, to_yaml
from timesformer.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    comm_failures,
    init_distributed,
)
from timesformer.engine.evaluate import EvalResult, autocast_context, evaluate
from timesformer.engine.metrics import (
    RunLog,
    plot_confusion,
    plot_curves,
    process_resources,
    read_log,
    trim_log,
)
from timesformer.engine.optim import LRSchedule, build_optimizer
from timesformer.errors import CheckpointError, ConfigError, TimesformerError

log = logging.getLogger("timesformer")


class TrainingDiverged(TimesformerError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _accumulation(cfg: TrainConfig, world: int) -> int:
    per_step = cfg.data.batch_size * world
    if cfg.optim.global_batch % per_step:
        raise ConfigError(
            f"optim.global_batch {cfg.optim.global_batch} is not a multiple of data.batch_size "
            f"{cfg.data.batch_size} x {world} processes"
        )
    return cfg.optim.global_batch // per_step


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 batch``, ``3 batches``."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _too_few_batches(cfg: TrainConfig, videos: int, micro: int, accum: int, world: int) -> str:
    """Why the training set cannot give one optimizer step, and which setting to lower."""
    b, g = cfg.data.batch_size, cfg.optim.global_batch
    per_process = videos // world
    procs = f" over {_count(world, 'process', 'processes')}" if world > 1 else ""
    if per_process < 1:
        return f"the training set has {_count(videos, 'video')}{procs}: add training videos"
    if micro < 1:
        return (
            f"the training set has {_count(videos, 'video')}{procs}, fewer than one batch of "
            f"data.batch_size {b} per process: lower data.batch_size to at most {per_process} "
            "(and optim.global_batch to a multiple of it)"
        )
    return (
        f"the training set gives {_count(micro, 'batch', 'batches')} of data.batch_size {b} per "
        f"process, fewer than the {accum} needed for one optimizer step of optim.global_batch "
        f"{g}: lower optim.global_batch to at most {micro * b * world}"
    )


def _with_class_count(cfg: TrainConfig, found: int, where: Path) -> tuple[TrainConfig, str | None]:
    """A copy of ``cfg`` whose ``model.num_classes`` is the training data's class count, and the
    line to say when that is not the config's value.

    Unset, it takes the data's count. A value from a shipped config (k400_base: 400) is that
    config's data set's count, so on other data it gives way, with one line that says so. A value
    the user set (a config file of theirs, an override, a config built in Python) that the data
    does not have is a ``ConfigError`` before anything is trained: a head of another size
    cannot be evaluated against the data's class list, and the mismatch is most likely a
    wrong data.root or a stale setting."""
    cfg = copy.deepcopy(cfg)
    wanted = cfg.model.num_classes
    notice = None
    if wanted is not None and wanted != found:
        origin = key_origin(cfg, "model.num_classes")
        if origin is None or not origin.startswith(SHIPPED_ORIGIN):
            raise ConfigError(
                f"model.num_classes is {wanted} (from {origin or 'the config'}), but the "
                f"training data {where} has {_count(found, 'class', 'classes')}: set "
                f"model.num_classes={found}, or leave it unset to take the data's count"
            )
        classes = _count(found, "class", "classes")
        notice = f"model.num_classes: {wanted} in {origin}, {classes} in the data: using {found}"
    cfg.model.num_classes = found
    return cfg, notice


def _remove_stale_temps(*folders: Path) -> None:
    """Delete the temporaries of checkpoint writes that a killed run left behind (named
    ``.NAME.XXXX.tmp`` by ``atomic_path``): never read as checkpoints, but each as large as one."""
    for folder in folders:
        for tmp in folder.glob(".*.safetensors.*.tmp"):
            remove_temp(tmp)


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


def _names(names: list[str]) -> str:
    """A class list in a message: its length and first names."""
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"{_count(len(names), 'class', 'classes')} ({shown})"


def _flat(sections: dict[str, Any]) -> dict[str, Any]:
    """``{"model": {"depth": 2}}`` -> ``{"model.depth": 2}`` (the keys one level down)."""
    return {
        f"{section}.{key}": value
        for section, values in sections.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


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


class Trainer:
    """Builds everything from a ``TrainConfig`` and runs ``fit()``.

    Every check (config, data, model, the run folder) comes before anything is written, so a
    mistake leaves nothing on disk. The run folder ``run.out``:

    - new, or holding no run: the run starts there;
    - holding a run, ``run.resume`` true (the default): the run continues from its newest epoch
      checkpoint. Each setting changed since that checkpoint is logged (``KEY: OLD -> NEW``);
      a change the run cannot continue with (the model's architecture or class count, the
      data's classes, the optimizer steps per epoch, the optimizer) is a ``ConfigError`` that
      names it;
    - holding a run, ``run.resume`` false: the old run is moved to the sibling folder
      ``OUT.old-N`` (logged) and this one starts in a fresh ``OUT``.

    The merged config, with the class count actually used, is written to ``OUT/config.yaml``.
    """

    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None) -> None:
        self.info = info or init_distributed(cfg.run.device, cfg.run.dist_timeout)
        self.device = self.info.device
        if cfg.run.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("run.precision=fp16 needs a GPU; use bf16 on CPU")
        if cfg.run.precision == "int8":
            raise ConfigError(
                "run.precision=int8 is for evaluation and prediction only; train in fp32 or bf16"
            )
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"run.out {self.out}: is a file, not a run folder")
        self.accum = _accumulation(cfg, self.info.world_size)
        seed_everything(cfg.run.seed)

        self.train_set = build_dataset(cfg, "train", "train")
        self.class_names = self.train_set.class_names
        # The training split's classes, in its order: a val split without some class keeps the
        # same label indices.
        self.val_set = build_dataset(cfg, "val", "val", self.class_names)
        self.loader = train_loader(cfg, self.train_set, self.info.rank, self.info.world_size)
        micro = len(self.loader)
        if micro < self.accum:
            raise ConfigError(
                _too_few_batches(cfg, len(self.train_set), micro, self.accum, self.info.world_size)
            )
        self.steps_per_epoch = micro // self.accum
        if cfg.run.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.run.max_steps_per_epoch)
        where = Path(cfg.data.root) / cfg.data.train
        cfg, notice = _with_class_count(cfg, self.train_set.num_classes, where)
        self.cfg = cfg
        # Said once every check has passed: a refused run prints its one error line only.
        self._notices = [notice] if notice else []

        self.model = build_model(cfg, self.train_set.num_classes, self.class_names)
        # With model.init the architecture is the checkpoint's: its grid rules are checked here.
        check_grid(self.model.config, cfg.data.num_frames, cfg.data.crop_size)
        self.model = self.model.to(self.device)
        self.model.class_names = self.class_names
        self.model.preprocess = dataclasses.asdict(clip_config(cfg))
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.schedule = LRSchedule(cfg.optim, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.run.precision == "fp16")
        self.state = S.TrainState()
        self.resumed_from: Path | None = None
        self.moved_to: Path | None = None  # where the folder's previous run went
        found = run_entries(self.out)
        if cfg.run.resume:
            self._resume(found)
        elif found and self.info.is_main:
            self.moved_to = self._plan_move_aside()
        if self.info.is_main:
            for line in self._notices:
                log.warning("%s", line)
        # The run folder is made once everything above has been checked: a config, data set or
        # checkpoint that fails leaves the disk as it was.
        if self.info.is_main:
            self._prepare_folder()
        self.net: torch.nn.Module = self.model
        if cfg.run.compile:
            self.net = torch.compile(self.net)
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        # A folder kept (resumed, or the stub of a run stopped before its first checkpoint):
        # what TensorBoard holds from the resumed step on is trained again, so it is hidden.
        purge = self.state.step + 1 if found and self.moved_to is None else None
        self.runlog = RunLog(
            self.out, cfg.run.tensorboard, enabled=self.info.is_main, purge_step=purge
        )
        self.failures = DecodeFailures(log)

    # ------------------------------------------------------------------ the run folder
    def _ways_out(self) -> str:
        """The two ways to start over when the folder's run cannot go on."""
        return (
            f"set run.resume=false to move it aside to {aside_path(self.out)} and start over, "
            "or choose another run.out"
        )

    def _plan_move_aside(self) -> Path:
        """Where the folder's old run goes (checked now, moved by ``_prepare_folder``)."""
        here = self.out.resolve()
        for what, path in (("the current folder", Path.cwd()), ("data.root", self.cfg.data.root)):
            if Path(path).resolve().is_relative_to(here):
                raise ConfigError(
                    f"run.out {self.out} holds another run and {what} is inside it: not moved "
                    "aside; choose a run.out of its own"
                )
        return aside_path(self.out)

    def _prepare_folder(self) -> None:
        """Move the old run aside when asked, make the folder, tidy what a stopped run left and
        write config.yaml (the main process)."""
        if self.moved_to is not None:
            try:
                os.rename(self.out, self.moved_to)
            except OSError as err:
                raise ConfigError(
                    f"run.out {self.out}: cannot move the old run aside to {self.moved_to} "
                    f"({err.strerror or err})"
                ) from None
            log.warning(
                "run.out %s held another run: moved to %s; this run starts afresh",
                self.out,
                self.moved_to,
            )
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"run.out {self.out}: cannot make the folder ({err})") from None
        _remove_stale_temps(self.out, self.ckpt_dir)
        resumed = self.resumed_from
        if resumed is not None and resumed == S.epoch_checkpoints(self.ckpt_dir)[-1][1]:
            # A stop between writing an epoch and pruning the old ones leaves one checkpoint
            # too many; the resume finishes the prune (only from the newest checkpoint: when
            # that one did not load, nothing is deleted).
            S.prune(self.ckpt_dir, self.cfg.run.keep_last)
        # What a stopped run logged after its checkpoint is trained again: logged once.
        st = self.state
        trim_log(self.out / "metrics.jsonl", st.step, st.epoch - (not st.epoch_finished))
        write_text(self.out / "config.yaml", to_yaml(self.cfg))

    # ------------------------------------------------------------------ checkpoints
    def _resume(self, found: list[str]) -> None:
        """Continue the folder's run from its newest checkpoint that loads, after checking that
        this config can continue it; a folder whose run left no epoch checkpoint but results
        (best.safetensors, results.json, epoch records) is refused rather than overwritten."""
        notes: list[str] | None = None
        settings = [
            {k: v for k, v in group.items() if k not in ("params", "lr", "initial_lr")}
            for group in self.optimizer.param_groups
        ]
        newest_error: TimesformerError | None = None
        for epoch, path in reversed(S.epoch_checkpoints(self.ckpt_dir)):
            try:
                record = S.read_run_record(path) if notes is None else None
            except TimesformerError as err:
                log.warning("skipping checkpoint %s", err)  # the error names the file
                newest_error = newest_error or err
                continue
            if record is not None:  # the newest readable one: the run's settings
                notes = self._check_continuation(record)
            try:
                self.state = S.load_train_state(path, self.model, self.optimizer, self.scaler)
            except TimesformerError as err:
                log.warning("skipping checkpoint %s", err)
                newest_error = newest_error or err
                continue
            # The config's optimizer settings (weight decay, momentum, betas), not the
            # checkpoint's: a change is then a change, as the notes say.
            for group, setting in zip(self.optimizer.param_groups, settings, strict=True):
                group.update(setting)
            self.resumed_from = path
            log.info("resumed from %s (epoch %d, step %d)", path, epoch, self.state.step)
            self._notices += [f"changed since that checkpoint: {note}" for note in notes or []]
            return
        if newest_error is not None:
            # Starting over would write new epochs over the run's damaged ones: stop instead.
            raise CheckpointError(
                f"{newest_error} (no checkpoint of {self.ckpt_dir} loads; {self._ways_out()})"
            )
        results = [n for n in ("best.safetensors", "results.json") if n in found]
        if any(r.get("kind") == "epoch" for r in read_log(self.out / "metrics.jsonl")):
            results.append("metrics.jsonl")
        if results:
            raise ConfigError(
                f"run.out {self.out} holds a run with no epoch checkpoint to resume from "
                f"({', '.join(results)}): {self._ways_out()}"
            )

    def _check_continuation(self, record: S.RunRecord) -> list[str]:
        """The settings changed since the checkpoint, as ``KEY: OLD -> NEW`` lines; a
        ``ConfigError`` naming the changes this run cannot continue with."""
        new = _flat(OmegaConf.to_container(OmegaConf.structured(self.cfg)))
        old = _flat(record.run_config)
        if "num_classes" in record.model_config:  # the count used (an older config.yaml: null)
            old["model.num_classes"] = record.model_config["num_classes"]
        changed = {
            key: f"{key}: {old[key]} -> {value}"
            for key, value in new.items()
            if key in old and key not in _NOT_COMPARED and old[key] != value
        }
        problems = []
        model_now = self.model.config.to_dict()
        for name, key in _ARCHITECTURE.items():
            before = record.model_config.get(name, model_now[name])
            if before != model_now[name]:
                problems.append(f"{key}: {before} -> {model_now[name]}")
                changed.pop(key, None)  # said once, as a problem
        if problems and "model.name" in changed:
            problems.insert(0, changed.pop("model.name"))
        if record.class_names is not None and record.class_names != list(self.class_names):
            causes = [changed.pop(k) for k in _DATA_SET if k in changed]
            problems.append(
                f"the data's classes {_names(record.class_names)} -> {_names(self.class_names)}"
                + (f" ({', '.join(causes)})" if causes else "")
            )
        st = record.state
        if st.epoch and st.step // st.epoch != self.steps_per_epoch:
            # The schedule and the epoch count are in optimizer steps: they would not line up.
            causes = [changed.pop(k) for k in _EPOCH_LENGTH if k in changed]
            causes = causes or ["the training set has another size"]
            problems.append(
                f"optimizer steps per epoch {st.step // st.epoch} -> {self.steps_per_epoch} "
                f"({', '.join(causes)})"
            )
        if "optim.name" in changed:  # the optimizer state is another optimizer's
            problems.append(changed.pop("optim.name"))
        if problems:
            raise ConfigError(
                f"run.out {self.out} holds a run that this config cannot continue: "
                f"{'; '.join(problems)}. Resume it with its own settings "
                f"({self.out / 'config.yaml'}), {self._ways_out()}"
            )
        return [f"{line}{_CHANGE_NOTES.get(key, '')}" for key, line in changed.items()]

    def _update_best(self, val: EvalResult) -> None:
        st = self.state
        if st.best_metric is None or val.video_top1 > st.best_metric:
            st.best_metric, st.best_epoch = val.video_top1, st.epoch
            if self.info.is_main:
                save_checkpoint(
                    self.model, self.out / "best.safetensors", class_names=self.class_names
                )

    def _save_epoch(self) -> None:
        if self.info.is_main:
            S.save_train_state(
                self.ckpt_dir / f"epoch_{self.state.epoch:03d}.safetensors",
                self.model,
                self.optimizer,
                self.state,
                class_names=self.class_names,
                run_config=to_yaml(self.cfg),
                scaler=self.scaler,
            )
            S.prune(self.ckpt_dir, self.cfg.run.keep_last)
        barrier(self.info)

    def resume_hint(self) -> str:
        """How to go on after a stopped run: the same command resumes from its checkpoints."""
        return (
            f"start the same command again to resume from the newest checkpoint in {self.ckpt_dir}"
        )

    # ------------------------------------------------------------------ one epoch
    def _epoch_seed(self, epoch: int) -> None:
        # Model randomness (drop path) from (seed, epoch, rank) alone: exact after a resume.
        seed_everything(self.cfg.run.seed * 100_003 + epoch * 1009 + self.info.rank)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, info = self.cfg, self.info
        self.loader.sampler.set_epoch(epoch)
        # The iterator first: a fresh one draws its base seed from the global generator, a
        # persistent one (data.workers > 0) only in the first epoch of a process, so seeding
        # after it keeps the model's random stream the same after a resume.
        batches = iter(self.loader)
        self._epoch_seed(epoch)
        self.net.train()
        loss_sum = torch.zeros(3, dtype=torch.float64)  # loss*n, correct, n
        start = time.perf_counter()
        clips = 0
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
            unit="step",
            disable=not (cfg.run.progress and info.is_main),
            leave=False,
        )
        self.optimizer.zero_grad(set_to_none=True)
        micro = 0
        steps = 0
        for batch in batches:
            self.failures.update(batch)
            x = batch["video"].to(self.device, non_blocking=True)
            y = batch["label"].to(self.device, non_blocking=True)
            last_micro = (micro + 1) % self.accum == 0
            sync = last_micro or not info.enabled
            ctx = self.net.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                with autocast_context(self.device, cfg.run.precision):
                    logits = self.net(x)
                    loss = F.cross_entropy(
                        logits.float(), y, label_smoothing=cfg.optim.label_smoothing
                    )
                self._check_finite(loss.detach(), epoch, steps)
                self.scaler.scale(loss / self.accum).backward()
            loss = loss.detach()
            with torch.no_grad():
                n = y.shape[0]
                loss_sum += torch.tensor(
                    [float(loss) * n, float((logits.argmax(-1) == y).sum()), n], dtype=torch.float64
                )
            clips += y.shape[0] * info.world_size
            micro += 1
            if not last_micro:
                continue
            lr = self.schedule.apply(self.optimizer, self.state.step)
            if cfg.optim.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.state.step += 1
            steps += 1
            rate = clips / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
            bar.update()
            if info.is_main:
                self.runlog.write(
                    {
                        "kind": "step",
                        "epoch": epoch + 1,
                        "step": self.state.step,
                        "loss": float(loss),
                        "lr": lr,
                    },
                    step=self.state.step,
                )
            if steps >= self.steps_per_epoch:
                break
        bar.close()
        all_reduce_sum(loss_sum, info)
        total = max(loss_sum[2].item(), 1)
        return {
            "train_loss": loss_sum[0].item() / total,
            "train_acc": loss_sum[1].item() / total,
            "lr": self.schedule.lr_at(max(self.state.step - 1, 0)),
            "clips_per_s": clips / (time.perf_counter() - start),
            "epoch_s": time.perf_counter() - start,
        }

    def _check_finite(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0])
        all_reduce_sum(bad, self.info)  # every process stops together
        if bad.item() > 0:
            last = S.epoch_checkpoints(self.ckpt_dir)
            kept = f"; the last good checkpoint is {last[-1][1]}" if last else ""
            raise TrainingDiverged(
                f"the loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}: stopping "
                f"(lower optim.lr, set optim.clip_grad, or use run.precision=fp32){kept}"
            )

    def validate(self) -> EvalResult:
        return evaluate(
            self.model,
            self.val_set,
            batch_size=self.cfg.data.batch_size,
            device=self.device,
            precision=self.cfg.run.precision,
            reduce=self.cfg.run.eval_reduce,
            info=self.info,
            progress=self.cfg.run.progress,
            desc="val",
        )

    # ------------------------------------------------------------------ the run
    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train up to ``optim.epochs`` (or ``stop_after`` more epochs in this call: a job on a
        time-limited slot runs a few epochs, and the next one resumes from the checkpoint)."""
        # A process that dies or hangs mid-run stops the others at their next collective:
        # one clear line, and the checkpoints on disk to resume from.
        with comm_failures(self.info, self.resume_hint()):
            return self._fit(stop_after)

    def _fit(self, stop_after: int | None) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        last = cfg.optim.epochs
        if stop_after is not None:
            last = min(last, self.state.epoch + stop_after)
        if not self.state.epoch_finished:
            # The checkpoint resumed from was written before its epoch's evaluation, which a
            # stop then cut short: done now, on the same weights.
            self._finish_epoch(self.state.history[-1], rewrite=self.state.epoch >= last)
        if self.state.epoch >= cfg.optim.epochs and info.is_main:
            log.info(
                "the run in %s has trained %s (optim.epochs %d): nothing left to train",
                self.out,
                _count(self.state.epoch, "epoch"),
                cfg.optim.epochs,
            )
        for epoch in range(self.state.epoch, last):
            record: dict[str, Any] = {"kind": "epoch", "epoch": epoch + 1}
            # Open files, memory, threads and child processes at the start and end of each
            # epoch: a long run shows any leak as growth from one epoch to the next.
            start = process_resources()
            record.update(self.train_epoch(epoch))
            if self.failures.failed_samples:
                record["decode_failures"] = self.failures.failed_samples
            self.failures.end_epoch(epoch + 1)  # logs the summary, starts the next count
            self.state.epoch = epoch + 1
            record["step"] = self.state.step
            record.update({f"{k}_start": v for k, v in start.items()})
            self.state.history.append(record)
            self.state.epoch_finished = False
            # The epoch is on disk before anything that can fail after it (evaluation, best
            # checkpoint, pruning, plots): a failure there cannot lose it.
            self._save_epoch()
            self._finish_epoch(record, rewrite=epoch + 1 == last)
        if info.is_main and self.state.epoch == cfg.optim.epochs:
            curves = self.out / "curves.png"
            try:
                plot_curves(
                    read_log(self.out / "metrics.jsonl"),
                    curves,
                    title=f"{cfg.model.attention} attention",
                )
            except OSError as err:  # the checkpoints are written: a plot is not worth the run
                log.warning("%s: not written (%s)", curves, err.strerror or err)
        self.runlog.close()
        return {"state": self.state, "out": self.out}

    def _finish_epoch(self, record: dict[str, Any], rewrite: bool) -> None:
        """The end of an epoch whose checkpoint is written: evaluation when due, the best
        checkpoint, the log record; with ``rewrite``, the epoch's checkpoint again, complete
        (the last epoch of this call: otherwise the next epoch's checkpoint holds the record)."""
        cfg, info = self.cfg, self.info
        epoch = record["epoch"]
        if epoch % cfg.run.eval_every == 0 or epoch == cfg.optim.epochs:
            val = self.validate()
            record.update(val_top1=val.video_top1, val_top5=val.video_top5, val_loss=val.loss)
            self._update_best(val)
        record.update({f"{k}_end": v for k, v in process_resources().items()})
        self.state.epoch_finished = True
        if rewrite:
            self._save_epoch()
        if info.is_main:
            self.runlog.write(record, step=record["step"])
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
            log.info("epoch %d/%d: %s", epoch, cfg.optim.epochs, shown)


def final_evaluation(trainer: Trainer) -> EvalResult:
    """The reference test protocol on the validation split; writes results.json and a PNG."""
    import json

    cfg = trainer.cfg
    test_set = build_dataset(cfg, "val", "test", trainer.class_names)
    result = evaluate(
        trainer.model,
        test_set,
        batch_size=max(1, cfg.data.batch_size // 2),
        device=trainer.device,
        precision=cfg.run.precision,
        reduce=cfg.run.eval_reduce,
        info=trainer.info,
        progress=cfg.run.progress,
        desc="test",
    )
    if trainer.info.is_main:
        write_text(trainer.out / "results.json", json.dumps(result.to_dict(), indent=1))
        plot_confusion(
            result.confusion,
            test_set.class_names,
            trainer.out / "confusion.png",
            title=f"{cfg.model.attention}: {100 * result.video_top1:.1f}% top-1",
        )
    return result
