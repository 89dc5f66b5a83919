"""Helpers shared by the tests: tiny models and random clips."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

import timesformer
from timesformer.layers.backend import INT8_ROUTES

SCHEMES = timesformer.ATTENTION_SCHEMES
# Whether this torch build has oneDNN int8 kernels for ``quantize_int8``.
HAS_INT8 = any(INT8_ROUTES.values())


def tiny(attention: str = "divided", **kw) -> timesformer.TimeSformer:
    """A 2-block width-32 model for 4 frames of 16x16 (4x4 patches of 4 px), in eval mode."""
    kw.setdefault("num_classes", 5)
    return timesformer.create_model("timesformer_tiny", attention=attention, **kw).eval()


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Overwrite every parameter with noise (norm scales around 1), so that the parts that start
    at zero (time embedding, extra-step linears) take part in what a test checks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * std
            is_scale = name.endswith("weight") and p.ndim == 1
            p.copy_(noise + 1.0 if is_scale else noise)
    return model


def clip(b: int = 2, t: int = 4, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    """A random (B, 3, T, H, W) clip."""
    return torch.randn(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed))


def bf16_step(model, fn, x, label) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss and every gradient of one training step of ``model`` run as ``fn`` under bf16
    autocast on ``x``'s device; the gradients are then cleared."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(fn(x).float(), label)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def tiny_overrides(root: Path, out: Path, **extra) -> list[str]:
    """key=value overrides for a tiny CPU run on ``synth_root``."""
    values = {
        "model.name": "timesformer_tiny",
        "model.attention": "divided",
        "model.time_embed_std": 1.0,
        "model.pos_embed_std": 1.0,
        "model.drop_path_rate": 0.0,
        "data.format": "folder",
        "data.root": str(root),
        "data.num_frames": 4,
        "data.sampling_rate": 2,
        "data.crop_size": 16,
        "data.train_scale": "[16, 18]",
        "data.flip": "false",
        "data.batch_size": 8,
        "data.workers": 0,
        "optim.name": "adamw",
        "optim.lr": 0.003,
        "optim.weight_decay": 0.0,
        "optim.schedule": "cosine",
        "optim.epochs": 2,
        "optim.global_batch": 8,
        "run.out": str(out),
        "run.progress": "false",
        "run.tensorboard": "false",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def terminal_lines(monkeypatch) -> Callable[[], list[str]]:
    """stdout and stderr into one buffer, as a terminal shows them; returns a function that gives
    the screen's lines so far (split at carriage returns too, as a progress bar redraws)."""
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    return lambda: [ln for ln in re.split(r"[\r\n]", screen.getvalue()) if ln.strip()]
