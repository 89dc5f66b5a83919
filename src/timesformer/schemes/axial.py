"""Axial attention (T+W+H): one attention step per axis of the clip.

Never released by the authors; defined here from the paper's description: time, then width,
then height, each step with its own norm, qkv and output projection; the time and width steps
also have a D x D linear (``temporal_fc``, ``width_fc``), while the height step, which the cls
token joins, has none, like the divided block's spatial step (157,020,304 parameters for
TimeSformer-Base with a 400-class head).  Tested against a dense masked-attention reference.
"""

from __future__ import annotations

from torch import Tensor

from timesformer.schemes.base import Grid, SchemeBlock, register_scheme


@register_scheme
class AxialBlock(SchemeBlock):
    """Attention along time, then along width, then along height (with the cls token), then MLP."""

    name = "axial"
    description = "attention along time, then width, then height, then MLP"
    extra_steps = ("temporal", "width")

    def group(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        b, _, d = p.shape
        h, w, t = grid.h, grid.w, grid.t
        if step == "temporal":  # groups (b, h, w), sequence t
            return p.reshape(b * h * w, t, d)
        x = p.reshape(b, h, w, t, d)
        if step == "width":  # groups (b, h, t), sequence w
            return x.permute(0, 1, 3, 2, 4).reshape(b * h * t, w, d)
        return x.permute(0, 2, 3, 1, 4).reshape(b * w * t, h, d)  # groups (b, w, t), sequence h

    def ungroup_view(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        d = y.shape[-1]
        h, w, t = grid.h, grid.w, grid.t
        if step == "temporal":
            return y.reshape(batch, h * w * t, d)
        if step == "width":
            return y.reshape(batch, h, t, w, d).permute(0, 1, 3, 2, 4)
        return y.reshape(batch, w, t, h, d).permute(0, 3, 1, 2, 4)
