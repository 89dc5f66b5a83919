"""Parameter and multiply-accumulate counts, as the paper reports them."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from timesformer.config import ModelConfig
from timesformer.model import TimeSformer


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (all of them, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(
    config: ModelConfig,
    num_frames: int | None = None,
    img_size: int | None = None,
    batch: int = 1,
) -> int:
    """Multiply-accumulates of one forward pass of one view (matrix products and convolutions).

    The model is built on the meta device (no memory, no arithmetic) and run with the plain
    attention path, whose matrix products the flop counter sees: it counts nothing in SDPA's
    fused CPU kernel.
    """
    t = num_frames or config.num_frames
    s = img_size or config.img_size
    with torch.device("meta"):
        # The plain blocks: each extra step's two linears run apart, as the paper counts them.
        model = TimeSformer(config, fast=False).eval()
        x = torch.empty(batch, config.in_chans, t, s, s)
    model.set_fused_attention(False)
    # Every token of the last block too (``forward`` computes its cls token alone).
    counter = FlopCounterMode(display=False)
    with counter:
        tokens, grid = model.forward_tokens(x)
        model.forward_head(model.norm(model.scheme.pool(tokens, grid)))
    return counter.get_total_flops() // 2
