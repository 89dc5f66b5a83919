"""DataLoader setup for video clips, and the per-epoch count of files that failed to decode.

Decoding dominates the cost of training on video, so the loader runs workers in parallel
(each decoding with one FFmpeg thread), keeps them alive across epochs (their index caches and
known-bad lists survive), and pins memory when a GPU will take the batches.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torch.utils.data._utils.collate import default_collate

__all__ = ["DecodeFailures", "collate_clips", "make_loader", "set_epoch", "worker_init_fn"]

log = logging.getLogger("timesformer.data")


def collate_clips(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch dataset items: ``video`` (B, 3, T, H, W) or (B, V, 3, T, H, W), ``label`` (B,),
    ``index`` (B,), ``path`` list of B str, ``failed`` one flat list of str for the batch."""
    batch = default_collate(
        [{k: v for k, v in s.items() if k not in ("path", "failed")} for s in samples]
    )
    batch["path"] = [s["path"] for s in samples]
    batch["failed"] = [p for s in samples for p in s.get("failed", ())]
    return batch


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy's and Python's global generators from the worker's torch seed.

    DataLoader already gives every worker its own torch seed (base_seed + worker_id, a new base
    each epoch); this passes it on to code that draws from numpy or ``random`` directly.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int = 0,
    shuffle: bool | None = None,
    distributed: bool = False,
    *,
    drop_last: bool | None = None,
    seed: int = 0,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = 2,
    timeout: float = 0,
) -> DataLoader:
    """A DataLoader for a ``VideoClipDataset`` (or any dataset of such dicts).

    Args:
        shuffle, drop_last: default to True in training mode (``dataset.mode == "train"``).
        distributed: shard with ``DistributedSampler`` (call ``set_epoch(loader, epoch)`` at the
            start of every epoch so that shards reshuffle).
        seed: seeds the shuffling and the workers' random clips, so a run can be repeated.
        pin_memory: default: when CUDA is available.
        timeout: seconds to wait for a batch from the workers before raising (0: forever).
    """
    training = getattr(dataset, "mode", "train") == "train"
    shuffle = training if shuffle is None else shuffle
    drop_last = training if drop_last is None else drop_last
    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=worker_init_fn,
        generator=generator,
        timeout=timeout if workers > 0 else 0,
        **extra,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell a distributed sampler which epoch starts (no-op otherwise)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


class DecodeFailures:
    """Counts, over an epoch, the files that failed to decode (their samples were replaced).

    Feed it every batch (``update(batch)``); ``end_epoch(epoch)`` logs a one-line summary, returns
    it (None when nothing failed) and starts the next epoch's count. A file counts once each time
    the sampler asks for it, and once more for each worker that first finds it bad while looking
    for a replacement.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self.counts: Counter[str] = Counter()  # this epoch: path -> failures
        self.total: Counter[str] = Counter()  # all epochs

    def update(self, batch: Mapping[str, Any] | Iterable[str]) -> None:
        paths = batch.get("failed", ()) if isinstance(batch, Mapping) else batch
        self.counts.update(paths)
        self.total.update(paths)

    @property
    def failed_samples(self) -> int:
        """Failed decodes this epoch (read it before ``end_epoch``, which starts a new count)."""
        return sum(self.counts.values())

    def summary(self) -> str | None:
        if not self.counts:
            return None
        worst = ", ".join(f"{p} ({n})" for p, n in self.counts.most_common(3))
        more = len(self.counts) - 3
        tail = f" and {more} more" if more > 0 else ""
        files = "file" if len(self.counts) == 1 else "files"
        return (
            f"{len(self.counts)} {files} failed to decode ({self.failed_samples} times; other "
            f"videos were used instead): {worst}{tail}"
        )

    def end_epoch(self, epoch: int | None = None) -> str | None:
        text = self.summary()
        if text is not None:
            prefix = f"epoch {epoch}: " if epoch is not None else ""
            self.log.warning("%s%s", prefix, text)
        self.counts = Counter()
        return text
