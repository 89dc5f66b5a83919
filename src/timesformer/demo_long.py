"""The paper's Table 8 (long-term modelling) in miniature, on the synthetic long-video set.

The paper trains TimeSformer on HowTo100M with 8, 32, 64 and 96 input frames and finds that
accuracy rises with the time one clip covers (56.8 / 61.2 / 62.2 / 62.6 top-1). Here the videos
are 24 s long and their class is the order of two short flashes at least 3 s apart
(``timesformer.data.long_synthetic``): the frames of every class are the same, only their order
differs. The demo trains the same small model (the shipped ``synthetic`` config, its time
embedding started smooth) with 8, 32 and 96 frames sampled uniformly over the whole video
(segment sampling), with divided and with joint space-time attention, and an 8-frame joint model
on short windows (8 frames x rate 4: 2.7 s) whose predictions are averaged over windows tiling
the whole video (what ``predict --windows`` does): each window sees at most one flash and cannot
tell where in the video it lies, so that average cannot tell the order.

Each row records top-1 on the validation split, the seconds and the peak memory of its training,
and, measured on the model alone (a random batch, no data loading), the seconds of one training
step and their peak memory. Cost rows time the schemes, untrained, at more tokens a frame, where
joint attention's cost, which grows with the square of the tokens, shows.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from timesformer.data.long_synthetic import (
    DEFAULT_LONG_CLASSES,
    META_KEYS,
    describe_long_task,
    make_long_synthetic,
)
from timesformer.engine import TrainConfig, Trainer, load_config, packaged_config
from timesformer.errors import ConfigError

__all__ = [
    "PAPER_TABLE8",
    "LongDemoSettings",
    "LongResult",
    "ensure_data",
    "format_table8",
    "peak_memory_mib",
    "run_long_demo",
]

# TimeSformer's top-1 on HowTo100M by input frames (paper Table 8; 8.5 / 34.1 / 68.3 / 102.4 s
# a clip, predictions averaged over 48 / 12 / 6 / 4 test clips).
PAPER_TABLE8: dict[int, float] = {8: 56.8, 32: 61.2, 64: 62.2, 96: 62.6}


@dataclass
class LongDemoSettings:
    """What ``run_long_demo`` generates, trains and times. The defaults take about 18 minutes a
    seed on a CPU core (docs/results.md); ``seed`` seeds both the data set and the training
    (one run per seed)."""

    out: Path = Path("runs/demo_long")
    seed: int = 0
    # The data set (``make_long_synthetic``'s arguments).
    classes: tuple[str, ...] = DEFAULT_LONG_CLASSES
    train_per_class: int = 128
    val_per_class: int = 32
    seconds: float = 24.0
    fps: float = 12.0
    size: int = 32
    event_seconds: tuple[float, float] = (1.0, 1.5)
    min_gap: float = 3.0
    placement: str = "parts"
    # The model: the shipped ``synthetic`` config with this patch size (32 px / 16: 4 tokens a
    # frame, 384 at 96 frames), trained for ``epochs`` at ``lr`` (cosine, 1 epoch of warm-up).
    patch_size: int = 16
    epochs: int = 40
    lr: float = 5e-4
    # The time embedding starts smooth over the clip ("sincos"): with a random one per frame
    # ("normal", the synthetic recipe's), divided attention sat at chance for 25 epochs at 8
    # frames, 60 at 32 and over 100 at 96 before it learned; joint attention did not wait.
    time_embed_init: str = "sincos"
    # Frames sampled uniformly over the whole video: one model per count and scheme.
    frames: tuple[int, ...] = (8, 32, 96)
    attentions: tuple[str, ...] = ("divided", "joint")
    # The frame counts at which joint attention is trained (None: all of ``frames``); at the
    # others it is only timed.
    joint_frames: tuple[int, ...] | None = None
    # Model-only timing: training steps on a random batch, after one warm-up step.
    cost_steps: int = 2
    # Cost rows: every scheme of ``attentions`` timed (not trained) at ``cost_frames`` with
    # ``cost_patch_size`` patches (None: no cost rows).
    cost_patch_size: int | None = 8
    cost_frames: tuple[int, ...] = (96,)
    # The short-window baseline (when ``baseline``): ``window_frames`` frames, one every
    # ``window_rate`` frames of the video, trained on random windows and evaluated on the mean
    # of its predictions over windows tiling each video.
    baseline: bool = True
    window_frames: int = 8
    window_rate: int = 4
    # Joint attention: the scheme that learns the whole-video task at 8 frames within the
    # demo's epochs, so the baseline's chance result is the windows', not the scheme's.
    window_attention: str = "joint"
    progress: bool = True
    # Further config overrides ("key=value") for every run, after the demo's own.
    overrides: tuple[str, ...] = ()

    def data_meta(self) -> dict[str, Any]:
        """The meta.json values of the data set of these settings (JSON types)."""
        return {
            "seed": self.seed,
            "classes": list(self.classes),
            "seconds": self.seconds,
            "fps": self.fps,
            "size": self.size,
            "event_seconds": list(self.event_seconds),
            "min_gap": self.min_gap,
            "placement": self.placement,
            "crf": 0,
            "train_per_class": self.train_per_class,
            "val_per_class": self.val_per_class,
        }


@dataclass
class LongResult:
    """One row of the table. A row only timed has ``top1``, ``train_s`` and ``peak_mib`` None."""

    name: str  # "divided", "joint" or "window" (the short-window baseline)
    attention: str
    frames: int
    tokens: int  # patch tokens of one clip: frames x patches a frame
    sampling: str  # "segment": uniform over the whole video; "window": a short window
    clip_s: float  # seconds of video one clip spans
    top1: float | None  # validation top-1 (window row: of the mean over windows)
    epochs: int  # 0: not trained
    steps: int  # optimizer steps trained
    train_s: float | None  # seconds in training epochs (data loading included, evaluation not)
    peak_mib: float | None  # peak memory of the training above what was held before it
    step_s: float  # one training step of the model alone (batch of data.batch_size clips)
    step_peak_mib: float | None  # peak memory of those steps above what was held before them
    seed: int = 0
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- measuring


def _status_mib(key: str) -> float:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> float | None:
    """Release free heap memory and reset the resident-set high-water mark; the resident MiB
    now, or None where the kernel does not let a process reset it (not Linux)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mib("VmRSS")
    except (OSError, KeyError):
        return None


