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
from timesformer.checkpoints.io import remove_temp
from timesformer.data import DecodeFailures
from timesformer.engine import state as S
from timesformer.engine.builders import build_dataset, build_model, clip_config, train_loader
from timesformer.engine.config import TrainConfig, to_yaml
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


def _remove_stale_temps(*folders: Path) -> None:
    """Delete the temporaries of checkpoint writes that a killed run left behind (named
    ``.NAME.XXXX.tmp`` by ``atomic_path``): never read as checkpoints, but each as large as one."""
    for folder in folders:
        for tmp in folder.glob(".*.safetensors.*.tmp"):
            remove_temp(tmp)


class Trainer:
    """Builds everything from a ``TrainConfig`` and runs ``fit()``."""

    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None) -> None:
        self.cfg = cfg
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
        seed_everything(cfg.run.seed)

        self.train_set = build_dataset(cfg, "train", "train")
        self.class_names = self.train_set.class_names
        # The training split's classes, in its order: a val split without some class keeps the
        # same label indices.
        self.val_set = build_dataset(cfg, "val", "val", self.class_names)
        self.loader = train_loader(cfg, self.train_set, self.info.rank, self.info.world_size)
        self.accum = _accumulation(cfg, self.info.world_size)
        micro = len(self.loader)
        if micro < self.accum:
            raise ConfigError(
                f"the training set gives {micro} batches per process, fewer than the "
                f"{self.accum} needed for one optimizer step of optim.global_batch"
            )
        self.steps_per_epoch = micro // self.accum
        if cfg.run.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.run.max_steps_per_epoch)

        self.model = build_model(cfg, self.train_set.num_classes, self.class_names)
        self.model = self.model.to(self.device)
        self.model.class_names = self.class_names
        self.model.preprocess = dataclasses.asdict(clip_config(cfg))
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.schedule = LRSchedule(cfg.optim, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.run.precision == "fp16")
        self.state = S.TrainState()
        self.resumed_from: Path | None = None
        if cfg.run.resume:
            self._resume()
        # The run folder is made once everything above has been checked: a config, data set or
        # checkpoint that fails leaves no folder behind.
        if self.info.is_main:
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
                S.prune(self.ckpt_dir, cfg.run.keep_last)
            (self.out / "config.yaml").write_text(to_yaml(cfg))
        self.net: torch.nn.Module = self.model
        if cfg.run.compile:
            self.net = torch.compile(self.net)
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.runlog = RunLog(self.out, cfg.run.tensorboard, enabled=self.info.is_main)
        self.failures = DecodeFailures(log)

    # ------------------------------------------------------------------ checkpoints
    def _resume(self) -> None:
        newest_error: TimesformerError | None = None
        for epoch, path in reversed(S.epoch_checkpoints(self.ckpt_dir)):
            try:
                self.state = S.load_train_state(path, self.model, self.optimizer, self.scaler)
            except TimesformerError as err:
                log.warning("skipping checkpoint %s", err)  # the error names the file
                newest_error = newest_error or err
                continue
            self.resumed_from = path
            log.info("resumed from %s (epoch %d, step %d)", path, epoch, self.state.step)
            return
        if newest_error is not None:
            # Starting over would write new epochs over the run's damaged ones: stop instead.
            raise CheckpointError(
                f"{newest_error} (no checkpoint of {self.ckpt_dir} loads; set run.resume=false "
                "or another run.out to start over)"
            )

    def _save(self, val: EvalResult | None) -> None:
        st = self.state
        if val is not None:
            metric = val.video_top1
            if st.best_metric is None or metric > st.best_metric:
                st.best_metric, st.best_epoch = metric, st.epoch
                if self.info.is_main:
                    save_checkpoint(
                        self.model, self.out / "best.safetensors", class_names=self.class_names
                    )
        if self.info.is_main:
            path = self.ckpt_dir / f"epoch_{st.epoch:03d}.safetensors"
            S.save_train_state(
                path,
                self.model,
                self.optimizer,
                st,
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
        val: EvalResult | None = None
        last = cfg.optim.epochs
        if stop_after is not None:
            last = min(last, self.state.epoch + stop_after)
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
            if (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == cfg.optim.epochs:
                val = self.validate()
                record.update(val_top1=val.video_top1, val_top5=val.video_top5, val_loss=val.loss)
            record["step"] = self.state.step
            end = process_resources()
            record.update({f"{k}_start": v for k, v in start.items()})
            record.update({f"{k}_end": v for k, v in end.items()})
            self.state.history.append(record)
            self._save(val if "val_top1" in record else None)
            if info.is_main:
                self.runlog.write(record, step=self.state.step)
                shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
                log.info("epoch %d/%d: %s", epoch + 1, cfg.optim.epochs, shown)
        if info.is_main and self.state.epoch == cfg.optim.epochs:
            plot_curves(
                read_log(self.out / "metrics.jsonl"),
                self.out / "curves.png",
                title=f"{cfg.model.attention} attention",
            )
        self.runlog.close()
        return {"state": self.state, "out": self.out}


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
        (trainer.out / "results.json").write_text(json.dumps(result.to_dict(), indent=1))
        plot_confusion(
            result.confusion,
            test_set.class_names,
            trainer.out / "confusion.png",
            title=f"{cfg.model.attention}: {100 * result.video_top1:.1f}% top-1",
        )
    return result
