"""The Hugging Face ``transformers`` Timesformer layout: config conversion and export.

``transformers`` is not needed here: the folder is written and read as plain JSON plus
safetensors, and the tests check that ``TimesformerForVideoClassification`` and
``AutoImageProcessor`` load it.

How frames are prepared travels two ways. ``preprocessor_config.json`` is transformers' own
(``VideoMAEImageProcessor``, the processor its TimeSformer uses): short side, centre crop, mean
and std. It cannot say how frames are sampled, so the full clip settings this project stores
with a trained model (``model.preprocess``) also go into ``config.json`` under ``CLIP_KEY``,
which transformers keeps as an unused attribute; loading the folder here restores them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from timesformer.checkpoints.io import write_safetensors, write_text
from timesformer.checkpoints.keys import to_hf
from timesformer.data.transforms import MEAN, STD
from timesformer.errors import CheckpointError
from timesformer.schemes import SCHEMES

PREPROCESSOR_FILE = "preprocessor_config.json"
CLIP_KEY = "timesformer_clip"  # this project's clip settings (ClipConfig fields) in config.json


def config_from_hf(hf: dict[str, Any], source: Path) -> tuple[dict[str, Any], list[str] | None]:
    """transformers' config.json -> (ModelConfig fields, class names or None). A value of the
    wrong type raises ``CheckpointError`` naming the file and the key."""
    where = source / "config.json"

    def number(key: str, default: float, kind: type = int) -> Any:
        value = hf.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or (kind is int and value != int(value))
        ):
            what = "an integer" if kind is int else "a number"
            raise CheckpointError(f"{where}: {key} must be {what}, got {value!r}")
        return kind(value)

    attention = hf.get("attention_type", "divided_space_time")
    from_hf = {c.hf_name: n for n, c in SCHEMES.items() if c.hf_name}
    if attention not in from_hf:
        raise CheckpointError(f"{source}: unknown attention_type {attention!r} in config.json")
    hidden = number("hidden_size", 768)
    if hidden < 1:
        raise CheckpointError(f"{where}: hidden_size must be at least 1, got {hidden}")
    fields: dict[str, Any] = {
        "attention": from_hf[attention],
        "img_size": number("image_size", 224),
        "patch_size": number("patch_size", 16),
        "in_chans": number("num_channels", 3),
        "num_frames": number("num_frames", 8),
        "embed_dim": hidden,
        "depth": number("num_hidden_layers", 12),
        "num_heads": number("num_attention_heads", 12),
        "mlp_ratio": number("intermediate_size", 4 * hidden) / hidden,
        "layer_norm_eps": number("layer_norm_eps", 1e-6, float),
        "qkv_bias": bool(hf.get("qkv_bias", True)),
        "drop_path_rate": number("drop_path_rate", 0.0, float),
    }
    names = None
    id2label = hf.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            ordered = [str(id2label[k]) for k in sorted(id2label, key=int)]
        except ValueError:
            raise CheckpointError(
                f"{where}: id2label keys must be class indices, got {sorted(id2label)[:3]}"
            ) from None
        # transformers fills in LABEL_0, LABEL_1, ... when a model has no names.
        if not all(name == f"LABEL_{i}" for i, name in enumerate(ordered)):
            names = ordered
    return fields, names


def export_hf(model: nn.Module, folder: str | Path, class_names: list[str] | None = None) -> Path:
    """Write ``model`` as a Hugging Face folder (config.json, model.safetensors and
    preprocessor_config.json).

    ``transformers.TimesformerForVideoClassification.from_pretrained(folder)`` then gives the same
    logits at the model's configured frame count and size (transformers cannot run others).
    Only the schemes transformers implements the same way (``hf_export``: divided, joint) can
    be exported: its space-only mode returns per-frame logits instead of averaging over frames.
    """
    from timesformer.checkpoints.save import unwrap

    model = unwrap(model)
    cfg = model.config
    scheme = SCHEMES[cfg.attention]
    if not scheme.hf_export:
        exportable = " and ".join(sorted(n for n, c in SCHEMES.items() if c.hf_export))
        raise CheckpointError(
            f"cannot export attention {cfg.attention!r} to the Hugging Face layout: transformers "
            f"implements {exportable} space-time attention only (its space_only mode does not "
            "average over frames)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = (
        class_names
        or getattr(model, "class_names", None)
        or [f"LABEL_{i}" for i in range(cfg.num_classes)]
    )
    if len(names) != cfg.num_classes:
        raise CheckpointError(f"{len(names)} class names given for {cfg.num_classes} classes")
    hf_config = {
        "architectures": ["TimesformerForVideoClassification"],
        "model_type": "timesformer",
        "attention_type": scheme.hf_name,
        "image_size": cfg.img_size,
        "patch_size": cfg.patch_size,
        "num_channels": cfg.in_chans,
        "num_frames": cfg.num_frames,
        "hidden_size": cfg.embed_dim,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": int(cfg.embed_dim * cfg.mlp_ratio),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": cfg.layer_norm_eps,
        "qkv_bias": cfg.qkv_bias,
        # drop_path_rate is left out: inference ignores it and transformers 5 types it as int.
        "id2label": {str(i): n for i, n in enumerate(names)},
        "label2id": {n: i for i, n in enumerate(names)},
        "torch_dtype": "float32",
    }
    preprocess = getattr(model, "preprocess", None)
    if preprocess:
        hf_config[CLIP_KEY] = preprocess
    state = dict(model.state_dict())
    # transformers always adds both embeddings: zeros are a model trained without one.
    d = cfg.embed_dim
    state.setdefault("pos_embed", torch.zeros(1, cfg.grid_size**2 + 1, d))
    state.setdefault("time_embed", torch.zeros(1, cfg.num_frames, d))
    state = to_hf(state)
    write_safetensors(folder / "model.safetensors", state, {"format": "pt"})
    write_text(folder / PREPROCESSOR_FILE, json.dumps(processor_config(model), indent=2) + "\n")
    write_text(folder / "config.json", json.dumps(hf_config, indent=2) + "\n")
    return folder


def processor_config(model: nn.Module) -> dict[str, Any]:
    """transformers' ``VideoMAEImageProcessor`` settings that prepare frames as this project's
    test transform does: the short side to ``test_scale`` (default: the crop size), the centre
    crop, values scaled to [0, 1], then the mean and std. Taken from ``model.preprocess`` when
    the model has one, else the model's image size and the default mean and std."""
    pre = getattr(model, "preprocess", None) or {}
    crop = int(pre.get("crop_size") or model.config.img_size)
    return {
        "image_processor_type": "VideoMAEImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": int(pre.get("test_scale") or crop)},
        "resample": 2,  # bilinear, as the test transform resizes
        "do_center_crop": True,
        "crop_size": {"height": crop, "width": crop},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [float(v) for v in pre.get("mean", MEAN)],
        "image_std": [float(v) for v in pre.get("std", STD)],
    }


