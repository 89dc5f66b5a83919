"""Attention rollout (Abnar & Zuidema, 2020) for every attention scheme of a TimeSformer.

Rollout estimates how much each input patch contributes to the clip's cls token by treating every
attention step as a token-mixing matrix and multiplying the matrices of all steps.  Per step:

1. the step's attention probabilities (G, heads, L, L) are fused over heads (mean, max or min);
2. optionally the smallest ``discard_ratio`` of each row's entries are zeroed (the cls column is
   kept), which sharpens the map;
3. the residual connection around the step is accounted for as ``A' = 0.5 A + 0.5 I``, and the rows
   are renormalised to sum to 1;
4. the G group-level matrices are expanded into one (1 + N*T) x (1 + N*T) token matrix: token
   ``idx[g, i]`` of the clip is position ``i`` of group ``g``, where ``idx`` comes from the scheme's
   own ``group`` applied to the token indices, so every scheme that regroups tokens (divided,
   local-global, axial, and joint, one group of the whole clip) goes through the same code.  In the
   last step of a block the cls token is copied in front of every group and the block averages
   those copies' outputs, so the cls row of the token matrix is the mean of the G copies' rows,
   and its column gathers what every group's copy read.  Patch-only steps leave the cls row as the
   identity.

The rollout is the product ``R = A'_K ... A'_2 A'_1`` of all steps of all blocks in order (rows:
outputs, columns: inputs); the map is the cls row of R over the patches.  Only that row is needed,
so it is computed right to left as a row vector, ``r <- r A'_k`` from the last step back to the
first: O(G L^2) per step, no token matrix is ever built, and memory stays that of one step.

The MLPs and the extra steps' linears (``temporal_fc``) act on each token alone and mix nothing,
so rollout leaves them out, as it leaves out the value vectors: it follows attention weights only.

Space-only attention: each frame is a separate image with its own copy of the cls token and the
clip's cls token is the mean of the frames' cls tokens.  Rollout is therefore defined per frame
(the usual ViT rollout of that frame's cls row) and the clip's map is the frames' maps times 1/T.

A scheme whose block replaces ``forward`` with something other than these layouts cannot be read
this way (its ``rollout_layout`` is None); ``attention_rollout`` refuses it with a ``ConfigError``
saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from timesformer.errors import ConfigError
from timesformer.layers import Attention
from timesformer.schemes import Grid, SchemeBlock
from timesformer.schemes.fast import plain_blocks

__all__ = ["HEAD_FUSIONS", "RolloutResult", "attention_rollout", "explain_clip", "rollout_support"]

HeadFusion = Literal["mean", "max", "min"]
HEAD_FUSIONS: tuple[str, ...] = ("mean", "max", "min")


@dataclass
class RolloutResult:
    """What one rollout produces.

    Attributes:
        relevance: (T, H', W') float32 on the CPU, the cls row of the rollout over the patches,
            normalised to sum to 1 over the whole clip.
        cls_share: the part of the (unnormalised) cls row that stays on the cls token itself, in
            [0, 1]; the patches share the rest.
        logits: (num_classes,) the model's logits for the clip (from the same forward pass).
    """

    relevance: Tensor
    cls_share: float
    logits: Tensor


def rollout_support(model: nn.Module) -> str:
    """How rollout reads ``model``'s scheme: ``"tokens"`` (one token sequence, blocks regroup it)
    or ``"frames"`` (space: one sequence per frame), as the scheme's ``rollout_layout`` says.
    Raises ``ConfigError`` if undefined."""
    scheme = model.scheme
    layout = scheme.rollout_layout()
    if layout is not None:
        return layout
    raise ConfigError(
        f"attention rollout is not defined for the {scheme.name!r} attention scheme: its block "
        "replaces the shared multi-step forward, so how its attention mixes tokens is unknown"
    )


def _step_attentions(block: SchemeBlock) -> list[tuple[str, Attention]]:
    """(step name, attention layer) of every step of ``block`` in the order they run."""
    steps = [(name, attn) for name, _, attn, _ in block.extra_step_modules()]
    return [*steps, ("last", block.attn)]


def _fuse(attn: Tensor, head_fusion: str, discard_ratio: float, keep_first: bool) -> Tensor:
    """(G, heads, L, L) probabilities -> (G, L, L) row-stochastic step matrix with the residual.

    ``keep_first``: column 0 is the cls token, which discarding must never drop.
    """
    if head_fusion == "mean":
        a = attn.mean(dim=1)
    elif head_fusion == "max":
        a = attn.amax(dim=1)
    else:
        a = attn.amin(dim=1)
    a = a.float()
    n_drop = int(a.shape[-1] * discard_ratio)
    if n_drop:
        scores = a.clone()
        if keep_first:
            scores[..., 0] = float("inf")
        low = scores.topk(n_drop, dim=-1, largest=False).indices
        a = a.scatter(-1, low, 0.0)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = 0.5 * a + 0.5 * eye
    return a / a.sum(dim=-1, keepdim=True)


def _group_index(block: SchemeBlock, step: str, grid: Grid, device: torch.device) -> Tensor:
    """(G, L) int64: patch index (0-based, token order) of position i of group g of ``step``,
    obtained by running the scheme's own ``group`` on the patch indices."""
    index = torch.arange(grid.n * grid.t, device=device).reshape(1, -1, 1)
    idx = block.group(step, index, grid)[..., 0]
    counts = torch.bincount(idx.reshape(-1), minlength=grid.n * grid.t)
    if not bool((counts == 1).all()):
        raise ConfigError(
            f"attention rollout is not defined for the {block.name!r} scheme: its {step!r} step "
            "does not put every patch in exactly one group"
        )
    return idx


