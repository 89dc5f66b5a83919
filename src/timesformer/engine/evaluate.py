"""Evaluation with the reference multi-view protocol (K temporal clips x 3 spatial crops).

Each video gives V = K x crops views; the views' logits are summed (the reference) or their
softmax averaged.  Clip-level accuracy scores every view on its own, video-level accuracy the
combined prediction.  A video that fails to decode is listed in the result, not fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from timesformer.data import VideoClipDataset
from timesformer.engine.distributed import DistInfo
from timesformer.engine.metrics import topk_correct
from timesformer.errors import ConfigError
from timesformer.layers.linear import INT8_ATTR, quantize_int8

# Re-exported: these lived here before ``timesformer.runtime``, and callers import them from here.
from timesformer.runtime import (  # noqa: F401
    EvalItems,
    autocast_context,
    inference_copy,
    inference_model,
    use_int8,
)


def _as_views(video: torch.Tensor) -> torch.Tensor:
    return video.unsqueeze(0) if video.ndim == 4 else video


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


@dataclass
class EvalResult:
    num_videos: int = 0
    num_views: int = 0
    clip_top1: float = 0.0
    video_top1: float = 0.0
    video_top5: float = 0.0
    loss: float = 0.0
    per_class: dict[str, float] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    # Per labelled video: the combined view scores (N, C) and labels (N,); not written to JSON.
    scores: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("scores", "labels")}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: VideoClipDataset,
    *,
    batch_size: int = 4,
    workers: int = 0,
    device: torch.device | None = None,
    precision: str = "fp32",
    reduce: str = "sum",
    info: DistInfo | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> EvalResult:
    """Score ``dataset`` (``mode="test"``: each item is (V, 3, T, H, W)) with ``model``.

    Under DDP every process scores its share of the videos and the results are gathered.
    """
    info = info or DistInfo()
    device = device or next(model.parameters()).device
    names = dataset.class_names
    c = len(names)
    outputs = getattr(getattr(model, "config", None), "num_classes", c)
    if outputs != c:
        # Checked before any video is read: the scores could not be matched to the class list.
        raise ConfigError(
            f"the model gives {outputs} class scores, the data has {c} classes; evaluate it on "
            "data with its classes"
        )
    mine = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(
        EvalItems(dataset, mine), batch_size=batch_size, num_workers=workers, collate_fn=_collate
    )
    was_training = model.training
    was_int8 = getattr(model, INT8_ATTR, False)
    if precision == "int8":
        use_int8(model, device)
    model.eval()
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    bar = tqdm(
        loader, desc=desc, unit="batch", disable=not (progress and info.is_main), leave=False
    )
    for items in bar:
        good = [it for it in items if it["video"] is not None]
        failed += [
            {"path": it["path"], "error": it["error"]} for it in items if it["video"] is None
        ]
        if not good:
            continue
        # test mode gives (V, 3, T, H, W) per video, val mode one clip (3, T, H, W)
        views = torch.stack([_as_views(it["video"]) for it in good])  # (B, V, 3, T, H, W)
        b, v = views.shape[:2]
        with autocast_context(device, precision):
            logits = model(views.flatten(0, 1).to(device, non_blocking=True))
        logits = logits.float().reshape(b, v, -1).cpu()
        for it, lg in zip(good, logits, strict=True):
            rows.append(
                {"index": it["index"], "path": it["path"], "label": it["label"], "logits": lg}
            )
    model.train(was_training)
    if precision == "int8" and not was_int8:
        quantize_int8(model, False)

    if info.enabled:
        import torch.distributed as dist

        gathered: list[Any] = [None] * info.world_size
        dist.all_gather_object(gathered, (rows, failed))
        rows = [r for part, _ in gathered for r in part]
        failed = [f for _, part in gathered for f in part]
    rows.sort(key=lambda r: r["index"])

    result = EvalResult(failed=failed)
    labelled = [r for r in rows if r["label"] >= 0]
    result.num_videos = len(rows)
    if rows:
        result.num_views = rows[0]["logits"].shape[0]
    confusion = torch.zeros(c, c, dtype=torch.long)
    if labelled:
        logits = torch.stack([r["logits"] for r in labelled])  # (N, V, C)
        labels = torch.tensor([r["label"] for r in labelled])
        n, v = logits.shape[:2]
        clip_hits = (logits.argmax(-1) == labels[:, None]).float()
        result.clip_top1 = float(clip_hits.mean())
        combined = logits.sum(1) if reduce == "sum" else logits.softmax(-1).mean(1)
        hits = topk_correct(combined, labels, (1, 5))
        result.video_top1 = hits[1] / n
        result.video_top5 = hits[5] / n
        result.loss = float(torch.nn.functional.cross_entropy(logits.mean(1), labels))
        result.scores, result.labels = combined, labels
        pred = combined.argmax(-1)
        confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
        for k, name in enumerate(names):
            total = int(confusion[k].sum())
            if total:
                result.per_class[name] = int(confusion[k, k]) / total
    result.confusion = confusion.tolist()
    for r in rows:
        combined = r["logits"].sum(0) if reduce == "sum" else r["logits"].softmax(-1).mean(0)
        probs = combined.softmax(-1) if reduce == "sum" else combined
        top = probs.topk(min(5, c))
        result.predictions.append(
            {
                "path": r["path"],
                "label": names[r["label"]] if r["label"] >= 0 else None,
                "top5": [
                    [names[int(i)], round(float(p), 4)]
                    for p, i in zip(top.values, top.indices, strict=True)
                ],
            }
        )
    return result