def preprocess_from_hf(
    hf: dict[str, Any], processor: dict[str, Any] | None, source: Path
) -> dict[str, Any] | None:
    """The clip settings a Hugging Face folder carries (``ClipConfig`` fields), or None.

    This project's own (``CLIP_KEY`` in config.json, written by ``export_hf``) are complete and
    win. Otherwise transformers' ``preprocessor_config.json`` gives the mean, std, crop size and
    short side; frame sampling then stays the default for the model's frame count."""
    ours = hf.get(CLIP_KEY)
    if ours is not None:
        if not isinstance(ours, dict):
            raise CheckpointError(f"{source / 'config.json'}: {CLIP_KEY} is not a mapping")
        return dict(ours)
    if not isinstance(processor, dict):
        return None
    # Values are taken as they are: the caller checks them as clip settings (ClipConfig).
    out: dict[str, Any] = {}
    for ours_key, hf_key in (("mean", "image_mean"), ("std", "image_std")):
        value = processor.get(hf_key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value] * 3  # transformers accepts one number for every channel
        if value is not None:
            out[ours_key] = value
    crop = processor.get("crop_size")
    if isinstance(crop, dict):  # {"height": h, "width": w}; only square crops map to ours
        crop = crop.get("height") if crop.get("height") == crop.get("width") else None
    if processor.get("do_center_crop", True) and isinstance(crop, int) and crop > 0:
        out["crop_size"] = crop
    size = processor.get("size")
    short = size.get("shortest_edge") if isinstance(size, dict) else None
    # A fixed (height, width) resize has no short-side equivalent here; it is left out. A short
    # side equal to the crop is the default (test_scale None).
    if isinstance(short, int) and short > out.get("crop_size", short):
        out["test_scale"] = short
    return out or None
