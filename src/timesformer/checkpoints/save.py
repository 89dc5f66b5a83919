"""Writing checkpoints: the project's own format and the reference layout."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from torch import nn

from timesformer.checkpoints.io import write_atomic, write_safetensors
from timesformer.checkpoints.keys import REFERENCE_PREFIX
from timesformer.errors import CheckpointError
from timesformer.schemes import SCHEMES

FORMAT_NAME = "timesformer"
# This project's section in the YAML config of a reference-layout file it writes.
REFERENCE_SECTION = "timesformer"
FORMAT_VERSION = "1"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def preprocess_metadata(model: nn.Module) -> dict[str, str]:
    """The header entry for ``model.preprocess`` (how its clips were made), if it has one."""
    preprocess = getattr(unwrap(model), "preprocess", None)
    return {"preprocess": json.dumps(preprocess)} if preprocess else {}


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    class_names: list[str] | None = None,
    format: str = FORMAT_NAME,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save a model's weights and config.

    Args:
        model: a ``TimeSformer`` (DDP and compiled wrappers are unwrapped).
        path: the file to write (atomically: a crash never leaves half a file).
        class_names: stored with the weights (default: ``model.class_names``).
        format: ``"timesformer"`` (safetensors + config, the default) or ``"reference"`` (the
            authors' ``.pyth`` layout, loadable by their code; space, joint and divided only).
        metadata: extra string entries stored in the safetensors header.
    """
    model = unwrap(model)
    path = Path(path)
    cfg = model.config
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    if names is not None and len(names) != cfg.num_classes:
        raise CheckpointError(f"{len(names)} class names given for {cfg.num_classes} classes")
    state = model.state_dict()
    if format == FORMAT_NAME:
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": json.dumps(cfg.to_dict()),
            **({"class_names": json.dumps(list(names))} if names is not None else {}),
            **preprocess_metadata(model),
            **(metadata or {}),
        }
        write_safetensors(path, state, meta)
    elif format == "reference":
        reference_name = SCHEMES[cfg.attention].reference_name
        if reference_name is None:
            raise CheckpointError(
                f"the reference code has no {cfg.attention!r} attention; save it in the "
                "timesformer format instead"
            )
        ref_cfg = {
            "TIMESFORMER": {"ATTENTION_TYPE": reference_name},
            "DATA": {
                "NUM_FRAMES": cfg.num_frames,
                "TRAIN_CROP_SIZE": cfg.img_size,
                "TEST_CROP_SIZE": cfg.img_size,
            },
            "MODEL": {
                "NUM_CLASSES": cfg.num_classes,
                "ARCH": "vit",
                "MODEL_NAME": "vit_base_patch16_224",
            },
            # What the reference layout cannot say (head count, norm epsilon, class names, clip
            # settings): the authors' code reads only model_state, and loading here restores it.
            REFERENCE_SECTION: {
                "config": cfg.to_dict(),
                "class_names": list(names) if names is not None else None,
                "preprocess": getattr(model, "preprocess", None),
            },
        }
        blob = {
            "epoch": 0,
            "model_state": {
                REFERENCE_PREFIX + k: v.detach().cpu().clone() for k, v in state.items()
            },
            "optimizer_state": {},
            "cfg": yaml.safe_dump(ref_cfg),
        }
        write_atomic(path, lambda tmp: torch.save(blob, tmp))
    else:
        raise CheckpointError(f"unknown checkpoint format {format!r} (timesformer or reference)")
    return path
