"""Parameter names of the checkpoint families and the conversions between them.

The project's own names are the reference's (``blocks.i.temporal_attn.qkv.weight``) without its
``model.`` prefix.  Hugging Face names (transformers' ``modeling_timesformer``) differ one to
one.
"""

from __future__ import annotations

import math
import re

import torch

from timesformer.schemes import SCHEMES, scheme_names

REFERENCE_PREFIX = "model."

_HF_TOP = {
    "cls_token": "timesformer.embeddings.cls_token",
    "pos_embed": "timesformer.embeddings.position_embeddings",
    "time_embed": "timesformer.embeddings.time_embeddings",
    "patch_embed.proj": "timesformer.embeddings.patch_embeddings.projection",
    "norm": "timesformer.layernorm",
    "head": "classifier",
}
_HF_BLOCK = {
    "norm1": "layernorm_before",
    "attn.qkv": "attention.attention.qkv",
    "attn.proj": "attention.output.dense",
    "temporal_norm1": "temporal_layernorm",
    "temporal_attn.qkv": "temporal_attention.attention.qkv",
    "temporal_attn.proj": "temporal_attention.output.dense",
    "temporal_fc": "temporal_dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_HF_TOP_INV = {v: k for k, v in _HF_TOP.items()}
_HF_BLOCK_INV = {v: k for k, v in _HF_BLOCK.items()}
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
_HF_BLOCK_RE = re.compile(r"^timesformer\.encoder\.layer\.(\d+)\.(.+)$")
_PARAM_NAMES = ("weight", "bias")


def _split(name: str) -> tuple[str, str]:
    """'a.b.weight' -> ('a.b', 'weight'); parameters without a suffix stay whole."""
    module, _, last = name.rpartition(".")
    return (module, last) if last in _PARAM_NAMES else (name, "")


def _join(module: str, param: str) -> str:
    return f"{module}.{param}" if param else module


def _rename(
    name: str, top: dict[str, str], block: dict[str, str], block_re: re.Pattern, block_fmt: str
) -> str | None:
    m = block_re.match(name)
    if m:
        module, param = _split(m.group(2))
        new = block.get(module)
        return None if new is None else _join(block_fmt.format(m.group(1), new), param)
    module, param = _split(name)
    new = top.get(module)
    return None if new is None else _join(new, param)


def to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Project names -> Hugging Face names; raises KeyError naming a key with no HF counterpart."""
    out = {}
    for k, v in state.items():
        new = _rename(k, _HF_TOP, _HF_BLOCK, _BLOCK_RE, "timesformer.encoder.layer.{}.{}")
        if new is None:
            raise KeyError(k)
        out[new] = v
    return out


def from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face names -> project names; unknown names are kept so they get reported."""
    out = {}
    for k, v in state.items():
        new = _rename(k, _HF_TOP_INV, _HF_BLOCK_INV, _HF_BLOCK_RE, "blocks.{}.{}")
        out[new if new is not None else k] = v
    return out


def is_hf(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("timesformer.") for k in state)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that has it (``model.``, ``module.``, ``_orig_mod.``)."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state.items()}


def infer_attention(keys: set[str]) -> str:
    """The scheme a state dict in project names was built with: of the registered schemes whose
    ``checkpoint_keys`` are all in ``keys``, the one with the most, then the one whose time
    embedding matches, then the first in paper order (schemes with the same keys are told apart
    only by a checkpoint that names its scheme)."""
    has_time = "time_embed" in keys
    candidates = [
        SCHEMES[name] for name in scheme_names() if SCHEMES[name].checkpoint_keys() <= keys
    ]
    best = max(candidates, key=lambda c: (len(c.checkpoint_keys()), c.uses_time_embed == has_time))
    return best.name


def infer_arch(state: dict[str, torch.Tensor]) -> dict:
    """Architecture fields that the tensor shapes determine (project names)."""
    arch: dict = {}
    w = state.get("patch_embed.proj.weight")
    if w is not None and w.ndim == 4:
        arch.update(embed_dim=w.shape[0], in_chans=w.shape[1], patch_size=w.shape[-1])
        arch["num_heads"] = max(1, w.shape[0] // 64)  # ViT heads are 64 wide
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK_RE.match(k))}
    if blocks:
        arch["depth"] = max(blocks) + 1
    pos = state.get("pos_embed")
    if pos is not None and "patch_size" in arch:
        side = math.isqrt(pos.shape[1] - 1)
        if side * side == pos.shape[1] - 1:
            arch["img_size"] = side * arch["patch_size"]
    if "time_embed" in state:
        arch["num_frames"] = state["time_embed"].shape[1]
    if "head.weight" in state:
        arch["num_classes"] = state["head.weight"].shape[0]
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if fc1 is not None and "embed_dim" in arch:
        arch["mlp_ratio"] = fc1.shape[0] / arch["embed_dim"]
    if "blocks.0.attn.qkv.weight" in state:
        arch["qkv_bias"] = "blocks.0.attn.qkv.bias" in state
    return arch
