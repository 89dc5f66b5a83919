"""The Hugging Face ``transformers`` Timesformer layout: config conversion and export.

``transformers`` is not needed here: the folder is written and read as plain JSON plus
safetensors, and the tests check that ``TimesformerForVideoClassification`` loads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from timesformer.checkpoints.io import write_safetensors, write_text
from timesformer.checkpoints.keys import to_hf
from timesformer.errors import CheckpointError

# Our scheme name <-> transformers' ``attention_type``.
HF_ATTENTION = {"divided": "divided_space_time", "joint": "joint_space_time", "space": "space_only"}
FROM_HF_ATTENTION = {v: k for k, v in HF_ATTENTION.items()}


def config_from_hf(hf: dict[str, Any], source: Path) -> tuple[dict[str, Any], list[str] | None]:
    """transformers' config.json -> (ModelConfig fields, class names or None)."""
    attention = hf.get("attention_type", "divided_space_time")
    if attention not in FROM_HF_ATTENTION:
        raise CheckpointError(f"{source}: unknown attention_type {attention!r} in config.json")
    hidden = int(hf.get("hidden_size", 768))
    fields: dict[str, Any] = {
        "attention": FROM_HF_ATTENTION[attention],
        "img_size": int(hf.get("image_size", 224)),
        "patch_size": int(hf.get("patch_size", 16)),
        "in_chans": int(hf.get("num_channels", 3)),
        "num_frames": int(hf.get("num_frames", 8)),
        "embed_dim": hidden,
        "depth": int(hf.get("num_hidden_layers", 12)),
        "num_heads": int(hf.get("num_attention_heads", 12)),
        "mlp_ratio": int(hf.get("intermediate_size", 4 * hidden)) / hidden,
        "layer_norm_eps": float(hf.get("layer_norm_eps", 1e-6)),
        "qkv_bias": bool(hf.get("qkv_bias", True)),
        "drop_path_rate": float(hf.get("drop_path_rate", 0.0)),
    }
    names = None
    id2label = hf.get("id2label")
    if isinstance(id2label, dict) and id2label:
        ordered = [id2label[k] for k in sorted(id2label, key=int)]
        # transformers fills in LABEL_0, LABEL_1, ... when a model has no names.
        if not all(name == f"LABEL_{i}" for i, name in enumerate(ordered)):
            names = ordered
    return fields, names


def export_hf(model: nn.Module, folder: str | Path, class_names: list[str] | None = None) -> Path:
    """Write ``model`` as a Hugging Face folder (config.json + model.safetensors).

    ``transformers.TimesformerForVideoClassification.from_pretrained(folder)`` then gives the same
    logits at the model's configured frame count and size (transformers cannot run others).
    Only the schemes transformers implements the same way (divided, joint) can be exported:
    its space-only mode returns per-frame logits instead of averaging over frames.
    """
    from timesformer.checkpoints.save import unwrap

    model = unwrap(model)
    cfg = model.config
    if cfg.attention not in ("divided", "joint"):
        raise CheckpointError(
            f"cannot export attention {cfg.attention!r} to the Hugging Face layout: transformers "
            "implements divided and joint space-time attention only (its space_only mode does not "
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
        "attention_type": HF_ATTENTION[cfg.attention],
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
    state = to_hf(model.state_dict())
    write_safetensors(folder / "model.safetensors", state, {"format": "pt"})
    write_text(folder / "config.json", json.dumps(hf_config, indent=2) + "\n")
    return folder
