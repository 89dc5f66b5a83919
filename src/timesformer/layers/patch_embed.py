"""Per-frame patch embedding."""

from __future__ import annotations

from torch import Tensor, nn

from timesformer.errors import ConfigError


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
        # (B, C, T, H, W) -> (B*T, C, H, W): frames are independent images here.
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        y = self.proj(frames)  # (B*T, D, H', W')
        return y.permute(0, 2, 3, 1).reshape(b, t, h // p, w // p, -1)
