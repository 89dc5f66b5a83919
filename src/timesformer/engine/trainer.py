"""The training loop: one process or many (torchrun), CPU or GPU."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from timesformer.checkpoints import save_checkpoint
from timesformer.checkpoints.io import write_text
from timesformer.data import DecodeFailures
from timesformer.engine import run_folder as rf
from timesformer.engine import state as S
from timesformer.engine.builders import build_dataset, build_model, clip_config, train_loader
from timesformer.engine.config import TrainConfig, check_grid, to_yaml
from timesformer.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    comm_failures,
    init_distributed,
)
from timesformer.engine.evaluate import EvalResult, evaluate
from timesformer.engine.metrics import (
    RunLog,
    plot_confusion,
    plot_curves,
    process_resources,
    read_log,
)
from timesformer.engine.optim import LRSchedule, build_optimizer
from timesformer.errors import ConfigError, TimesformerError
from timesformer.runtime import autocast_context

log = logging.getLogger("timesformer")


class TrainingDiverged(TimesformerError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        self.ckpt_dir = rf.checkpoint_dir(self.out)
        rf.check_folder(self.out)
        self.accum = rf.accumulation(cfg, self.info.world_size)
        seed_everything(cfg.run.seed)

        self.train_set = build_dataset(cfg, "train", "train")
        self.class_names = self.train_set.class_names
        # The training split's classes, in its order: a val split without some class keeps the
        # same label indices.
        self.val_set = build_dataset(cfg, "val", "val", self.class_names)
        self.loader = train_loader(cfg, self.train_set, self.info.rank, self.info.world_size)
        self.steps_per_epoch = rf.steps_per_epoch(
            cfg, len(self.train_set), len(self.loader), self.accum, self.info.world_size
        )
        cfg, notice = rf.with_class_count(cfg, self.train_set.num_classes)
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
        found = rf.run_entries(self.out)
        if cfg.run.resume:
            resumed = rf.resume(
                self.out,
                cfg,
                self.model,
                self.optimizer,
                self.scaler,
                class_names=self.class_names,
                steps_per_epoch=self.steps_per_epoch,
                found=found,
            )
            if resumed is not None:
                self.state, self.resumed_from = resumed.state, resumed.path
                self._notices += resumed.notices
        elif found and self.info.is_main:
            self.moved_to = rf.plan_move_aside(self.out, cfg.data.root)
        if self.info.is_main:
            for line in self._notices:
                log.warning("%s", line)
            # The run folder is made once everything above has been checked: a config, data
            # set or checkpoint that fails leaves the disk as it was.
            rf.prepare_folder(
                self.out,
                cfg,
                self.state,
                moved_to=self.moved_to,
                resumed_from=self.resumed_from,
            )
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

    # ------------------------------------------------------------------ checkpoints
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
                rf.counted(self.state.epoch, "epoch"),
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
