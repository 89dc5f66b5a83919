"""Space-only attention (S): every frame is an image, frames never see each other."""

from __future__ import annotations

import torch
from torch import Tensor

from timesformer.schemes.base import Grid, OneStepBlock, register_scheme


@register_scheme
class SpaceBlock(OneStepBlock):
    """A ViT block applied to each frame; the clip is the average over frames.

    Token layout (B*T, 1 + N, D): each frame carries its own cls token, as in the reference, and
    the frames' final cls tokens are averaged.  No time embedding: frame order is invisible.
    """

    name = "space"
    description = "attention among the patches of the same frame; cls averaged over frames"
    uses_time_embed = False
    reference_name = "space_only"
    hf_name = "space_only"
    hf_export = False  # transformers' space_only gives per-frame logits, not their average

    @classmethod
    def rollout_layout(cls) -> str:
        return "frames"

    @classmethod
    def pack(cls, cls_tok: Tensor, patches: Tensor) -> Tensor:
        b, t, h, w, d = patches.shape
        frames = patches.reshape(b * t, h * w, d)
        cls_copies = cls_tok.expand(b, t, d).reshape(b * t, 1, d)
        return torch.cat((cls_copies, frames), dim=1)

    @classmethod
    def pool(cls, x: Tensor, grid: Grid) -> Tensor:
        # The reference averages the frames' tokens before the final norm; for the cls token
        # that is this mean.
        return x[:, 0].reshape(-1, grid.t, x.shape[-1]).mean(dim=1)

    @classmethod
    def patch_tokens(cls, x: Tensor, grid: Grid) -> Tensor:
        d = x.shape[-1]
        return x[:, 1:].reshape(-1, grid.t, grid.h, grid.w, d)
