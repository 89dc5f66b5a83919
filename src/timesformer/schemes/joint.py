"""Joint space-time attention (ST): every token attends to every token of the clip."""

from __future__ import annotations

from torch import Tensor

from timesformer.schemes.base import Grid, OneStepBlock, register_scheme


@register_scheme
class JointBlock(OneStepBlock):
    """One attention over all 1 + N*T tokens: O((NT)^2) work, but never an (NT)^2 matrix in
    memory on the fused path."""

    name = "joint"
    description = "every token attends to every token of the clip"
    reference_name = "joint_space_time"
    hf_name = "joint_space_time"
    hf_export = True

    @classmethod
    def rollout_layout(cls) -> str:
        # Its forward is the shared one's single step: one group of all tokens, cls included.
        return "tokens"

    def group(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        return p

    def ungroup_view(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        return y
