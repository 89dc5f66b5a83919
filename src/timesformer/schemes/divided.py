"""Divided space-time attention (T+S), the paper's best scheme, exactly as the reference."""

from __future__ import annotations

from torch import Tensor

from timesformer.schemes.base import Grid, SchemeBlock, register_scheme


@register_scheme
class DividedBlock(SchemeBlock):
    """Temporal attention (each patch position across the T frames), then spatial attention
    (each frame's N patches plus a cls copy), then the MLP."""

    name = "divided"
    description = "temporal attention, then spatial attention, then MLP"
    extra_steps = ("temporal",)
    reference_name = "divided_space_time"
    hf_name = "divided_space_time"
    hf_export = True

    def group(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        b, _, d = p.shape
        if step == "temporal":
            # (B, H'W'T, D) -> (B*H'W', T, D): already contiguous in token order.
            return p.reshape(b * grid.n, grid.t, d)
        # spatial: (B, H'W', T, D) -> (B*T, H'W', D)
        return p.reshape(b, grid.n, grid.t, d).transpose(1, 2).reshape(b * grid.t, grid.n, d)

    def ungroup_view(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        d = y.shape[-1]
        if step == "temporal":
            return y.reshape(batch, grid.n * grid.t, d)
        return y.reshape(batch, grid.t, grid.n, d).transpose(1, 2)
