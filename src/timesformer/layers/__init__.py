"""Building blocks shared by every attention scheme."""

from timesformer.layers.attention import Attention, set_fused_attention
from timesformer.layers.drop import DropPath
from timesformer.layers.linear import Linear, quantize_int8
from timesformer.layers.mlp import Mlp
from timesformer.layers.patch_embed import PatchEmbed
from timesformer.layers.pos_embed import resize_pos_embed, resize_time_embed

__all__ = [
    "Attention",
    "DropPath",
    "Linear",
    "Mlp",
    "PatchEmbed",
    "quantize_int8",
    "resize_pos_embed",
    "resize_time_embed",
    "set_fused_attention",
]
