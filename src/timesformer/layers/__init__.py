"""Building blocks shared by every attention scheme."""

from timesformer.layers.attention import Attention, attend, set_fused_attention
from timesformer.layers.backend import Backend, get_backend, set_backend
from timesformer.layers.drop import DropPath
from timesformer.layers.linear import Linear, quantize_int8
from timesformer.layers.mlp import Mlp
from timesformer.layers.patch_embed import PatchEmbed
from timesformer.layers.pos_embed import resize_pos_embed, resize_time_embed, sincos_time_embed

__all__ = [
    "Attention",
    "Backend",
    "DropPath",
    "Linear",
    "Mlp",
    "PatchEmbed",
    "attend",
    "get_backend",
    "quantize_int8",
    "resize_pos_embed",
    "resize_time_embed",
    "set_backend",
    "set_fused_attention",
    "sincos_time_embed",
]
