"""The learning-rate schedules and optimizer parameter groups."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny
from timesformer.engine.config import OptimSection
from timesformer.engine.optim import LRSchedule, build_optimizer


def test_reference_step_schedule():
    s = LRSchedule(OptimSection(), steps_per_epoch=10)
    assert s.lr_at(0) == pytest.approx(0.005)
    assert s.lr_at(109) == pytest.approx(0.005)  # last step of epoch 11 (1-based)
    assert s.lr_at(110) == pytest.approx(0.0005)  # epoch index 11
    assert s.lr_at(140) == pytest.approx(0.00005)


def test_warmup_then_cosine():
    cfg = OptimSection(
        name="adamw", lr=1e-3, schedule="cosine", warmup_epochs=1, epochs=5, min_lr=1e-5
    )
    s = LRSchedule(cfg, steps_per_epoch=4)
    warm = [s.lr_at(i) for i in range(4)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(1e-3)
    assert s.lr_at(4) == pytest.approx(1e-3)
    assert s.lr_at(20) == pytest.approx(1e-5)
    assert 1e-5 < s.lr_at(12) < 1e-3


def test_adamw_spares_norms_biases_and_embeddings_from_decay():
    model = tiny()
    opt = build_optimizer(model, OptimSection(name="adamw", weight_decay=0.05))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) not in decayed}
    assert {"pos_embed", "time_embed", "cls_token", "norm.weight", "head.bias"} <= names
    assert "blocks.0.attn.qkv.weight" not in names


def test_sgd_is_nesterov_with_decay_everywhere():
    opt = build_optimizer(tiny(), OptimSection())
    assert isinstance(opt, torch.optim.SGD)
    g = opt.param_groups[0]
    assert g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 1e-4