def peak_memory_mib(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float | None]:
    """(``fn()``, its peak memory in MiB above what was held before it): the CUDA allocator's
    peak on a GPU, the rise of the resident-set high-water mark on the CPU (None where it cannot
    be reset). Child processes (data-loader workers) are not counted."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        value = fn()
        torch.cuda.synchronize(device)
        return value, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = _reset_peak()
    value = fn()
    return value, None if before is None else _status_mib("VmHWM") - before


def time_model_steps(cfg: TrainConfig, classes: int, steps: int) -> tuple[float, float | None]:
    """(seconds a training step, peak MiB of those steps) of a fresh model of ``cfg`` on a
    random batch (data.batch_size, 3, data.num_frames, crop, crop) with the optimizer of
    ``cfg.optim``, after one warm-up step (allocations, kernel choices): the model's cost
    without the data."""
    from timesformer.engine.builders import build_model
    from timesformer.engine.optim import build_optimizer
    from timesformer.runtime import pick_device

    device = pick_device(cfg.run.device)
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg, classes).to(device).train()
    optimizer = build_optimizer(model, cfg.optim)
    d = cfg.data
    x = torch.randn(d.batch_size, 3, d.num_frames, d.crop_size, d.crop_size, device=device)
    y = torch.arange(d.batch_size, device=device) % classes

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / steps

    step()
    return peak_memory_mib(timed, device)


# --------------------------------------------------------------------------- the demo


def ensure_data(s: LongDemoSettings, log: Callable[[str], Any] = print) -> Path:
    """The data set of ``s`` in ``s.out/data``: reused when its meta.json matches, else written."""
    data = s.out / "data"
    meta = data / "meta.json"
    have = json.loads(meta.read_text()) if meta.is_file() else {}
    want = s.data_meta()
    if any(have.get(k) != want[k] for k in META_KEYS):
        log(f"writing the long-video set to {data} ...")
        make_long_synthetic(
            data,
            seed=s.seed,
            classes=s.classes,
            train_per_class=s.train_per_class,
            val_per_class=s.val_per_class,
            seconds=s.seconds,
            fps=s.fps,
            size=s.size,
            event_seconds=s.event_seconds,
            min_gap=s.min_gap,
            placement=s.placement,
            overwrite=True,
            progress=s.progress,
        )
    return data


def _config(
    s: LongDemoSettings, data: Path, run: Path, extra: list[str], patch: int | None = None
) -> TrainConfig:
    return load_config(
        [packaged_config("synthetic")],
        [
            f"data.root={data}",
            f"data.crop_size={s.size}",
            f"data.train_scale=[{s.size},{s.size + s.size // 4}]",
            f"model.patch_size={patch or s.patch_size}",
            # The videos are the crop's size: three test crops would be one crop three times.
            "data.test_crops=1",
            "data.test_clips=1",
            # Window sampling rates count frames of the video itself.
            f"data.target_fps={s.fps}",
            f"run.out={run}",
            f"optim.epochs={s.epochs}",
            f"optim.lr={s.lr}",
            f"model.time_embed_init={s.time_embed_init}",
            # The shipped config's values when the demo was measured, pinned: the gradient
            # clipping keeps a loss spike from undoing training, and the decoded cache keeps
            # the 2 CPU cores on the model instead of on decoding the same videos every epoch.
            "optim.clip_grad=1.0",
            "data.cache_decoded=true",
            # Evaluated once, after the last epoch: the time goes to training.
            f"run.eval_every={s.epochs}",
            f"run.seed={s.seed}",
            "run.resume=false",
            f"run.progress={str(s.progress).lower()}",
            "run.tensorboard=false",
            *extra,
            *s.overrides,
        ],
    )


@dataclass
class _Trained:
    trainer: Trainer
    train_s: float  # seconds in training epochs
    steps: int
    peak_mib: float | None
    val_top1: float | None  # the evaluation after the last epoch


def _train(cfg: TrainConfig) -> _Trained:
    run = Path(cfg.run.out)
    if (run / "config.yaml").is_file():
        # The demo's own earlier run: replaced rather than moved aside (run.resume=false would
        # keep it as RUN.old-1).
        shutil.rmtree(run)
    trainer = Trainer(cfg)
    _, peak = peak_memory_mib(trainer.fit, trainer.device)
    epochs = [r for r in trainer.state.history if r.get("kind") == "epoch"]
    train_s = sum(float(r.get("epoch_s", 0.0)) for r in epochs)
    val = epochs[-1].get("val_top1") if epochs else None
    return _Trained(trainer, train_s, trainer.state.step, peak, val)


def _tokens(cfg: TrainConfig) -> int:
    side = cfg.data.crop_size // (cfg.model.patch_size or 1)
    return cfg.data.num_frames * side * side


def _segment_row(
    s: LongDemoSettings,
    data: Path,
    attention: str,
    frames: int,
    log: Callable[[str], Any],
    *,
    timed_only: bool = False,
    patch: int | None = None,
) -> LongResult:
    """A model of ``frames`` frames sampled uniformly over the whole video: trained, evaluated
    and timed, or with ``timed_only`` only timed."""
    extra = [f"model.attention={attention}", f"data.num_frames={frames}", "data.sampling=segment"]
    name = f"{attention}_{frames}" + (f"_p{patch}" if patch else "")
    cfg = _config(s, data, s.out / name, extra, patch)
    tokens = _tokens(cfg)
    what = "timing" if timed_only else "training"
    log(f"{what} {attention} attention, {frames} frames, {tokens} tokens ...")
    row = LongResult(
        name=attention,
        attention=attention,
        frames=frames,
        tokens=tokens,
        sampling="segment",
        clip_s=s.seconds,
        top1=None,
        epochs=0,
        steps=0,
        train_s=None,
        peak_mib=None,
        step_s=math.nan,
        step_peak_mib=None,
        seed=s.seed,
        note="timed, not trained" if timed_only else "",
    )
    if not timed_only:
        t = _train(cfg)
        row.top1, row.epochs, row.steps = t.val_top1, cfg.optim.epochs, t.steps
        row.train_s, row.peak_mib = t.train_s, t.peak_mib
    row.step_s, row.step_peak_mib = time_model_steps(cfg, len(s.classes), s.cost_steps)
    return row


def _window_row(s: LongDemoSettings, data: Path, log: Callable[[str], Any]) -> LongResult:
    """An 8-frame model trained on short windows, evaluated on the average of its predictions
    over windows tiling each validation video (``Predictor.predict_windows``, as ``predict
    --windows`` does)."""
    from timesformer.engine.builders import build_dataset, clip_config
    from timesformer.inference.predictor import Predictor

    f, rate = s.window_frames, s.window_rate
    extra = [
        f"model.attention={s.window_attention}",
        f"data.num_frames={f}",
        "data.sampling=window",
        f"data.sampling_rate={rate}",
    ]
    cfg = _config(s, data, s.out / f"window_{f}x{rate}", extra)
    log(f"training the short-window baseline ({f} frames x rate {rate}) ...")
    t = _train(cfg)
    one_window = t.val_top1 or 0.0  # one centred window a video
    val = build_dataset(cfg, "val", "val", t.trainer.class_names)
    predictor = Predictor(t.trainer.model, clip=clip_config(cfg), labels=t.trainer.class_names)
    correct = 0
    for path, label in zip(val.paths, val.labels, strict=True):
        probs = predictor.predict_windows(path, batch=16).probs  # (C,): mean over windows
        correct += int(probs is not None and int(probs.argmax()) == label)
    step_s, step_peak = time_model_steps(cfg, len(s.classes), s.cost_steps)
    windows = math.ceil(s.seconds * s.fps / (f * rate))
    return LongResult(
        name="window",
        attention=s.window_attention,
        frames=f,
        tokens=_tokens(cfg),
        sampling="window",
        clip_s=f * rate / s.fps,
        top1=correct / max(len(val), 1),
        epochs=cfg.optim.epochs,
        steps=t.steps,
        train_s=t.train_s,
        peak_mib=t.peak_mib,
        step_s=step_s,
        step_peak_mib=step_peak,
        seed=s.seed,
        note=f"mean of {windows} windows a video; one centred window: {100 * one_window:.1f}%",
        extra={"one_window_top1": one_window},
    )


def run_long_demo(s: LongDemoSettings, log: Callable[[str], Any] = print) -> list[LongResult]:
    """Generate (or reuse) the long-video set, train and time every row's model, write
    ``s.out/results.md`` and ``results.json``; returns the rows: each scheme of ``s.attentions``
    at each of ``s.frames``, the short-window baseline, then the cost rows."""
    if s.baseline and s.window_frames * s.window_rate > s.min_gap * s.fps:
        raise ConfigError(
            f"the baseline's window ({s.window_frames} x {s.window_rate} frames) is longer than "
            f"the gap between events ({s.min_gap:g} s at {s.fps:g} fps): it would see two events"
        )
    if s.cost_steps < 1:
        raise ConfigError(f"cost_steps must be at least 1, got {s.cost_steps}")
    data = ensure_data(s, log)
    rows: list[LongResult] = []

    def add(row: LongResult) -> None:
        rows.append(row)
        log(format_row(row))

    for attention in s.attentions:
        for frames in s.frames:
            only = s.joint_frames if attention == "joint" else None
            timed_only = only is not None and frames not in only
            add(_segment_row(s, data, attention, frames, log, timed_only=timed_only))
    if s.baseline:
        add(_window_row(s, data, log))
    if s.cost_patch_size is not None:
        for attention in s.attentions:
            for frames in s.cost_frames:
                patch = s.cost_patch_size
                add(_segment_row(s, data, attention, frames, log, timed_only=True, patch=patch))
    (s.out / "results.md").write_text(
        "# Table 8 in miniature: long-term order on the synthetic long-video set\n\n"
        + describe_long_task(s.classes, s.placement)
        + "\n\n"
        + format_table8(rows)
        + "\n",
        encoding="utf-8",
    )
    (s.out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return rows


# --------------------------------------------------------------------------- reporting


def format_row(r: LongResult) -> str:
    """One line for the log."""
    top1 = "not trained" if r.top1 is None else f"top-1 {100 * r.top1:.1f}%"
    train = "" if r.train_s is None else f", trained {r.train_s:.0f} s"
    return (
        f"{r.name:<8}{r.frames:>4} frames {r.tokens:>5} tokens ({r.sampling}): {top1}{train}, "
        f"{r.step_s:.3f} s/step, step peak {_mib(r.step_peak_mib)} MiB"
    )


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def _mib(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.0f}"


def format_table8(rows: list[LongResult]) -> str:
    """A Markdown table of ``rows`` beside the paper's Table 8 (TimeSformer on HowTo100M): the
    paper's top-1 stands in the trained rows of divided attention over the whole video at its
    frame counts; its figures without such a row are named below the table."""
    head = (
        "| model | attention | frames | tokens | clip covers | top-1 (%) | paper top-1 (%) "
        "| train s | train peak MiB | s/step | step peak MiB | note |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    lines = [head]
    shown = set()
    for r in rows:
        paper = None
        trained = r.top1 is not None and r.sampling == "segment"
        if trained and r.name == "divided" and r.frames in PAPER_TABLE8:
            paper = PAPER_TABLE8[r.frames]
            shown.add(r.frames)
        model = "short windows, averaged" if r.name == "window" else "whole video"
        train_s = "-" if r.train_s is None else f"{r.train_s:.0f}"
        lines.append(
            f"| {model} | {r.attention} | {r.frames} | {r.tokens} | {r.clip_s:.1f} s "
            f"| {_pct(r.top1)} | {'-' if paper is None else f'{paper:.1f}'} | {train_s} "
            f"| {_mib(r.peak_mib)} | {r.step_s:.3f} | {_mib(r.step_peak_mib)} | {r.note} |"
        )
    notes = [
        "",
        "Paper: TimeSformer (divided attention) on HowTo100M, Table 8; its 8-frame model covers "
        "8.5 s a clip and averages 48 clips over each video, much as the window row here.",
    ]
    missing = [f"{f} frames: {v}" for f, v in PAPER_TABLE8.items() if f not in shown]
    if missing:
        notes.append(f"Paper figures without a row here: {'; '.join(missing)}.")
    notes.append(
        "Chance is 1 / classes. train s: seconds in training epochs (data loading included, "
        "evaluation not); train peak: the rise of the process's resident-set high-water mark "
        "during training (CPU; data-loader workers not counted). s/step and step peak: one "
        "training step of the model alone on a random batch of the training's size, after a "
        "warm-up step."
    )
    return "\n".join(lines + notes)