def _back_through_step(r: Tensor, a: Tensor, idx: Tensor, with_cls: bool) -> Tensor:
    """Row vector over a step's output tokens -> row vector over its input tokens (``r @ A'``).

    Args:
        r: (1 + N*T,) relevance of the step's outputs, cls first.
        a: (G, L', L') the step's fused matrices; L' = L + 1 when ``with_cls`` (cls copy first).
        idx: (G, L) patch index of each group position.
        with_cls: the last step of a block, whose groups carry a cls copy.
    """
    g = idx.shape[0]
    patches = 1 + idx  # token index of each group position
    out = torch.zeros_like(r)
    if with_cls:
        # Output rows of group g: its cls copy (which the block averages: weight r_cls / G) and
        # its patches; input columns: the cls token (every copy is the same input) and patches.
        w = torch.cat((r[0].expand(g, 1) / g, r[patches]), dim=1)  # (G, 1 + L)
        contrib = torch.einsum("gi,gij->gj", w, a)
        out[0] = contrib[:, 0].sum()
        out[patches.reshape(-1)] = contrib[:, 1:].reshape(-1)
    else:
        # Patch-only step: the cls token passes unchanged.
        out[0] = r[0]
        contrib = torch.einsum("gi,gij->gj", r[patches], a)
        out[patches.reshape(-1)] = contrib.reshape(-1)
    return out


def _collect(model: nn.Module, video: Tensor, head_fusion: str, discard_ratio: float):
    """One forward pass that records every step's fused matrix.

    Returns (logits (1, C), grid, {id(attention layer): (G, L', L')}).
    """
    steps = [step for block in model.blocks for step in _step_attentions(block)]
    layers = [attn for _, attn in steps]
    # Only the last step of a block (and every space/joint step) has the cls token in column 0.
    has_cls = {id(attn): name == "last" for name, attn in steps}
    fused: dict[int, Tensor] = {}

    def hook(module: Attention, _inputs: object, _output: object) -> None:
        # Fuse the heads at once so that only (G, L, L) per step is kept, not (G, heads, L, L).
        assert module.last_attention is not None
        keep_first = has_cls[id(module)]
        fused[id(module)] = _fuse(module.last_attention, head_fusion, discard_ratio, keep_first)
        module.last_attention = None

    saved = [(m.keep_attention, m.fused) for m in layers]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    try:
        model.eval()
        for m in layers:
            m.keep_attention = True  # the plain softmax path, which exposes the probabilities
        # The plain blocks call every attention layer as a module, so that the hooks fire.
        with torch.no_grad(), plain_blocks(model):
            tokens, grid = model.forward_tokens(video)
            logits = model.forward_head(model.norm(model.scheme.pool(tokens, grid)))
    finally:
        for h in handles:
            h.remove()
        for m, (keep, fast) in zip(layers, saved, strict=True):
            m.keep_attention, m.fused, m.last_attention = keep, fast, None
        model.train(was_training)
    return logits, grid, fused


