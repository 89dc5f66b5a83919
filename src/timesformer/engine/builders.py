"""From a ``TrainConfig`` to data sets, loaders and a model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from timesformer.checkpoints import load_checkpoint
from timesformer.data import ClipConfig, VideoClipDataset, collate_clips, worker_init_fn
from timesformer.engine.config import TrainConfig
from timesformer.model import TimeSformer
from timesformer.variants import create_model

log = logging.getLogger(__name__)


def clip_config(cfg: TrainConfig) -> ClipConfig:
    d = cfg.data
    return ClipConfig(
        num_frames=d.num_frames,
        sampling_rate=d.sampling_rate,
        target_fps=d.target_fps,
        sampling=d.sampling,
        crop_size=d.crop_size,
        train_scale=(d.train_scale[0], d.train_scale[1]),
        flip=d.flip,
        num_clips=d.test_clips,
        num_crops=d.test_crops,
    )


def data_fields(clip: ClipConfig) -> dict[str, Any]:
    """The ``data`` section fields that ``clip_config`` turns into ``clip`` (its inverse)."""
    return {
        "num_frames": clip.num_frames,
        "sampling_rate": clip.sampling_rate,
        "target_fps": clip.target_fps,
        "sampling": clip.sampling,
        "crop_size": clip.crop_size,
        "train_scale": list(clip.train_scale),
        "flip": clip.flip,
        "test_clips": clip.num_clips,
        "test_crops": clip.num_crops,
    }


def build_dataset(
    cfg: TrainConfig, split: str, mode: str, class_names: Sequence[str] | None = None
) -> VideoClipDataset:
    """``split`` is "train" or "val"; ``mode`` is "train", "val" or "test".

    ``class_names`` (the training split's, or a checkpoint's) fixes the label order when the
    config names no class list (``data.classes``): a val split then gives each class the index
    the model was trained with even when it lacks a class folder or label, instead of counting
    its own. (The SSv2 format's label map fixes the order itself.)"""
    d = cfg.data
    root = Path(d.root)
    source = d.train if split == "train" else d.val
    kwargs: dict[str, Any] = {"mode": mode, "config": clip_config(cfg)}
    classes = d.classes if d.classes is not None else class_names
    ext = d.video_ext if d.video_ext.startswith(".") else f".{d.video_ext}"
    if d.format == "folder":
        dataset = VideoClipDataset.from_folder(root / source, classes=classes, **kwargs)
    elif d.format == "csv":
        dataset = VideoClipDataset.from_csv(root / source, root, classes=classes, **kwargs)
    else:
        dataset = VideoClipDataset.from_ssv2(
            root / source, root, root / (d.classes or ""), ext=ext, **kwargs
        )
    dataset.seed = cfg.run.seed
    dataset.cache_decoded = cfg.data.cache_decoded
    dataset.cache_limit_mb = cfg.data.cache_limit_mb
    return dataset


class EpochKeyed(Sampler):
    """Yields (epoch, index) so that each sample's random augmentation depends only on the run's
    seed, the epoch and the index: the same in one process or many, with persistent workers, and
    after a resume."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def train_loader(cfg: TrainConfig, dataset: VideoClipDataset, rank: int, world: int) -> DataLoader:
    # The same shuffled order for one process or many: DistributedSampler with world 1 is a
    # plain seeded shuffle, and with world N hands rank r every N-th sample of that order.
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.run.seed, drop_last=True
    )
    workers = cfg.data.workers
    return DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        sampler=EpochKeyed(sampler),
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        worker_init_fn=worker_init_fn,
        persistent_workers=workers > 0,
    )


def build_model(
    cfg: TrainConfig, num_classes: int, class_names: Sequence[str] | None = None
) -> TimeSformer:
    """A fresh model, or one initialised from ``model.init`` (any checkpoint load_checkpoint
    reads, at any frame count or resolution: embeddings are resized, the head replaced).

    When the checkpoint names the same classes as ``class_names`` (the data's) in another
    order, the head's rows are put in the data's order: labels are indices, so a kept head
    would otherwise start with every class's logit on another class."""
    m = cfg.model
    arch = {
        k: getattr(m, k)
        for k in ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "drop_path_rate")
        if getattr(m, k) is not None
    }
    fields = {
        **arch,
        "attention": m.attention,
        "num_classes": m.num_classes or num_classes,
        "num_frames": cfg.data.num_frames,
        "img_size": cfg.data.crop_size,
        "time_embed_std": m.time_embed_std,
        "pos_embed_std": m.pos_embed_std,
        "pos_embed": m.pos_embed,
        "extra_step_init": m.extra_step_init,
        "time_embed_init": m.time_embed_init,
    }
    # The same fields build a fresh model or override those of the checkpoint it starts from.
    model = load_checkpoint(m.init, **fields) if m.init else create_model(m.name, **fields)
    loaded = getattr(model, "class_names", None) if m.init else None
    if class_names and loaded and list(loaded) != list(class_names):
        if sorted(loaded) == sorted(class_names):
            order = [list(loaded).index(name) for name in class_names]
            with torch.no_grad():
                model.head.weight.copy_(model.head.weight[order])
                model.head.bias.copy_(model.head.bias[order])
            log.info("model.init: the head's rows reordered to the data's class order")
        else:
            log.warning(
                "model.init: %s names other classes than the data; its head is kept as a start",
                m.init,
            )
    model.set_grad_checkpointing(m.grad_checkpointing)
    return model
