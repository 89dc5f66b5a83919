"""``Predictor``: top-k classes of video files with the reference test protocol.

Each video gives V = K clips x crops views (the reference: 1 clip x 3 crops, short side resized to
the crop size). The views' logits are averaged and turned into probabilities with one softmax:
the ranking is the reference's (it sums the logits), and the probabilities are those of the
average logit, not sharpened by the number of views.

The preprocessing comes from the checkpoint when it carries it (a model trained here stores its
clip settings), else from the model: its frame count and image size, with the reference
sampling rate for that frame count (8 x 32, 16 x 16 for HR, 96 x 4 for L).

``load_predictor`` builds the predictor from a checkpoint and the command-line options, as
``timesformer predict`` and ``timesformer serve`` both do. ``Predictor.logits`` is the forward
pass alone and ``probabilities_from_logits`` the reduction of the views' logits, so that the
server, which batches the views of several requests, computes what ``Predictor.probabilities``
does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from timesformer.data import ClipConfig, VideoClipDataset
from timesformer.data.video import find_videos  # re-exported: its home before data.video
from timesformer.errors import ConfigError
from timesformer.inference.results import Prediction, WindowPrediction  # re-exported: home before
from timesformer.inference.windows import predict_windows
from timesformer.model import TimeSformer
from timesformer.runtime import EvalItems, autocast_context, check_precision, inference_model

__all__ = [
    "Prediction",
    "Predictor",
    "WindowPrediction",
    "clip_config",
    "default_clip_config",
    "find_videos",
    "load_predictor",
    "probabilities_from_logits",
    "top_classes",
]

# The reference configs' sampling rate for each frame count (TimeSformer, -HR, -L).
REFERENCE_RATES = {8: 32, 16: 16, 96: 4}


def default_clip_config(model: TimeSformer, **overrides: Any) -> ClipConfig:
    """The test-time clip settings for ``model``: its stored ``preprocess`` if any, else the
    reference protocol at its frame count and image size; ``overrides`` (None values ignored)
    replace fields."""
    cfg = model.config
    stored = dict(getattr(model, "preprocess", None) or {})
    base: dict[str, Any] = {
        "num_frames": cfg.num_frames,
        "sampling_rate": REFERENCE_RATES.get(cfg.num_frames, max(1, 256 // cfg.num_frames)),
        "crop_size": cfg.img_size,
        "num_clips": 1,
        "num_crops": 3,
        "test_scale": None,
    }
    base.update(stored)
    base.update({k: v for k, v in overrides.items() if v is not None})
    if "train_scale" not in stored:
        base.pop("train_scale", None)  # then (crop, crop): unused at test time
    try:
        clip = ClipConfig.from_settings(base)
    except ValueError as err:  # ConfigError
        raise ConfigError(f"clip settings: {err}") from None
    if clip.num_frames != cfg.num_frames and cfg.attention != "space":
        # The model resizes its time embedding only when loaded; a clip of another length
        # would not match the embedding it has.
        raise ConfigError(
            f"the model takes {cfg.num_frames} frames, not {clip.num_frames}; load the "
            f"checkpoint with num_frames={clip.num_frames} instead"
        )
    return clip


def clip_config(
    model: TimeSformer,
    *,
    clips: int | None = None,
    crops: int | None = None,
    sampling_rate: int | None = None,
) -> ClipConfig:
    """The model's test clip settings with the options ``--clips``, ``--crops`` and
    ``--sampling-rate`` (None: as ``default_clip_config`` has them)."""
    return default_clip_config(
        model,
        num_clips=clips,
        num_crops=crops,
        sampling_rate=sampling_rate,
        # A sampling rate asks for windows of frames, also from a segment-sampling (SSv2) model.
        sampling="window" if sampling_rate is not None else None,
    )


def probabilities_from_logits(logits: torch.Tensor, per_clip: int | None = None) -> torch.Tensor:
    """The views' logits (V, C) -> class probabilities (C,) of their average logit; with
    ``per_clip`` the views are groups of that many (one group per clip or window) and the result
    is (V // per_clip, C), one row per group."""
    if per_clip is None:
        return logits.mean(0).softmax(-1)
    return logits.reshape(-1, per_clip, logits.shape[-1]).mean(1).softmax(-1)


def top_classes(probs: torch.Tensor, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` best (label, probability) pairs of probabilities (C,), best first."""
    values, indices = probs.topk(k)
    return [(labels[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]


class Predictor:
    """Class probabilities for video files.

    Args:
        model: a ``TimeSformer``. The predictor runs its own copy (``inference_copy``: the same
            weights in memory, or bf16 copies of them), so ``model`` keeps its dtype, device,
            mode and int8 setting.
        clip: test-time clip settings (default: ``default_clip_config(model)``).
        labels: class names (default: the model's own, else "class 0", "class 1", ...).
        device: "cpu", "cuda", ... (default: the model's device).
        precision: "fp32"; "bf16": the predictor's copy has bf16 weights, which
            runs faster than autocast on the CPU (``benchmarks/results/model_cpu.md``);
            "fp16": autocast; "int8" (CPU only): the linear products in int8, the copy marked
            for it (``timesformer.layers.quantize_int8``), 1.39x faster than bf16 weights on
            this project's CPU (``benchmarks/results/int8_cpu.md``).
        topk: classes reported per video.
        compile: run the model through ``torch.compile`` (inductor, weights frozen as
            constants): the first batch compiles for tens of seconds and a new batch shape
            compiles again. On the CPU the eager model's prepacked linears are about as fast in
            bf16 and faster in fp32 (``benchmarks/results/model_cpu.md``); on a GPU compiling
            pays (``benchmarks/results/variants_gpu_compiled.md``).
    """

    def __init__(
        self,
        model: TimeSformer,
        *,
        clip: ClipConfig | None = None,
        labels: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        topk: int = 5,
        compile: bool = False,
    ) -> None:
        check_precision(precision)
        if precision == "int8" and compile:
            # A compiled graph takes F.linear, so int8 would silently not apply.
            raise ConfigError("precision int8 runs eagerly; it does not combine with compile")
        if topk < 1:
            raise ConfigError(f"topk must be at least 1, got {topk}")
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        # The caller's model stays as it was (dtype, int8 marks, device, train mode): a model
        # shared with another Predictor or still being trained must not change under it.
        self.model = inference_model(
            model, self.device, precision, bf16_weights=precision == "bf16"
        )
        self._forward = (
            torch.compile(self.model, options={"freezing": True}) if compile else self.model
        )
        self.clip = clip or default_clip_config(model)
        c = model.config.num_classes
        names = list(labels) if labels is not None else model.class_names
        if names is not None and len(names) != c:
            raise ConfigError(f"{len(names)} class names given for a model of {c} classes")
        self.labels: list[str] = names or [f"class {i}" for i in range(c)]
        self.precision = precision
        self.topk = min(topk, c)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, model_overrides: dict[str, Any] | None = None, **kwargs: Any
    ) -> Predictor:
        """A predictor for any checkpoint ``load_checkpoint`` reads."""
        from timesformer.checkpoints import load_checkpoint

        return cls(load_checkpoint(path, **(model_overrides or {})), **kwargs)

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def logits(self, views: torch.Tensor) -> torch.Tensor:
        """Normalised views (N, 3, T, H, W) -> the model's logits (N, C), float32 on the CPU."""
        views = views.to(self.device, self.dtype, non_blocking=True)
        with autocast_context(self.device, "fp16" if self.precision == "fp16" else "fp32"):
            return self._forward(views).float().cpu()

    def probabilities(self, views: torch.Tensor, per_clip: int | None = None) -> torch.Tensor:
        """Normalised views (V, 3, T, H, W) -> class probabilities (C,) of their average logit.

        With ``per_clip`` the views are groups of that many (one group per clip or window) and the
        result is (V // per_clip, C) (``probabilities_from_logits``)."""
        return probabilities_from_logits(self.logits(views), per_clip)

    def top(self, probs: torch.Tensor) -> list[tuple[str, float]]:
        """The ``topk`` (label, probability) pairs of probabilities (C,), best first."""
        return top_classes(probs, self.labels, self.topk)

    # ------------------------------------------------------------------ whole videos

    def dataset(self, paths: Sequence[str | Path]) -> VideoClipDataset:
        """The test views of ``paths`` as the evaluation reads them (unlabelled)."""
        return VideoClipDataset(
            [(p, -1) for p in paths], self.labels, mode="test", config=self.clip
        )

    def predict(self, path: str | Path) -> Prediction:
        """The prediction for one video; raises ``VideoDecodeError`` when it does not decode."""
        views = self.dataset([path]).load_clip(0)
        probs = self.probabilities(views)
        return Prediction(str(path), self.top(probs), len(views), probs=probs)

    def predict_many(
        self, paths: Sequence[str | Path], *, workers: int = 0, progress: bool = True
    ) -> Iterator[Prediction]:
        """Predictions for ``paths`` in order; a video that fails gives a ``Prediction`` with
        ``error`` set and the others continue. ``workers`` decode ahead in other processes."""
        if not paths:
            return
        items = EvalItems(self.dataset(paths))
        loader = DataLoader(items, batch_size=None, num_workers=workers)
        bar = tqdm(loader, total=len(items), desc="predict", unit="video", disable=not progress)
        for item in bar:
            if item["video"] is None:
                yield Prediction(item["path"], error=item["error"])
                continue
            views = item["video"]
            probs = self.probabilities(views)
            yield Prediction(item["path"], self.top(probs), len(views), probs=probs)

    def predict_windows(
        self, path: str | Path, *, stride: float | None = None, batch: int = 4
    ) -> Prediction:
        """Slide the clip over the whole of a long video (see ``inference.windows``)."""
        return predict_windows(self, path, stride=stride, batch=batch)


def load_predictor(
    checkpoint: str | Path,
    *,
    labels: str | None = None,
    clips: int | None = None,
    crops: int | None = None,
    sampling_rate: int | None = None,
    device: str | None = None,
    precision: str = "fp32",
    topk: int = 5,
    compile: bool = False,
) -> Predictor:
    """The predictor ``timesformer predict`` and ``timesformer serve`` run, from their options.

    Args:
        checkpoint: anything ``load_checkpoint`` reads (a file, a folder, a Hub id,
            reference:NAME).
        labels: class names, a shipped set or a file (``load_labels``); None: the checkpoint's.
        clips, crops, sampling_rate: the test protocol's overrides (``clip_config``).
        device: "cpu", "cuda", ... (None: cuda when there is one).
        precision, topk, compile: as ``Predictor`` takes them.

    The model it loads is dropped once the predictor has its own copy (bf16: half the size);
    the copy, ``predictor.model``, keeps the checkpoint's ``config`` and ``preprocess``.
    Raises ``ConfigError`` when ``labels`` does not have the model's number of classes.
    """
    from timesformer.checkpoints import load_checkpoint
    from timesformer.inference.labels import load_labels
    from timesformer.runtime import pick_device

    names = load_labels(labels) if labels else None
    device = str(pick_device(device or "auto", option="--device"))
    model = load_checkpoint(checkpoint)
    if names is not None and len(names) != model.config.num_classes:
        raise ConfigError(
            f"{labels}: {len(names)} class names for a model of {model.config.num_classes} classes"
        )
    return Predictor(
        model,
        clip=clip_config(model, clips=clips, crops=crops, sampling_rate=sampling_rate),
        labels=names,
        device=device,
        precision=precision,
        topk=topk,
        compile=compile,
    )