def explain_clip(
    model: nn.Module,
    video: Tensor,
    *,
    head_fusion: HeadFusion = "mean",
    discard_ratio: float = 0.0,
) -> RolloutResult:
    """Attention rollout of one clip, with the logits of the same forward pass.

    Args:
        model: a ``TimeSformer`` (left in the mode it was in; run in eval mode here).
        video: normalised clip (3, T, H, W) or (1, 3, T, H, W), on the model's device.
        head_fusion: how the heads of a step are combined: "mean", "max" or "min".
        discard_ratio: in [0, 1): the fraction of each row's smallest attention weights set to
            zero before the residual is added (never the cls column).

    Returns:
        ``RolloutResult`` whose ``relevance`` (T, H', W') sums to 1 over the clip.
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ConfigError(
            f"head fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}"
        )
    if not 0.0 <= discard_ratio < 1.0:
        raise ConfigError(f"discard ratio must be in [0, 1), got {discard_ratio}")
    if video.ndim == 4:
        video = video.unsqueeze(0)
    if video.ndim != 5 or video.shape[0] != 1:
        raise ConfigError(
            f"expected one clip (3, T, H, W) or (1, 3, T, H, W), got {tuple(video.shape)}"
        )
    layout = rollout_support(model)
    logits, grid, fused = _collect(model, video, head_fusion, discard_ratio)
    device = logits.device

    if layout == "frames":
        # (T, 1 + N) one row per frame's cls token, through the blocks from the last one back.
        r = torch.zeros(grid.t, 1 + grid.n, device=device)
        r[:, 0] = 1.0
        for block in reversed(model.blocks):
            r = torch.einsum("ti,tij->tj", r, fused[id(block.attn)])
        # The clip's cls token is the mean of the frames' cls tokens.
        cls_share = float(r[:, 0].mean())
        patches = r[:, 1:].reshape(grid.t, grid.h, grid.w) / grid.t
    else:
        r = torch.zeros(1 + grid.n * grid.t, device=device)
        r[0] = 1.0
        for block in reversed(model.blocks):
            for step, attn in reversed(_step_attentions(block)):
                idx = _group_index(block, step, grid, device)
                a = fused[id(attn)]
                width = idx.shape[1] + (step == "last")
                if a.shape != (idx.shape[0], width, width):
                    raise ConfigError(
                        f"attention rollout is not defined for the {block.name!r} scheme: its "
                        f"{step!r} step attends over {tuple(a.shape)}, its groups are "
                        f"{tuple(idx.shape)}"
                    )
                r = _back_through_step(r, a, idx, with_cls=step == "last")
        cls_share = float(r[0])
        # Token order is space-major, time-minor: (H', W', T) -> (T, H', W').
        patches = r[1:].reshape(grid.h, grid.w, grid.t).permute(2, 0, 1)
    relevance = (patches / patches.sum()).float().cpu().contiguous()
    return RolloutResult(relevance, cls_share, logits[0].float().cpu())


def attention_rollout(
    model: nn.Module,
    video: Tensor,
    *,
    head_fusion: HeadFusion = "mean",
    discard_ratio: float = 0.0,
) -> Tensor:
    """Relevance (T, H', W') of every patch of every frame to the clip's cls token.

    ``video`` is a normalised clip (3, T, H, W) or (1, 3, T, H, W) on the model's device; the
    result is float32 on the CPU and sums to 1 over the whole clip (the cls token's own share is
    left out and the rest renormalised; ``explain_clip`` also reports it).  See the module
    docstring for the construction and ``explain_clip`` for the arguments.
    """
    return explain_clip(
        model, video, head_fusion=head_fusion, discard_ratio=discard_ratio
    ).relevance
