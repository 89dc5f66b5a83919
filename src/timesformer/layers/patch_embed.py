"""Per-frame patch embedding."""

from __future__ import annotations

from torch import Tensor, nn

from timesformer.errors import ConfigError
from timesformer.layers.linear import linear


class PatchEmbed(nn.Module):
    """Cuts every frame into P x P patches and projects each to D (``patch_embed.proj``).

    Input (B, C, T, H, W) -> output (B, T, H', W', D) with H' = H / P, W' = W / P.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ConfigError(f"frame size {h}x{w} is not divisible by the patch size {p}")
        hp, wp = h // p, w // p
        # The stride-P convolution is one product per patch: each patch's pixels, in the
        # order of the kernel's (C, P, P) weights, times the (D, C*P*P) flattened kernel. As a
        # linear product it takes the prepacked path at CPU inference, its output comes out in
        # the (B, T, H', W', D) layout with no copy, and its weight gradient is one matrix
        # product, where oneDNN's convolution backward ran at 8% of the Intel machine's bf16
        # limit (results/training_products_cpu_intel.md). int8 leaves it in float, as it left
        # the convolution (results/int8_cpu.md measured that).
        patches = x.reshape(b, c, t, hp, p, wp, p).permute(0, 2, 3, 5, 1, 4, 6)
        patches = patches.reshape(b * t * hp * wp, c * p * p)
        weight = self.proj.weight.reshape(self.proj.out_channels, -1)
        y = linear(patches, weight, self.proj.bias, self.proj, "flat", int8=False)
        return y.reshape(b, t, hp, wp, -1)  # (B*T*H'*W', D) -> (B, T, H', W', D)
