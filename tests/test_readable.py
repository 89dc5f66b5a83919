"""One scheme's forward path reads in under 400 lines, from ``TimeSformer.forward`` to the kernels.

The list below is that path for divided attention, with the constructors that build each
module, in the order a reader follows it (docs/development.md, "Reading the model"). The fast block, the Triton kernel and the int8 and
prepacking machinery of the linear layers are swapped in or chosen outside it, and are not on it.
"""

from __future__ import annotations

import inspect

from timesformer.layers import attention, drop, linear, mlp, patch_embed, pos_embed
from timesformer.model import TimeSformer
from timesformer.schemes import base, divided

PATH = [
    TimeSformer.__init__,
    TimeSformer.forward,
    TimeSformer.forward_features,
    TimeSformer.forward_tokens,
    TimeSformer.embed,
    patch_embed.PatchEmbed.__init__,
    patch_embed.PatchEmbed.forward,
    pos_embed.resize_pos_embed,
    pos_embed.resize_time_embed,
    base.SchemeBlock.__init__,
    base.SchemeBlock.pack,
    base.SchemeBlock.forward,
    base.SchemeBlock.step_modules,
    base.SchemeBlock.patch_step,
    base.SchemeBlock.last_step,
    base.SchemeBlock.join,
    base.SchemeBlock.ungroup,
    divided.DividedBlock.group,
    divided.DividedBlock.ungroup_view,
    base.SchemeBlock.pool,
    attention.Attention.__init__,
    attention.Attention.forward,
    attention.Attention.heads,
    attention.Attention.project_qkv,
    attention.attend,
    attention.plain_is_faster,
    attention.sdpa_attention,
    attention.plain_attention,
    attention.split_heads,
    mlp.Mlp.__init__,
    mlp.Mlp.forward,
    drop.DropPath.__init__,
    drop.DropPath.forward,
    linear.Linear.forward,
    linear.linear,
]


def test_divided_attentions_forward_path_is_under_400_lines():
    lines = sum(len(inspect.getsource(fn).splitlines()) for fn in PATH)
    assert lines < 400, f"the forward path is {lines} lines"


def test_the_block_forward_has_no_branches():
    """The block reads as the paper: each step in turn, then the MLP; no choice of path."""
    source = inspect.getsource(base.SchemeBlock.forward)
    assert " if " not in source and "else" not in source
    source = inspect.getsource(attention.Attention.forward)
    assert " if " not in source
