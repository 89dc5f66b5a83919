"""The TimeSformer video classifier."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from timesformer.config import ModelConfig
from timesformer.errors import ConfigError
from timesformer.layers import (
    PatchEmbed,
    resize_pos_embed,
    resize_time_embed,
    set_fused_attention,
    sincos_time_embed,
)
from timesformer.schemes import SCHEMES, Grid, fast_block


class TimeSformer(nn.Module):
    """ViT over frame patches with a registered space-time attention scheme.

    Input (B, 3, T, H, W) normalised frames; output (B, num_classes) logits.  T, H and W may differ
    from the config's: the embeddings are resized (``ModelConfig.pos_interp``).

    Parameter names follow the reference checkpoints (``cls_token``, ``pos_embed``,
    ``time_embed``, ``patch_embed.proj``, ``blocks.i.*``, ``norm``, ``head``).

    ``fast`` builds the blocks as ``schemes.fast_block`` gives them (the same map in less
    time); ``fast=False`` builds the scheme's plain blocks, which read as the paper.
    """

    def __init__(self, config: ModelConfig, fast: bool = True) -> None:
        super().__init__()
        self.config = config
        self.scheme = SCHEMES[config.attention]
        d = config.embed_dim
        self.num_features = d
        self.class_names: list[str] | None = None
        # How the clips this model saw were made (``ClipConfig`` fields: frames, sampling rate,
        # crop, mean/std); saved with the weights so that inference preprocesses the same way.
        self.preprocess: dict[str, Any] | None = None

        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        # Position in space (cls token included) and in time; ``config.pos_embed`` may leave
        # either out (the paper's Table 4), and space-only attention has no use for time.
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, config.grid_size**2 + 1, d))
            if config.pos_embed != "none"
            else None
        )
        self.time_embed = (
            nn.Parameter(torch.zeros(1, config.num_frames, d))
            if self.scheme.uses_time_embed and config.pos_embed == "space_time"
            else None
        )
        # Drop path rises linearly over depth (plain floats: also works on the meta device).
        n = config.depth
        rates = [config.drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        block = fast_block(self.scheme) if fast else self.scheme
        self.blocks = nn.ModuleList(
            block(
                d,
                config.num_heads,
                mlp_ratio=config.mlp_ratio,
                qkv_bias=config.qkv_bias,
                drop_path=rate,
                attn_drop=config.attn_drop_rate,
                eps=config.layer_norm_eps,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.head = nn.Linear(d, config.num_classes)
        self.grad_checkpointing = False
        self.reset_parameters()

    # ------------------------------------------------------------------ initialisation
    def reset_parameters(self) -> None:
        """The reference initialisation, with every block's extra-step linear at zero (unless
        ``config.extra_step_init`` is ``normal``)."""
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=self.config.pos_embed_std)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.time_embed is not None:
            std = self.config.time_embed_std
            if std > 0 and self.config.time_embed_init == "sincos":
                with torch.no_grad():
                    t, d = self.time_embed.shape[1:]
                    self.time_embed.copy_(std * sincos_time_embed(t, d)[None])
            elif std > 0:
                nn.init.normal_(self.time_embed, std=std)
            else:
                nn.init.zeros_(self.time_embed)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Extra steps start as identities, so ImageNet weights give the image model at step 0.
        if self.config.extra_step_init == "normal":
            return
        for block in self.blocks:
            for _, _, _, fc in block.extra_step_modules():
                nn.init.zeros_(fc.weight)
                nn.init.zeros_(fc.bias)

    # ------------------------------------------------------------------ options
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them."""
        self.grad_checkpointing = enable

    def set_fused_attention(self, fused: bool) -> None:
        """Choose ``scaled_dot_product_attention`` (True) or the plain softmax path (False)."""
        set_fused_attention(self, fused)

    # ------------------------------------------------------------------ forward
    def embed(self, x: Tensor) -> tuple[Tensor, Grid]:
        """(B, C, T, H, W) -> (tokens in the scheme's layout, grid)."""
        if x.ndim != 5:
            raise ConfigError(f"expected a clip of shape (B, C, T, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.config.in_chans:
            raise ConfigError(
                f"expected {self.config.in_chans} channels in axis 1 of (B, C, T, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        patches = self.patch_embed(x)  # (B, T, H', W', D)
        b, t, h, w, d = patches.shape
        grid = Grid(t, h, w)
        self.scheme.check_grid(grid)
        cls_tok = self.cls_token.expand(b, 1, d)
        if self.pos_embed is not None:
            g = self.config.grid_size
            pos = resize_pos_embed(self.pos_embed, (h, w), (g, g), self.config.pos_interp)
            patches = patches + pos[:, 1:].reshape(1, 1, h, w, d)
            cls_tok = (self.cls_token + pos[:, :1]).expand(b, 1, d)
        if self.time_embed is not None:
            time = resize_time_embed(self.time_embed, t, self.config.pos_interp)
            patches = patches + time.reshape(1, t, 1, 1, d)
        return self.scheme.pack(cls_tok, patches), grid

    def forward_tokens(self, x: Tensor, cls_only: bool = False) -> tuple[Tensor, Grid]:
        """(B, C, T, H, W) -> (final tokens in the scheme's layout, before ``norm``; grid).

        With ``cls_only`` the last block computes the cls token(s) alone, (B, 1, D) ((B*T, 1, D)
        for space): enough for ``scheme.pool``, and the full tokens' cls values up to rounding.
        """
        tokens, grid = self.embed(x)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            args = (tokens, grid, cls_only and i == last)
            if self.grad_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(block, *args, use_reentrant=False)
            else:
                tokens = block(*args)
        return tokens, grid

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> the pooled clip embedding (B, D), after the final LayerNorm."""
        # Only the cls token leaves the last block, so its patch tokens' queries, outputs and MLP
        # are skipped (docs/performance.md, "No work whose result nobody reads").
        tokens, grid = self.forward_tokens(x, cls_only=True)
        return self.norm(self.scheme.pool(tokens, grid))

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> logits (B, num_classes)."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` classes."""
        self.head = nn.Linear(self.num_features, num_classes).to(self.head.weight)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.config = self.config.replace(num_classes=num_classes)
