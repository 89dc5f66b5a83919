"""Sparse local-global attention (L+G).

The paper describes it in one sentence and the reference code never shipped it; this is the
project's reading of that sentence, tested against a dense masked-attention reference:

- local step: attention within each of the 4 spatial quadrants of the grid, over all T frames
  (windows of T x H'/2 x W'/2 patches);
- global step: attention among the tokens that share the offset (t mod 2, h mod 2, w mod 2),
  a stride-2 sparse pattern over the whole clip (8 groups of T/2 x H'/2 x W'/2 patches).

Both are reshapes of the token grid into groups; no N x N mask is built.  T, H' and W' must be
even.
"""

from __future__ import annotations

from torch import Tensor

from timesformer.errors import ConfigError
from timesformer.schemes.base import Grid, SchemeBlock, register_scheme


@register_scheme
class LocalGlobalBlock(SchemeBlock):
    """Local window attention, then sparse global attention, then MLP."""

    name = "local_global"
    description = "local attention in spatial quadrants, then stride-2 sparse global attention"
    extra_steps = ("local",)

    @classmethod
    def check_grid(cls, grid: Grid) -> None:
        if grid.t % 2 or grid.h % 2 or grid.w % 2:
            raise ConfigError(
                "local_global attention needs an even number of frames and of patches per side, "
                f"got {grid.t} frames of {grid.h}x{grid.w} patches"
            )

    def group(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        b, _, d = p.shape
        h2, w2, t = grid.h // 2, grid.w // 2, grid.t
        if step == "local":
            # h = qh*h2 + h', w = qw*w2 + w' -> groups (b, qh, qw), sequence (h', w', t)
            x = p.reshape(b, 2, h2, 2, w2, t, d).permute(0, 1, 3, 2, 4, 5, 6)
            return x.reshape(b * 4, h2 * w2 * t, d)
        # h = 2h'' + hr, w = 2w'' + wr, t = 2t'' + tr -> groups (b, hr, wr, tr), seq (h'', w'', t'')
        x = p.reshape(b, h2, 2, w2, 2, t // 2, 2, d).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return x.reshape(b * 8, h2 * w2 * (t // 2), d)

    def ungroup_view(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        d = y.shape[-1]
        h2, w2, t = grid.h // 2, grid.w // 2, grid.t
        if step == "local":
            return y.reshape(batch, 2, 2, h2, w2, t, d).permute(0, 1, 3, 2, 4, 5, 6)
        return y.reshape(batch, 2, 2, 2, h2, w2, t // 2, d).permute(0, 4, 1, 5, 2, 6, 3, 7)
