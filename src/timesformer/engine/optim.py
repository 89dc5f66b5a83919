"""Optimizers and learning-rate schedules of the reference recipe and the AdamW option."""

from __future__ import annotations

import math

import torch
from torch import nn

from timesformer.engine.config import OptimSection


def no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norm scales and the learned embeddings/tokens: no weight decay under AdamW."""
    return param.ndim <= 1 or name.endswith(("pos_embed", "time_embed", "cls_token"))


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """SGD (the reference: weight decay on every parameter) or AdamW (none on 1-D parameters)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(
            [p for _, p in params],
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    decay = [p for n, p in params if not no_decay(n, p)]
    rest = [p for n, p in params if no_decay(n, p)]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=tuple(cfg.betas),
    )


class LRSchedule:
    """Learning rate as a pure function of the optimizer step, so resuming needs only the step.

    ``steps``: multiplied by ``lr_gamma`` at each epoch of ``lr_steps`` (the reference: 0.005,
    x0.1 at 11 and 14 of 15).  ``cosine``: from ``lr`` down to ``min_lr``.  Both after a linear
    warm-up of ``warmup_epochs``.
    """

    def __init__(self, cfg: OptimSection, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.steps_per_epoch = max(1, steps_per_epoch)

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        epoch = step / self.steps_per_epoch
        if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
            return cfg.lr * (epoch + 1 / self.steps_per_epoch) / cfg.warmup_epochs
        if cfg.schedule == "steps":
            return cfg.lr * cfg.lr_gamma ** sum(epoch >= s for s in cfg.lr_steps)
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
        progress = min(1.0, (epoch - cfg.warmup_epochs) / span)
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
