"""Multi-head self-attention over groups of tokens.

Every attention scheme reduces to this layer: the scheme regroups the clip's tokens into G
independent sequences of length L, and this layer attends within each sequence.  Nothing here
knows about space or time, and no N x N mask is ever built.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from timesformer.layers.linear import Linear, in_graph, linear

# On the CPU, SDPA's flash kernel is slower than two batched matrix products and a softmax for
# short bf16/fp16 sequences (fp32 is the other way round), and below this length the attention
# matrix (G x heads x L x L) is small, so the plain path is taken there. The measurements and
# their command: docs/performance.md, "SDPA where it is faster".
CPU_PLAIN_MAX_LEN = 512
# On a CUDA device the plain path beats SDPA for divided attention's temporal groups of 8 tokens
# but not for longer groups; there PyTorch's own order of SDPA kernels (None: cuDNN first) beats
# putting flash first. Measured in docs/performance.md, "The attention layer's CUDA choices".
CUDA_PLAIN_MAX_LEN = 8
CUDA_SDPA_PRIORITY: list[SDPBackend] | None = None
# The Triton kernel for groups of up to 16 tokens (``short_groups``) on a CUDA device, where
# Triton is installed: it replaces the tiny batched products, layout copies and softmax passes
# that cost divided attention's temporal step far more time than its share of the arithmetic
# (docs/performance.md, "A Triton kernel for groups of up to 16 tokens").
CUDA_SHORT_GROUP_KERNEL = True
# Compiled graphs take it too: it is an opaque custom operator, launched as in eager mode. Where
# the kernel cannot be built, compiled graphs fall back like eager mode (``_kernel_unavailable``
# runs its probe while they are traced).
CUDA_SHORT_GROUP_KERNEL_COMPILED = True
# The dtypes the layer hands the kernel: half precision only. Triton may turn the kernel's
# broadcast multiply and sum over a full 16-row tile into a tensor-core product on TF32 inputs,
# and in fp32 that misses the exact path by more than the tests allow. fp32 keeps the exact
# path; bf16 and fp16, which round far more coarsely than TF32, keep the kernel.
SHORT_GROUP_KERNEL_DTYPES = (torch.bfloat16, torch.float16)


class Attention(nn.Module):
    """Fused-qkv multi-head attention, the reference's ``Attention`` with the same key names.

    Args:
        dim: token width D.
        num_heads: heads; D must divide evenly.
        qkv_bias: bias on the fused q, k, v projection (the reference has it).
        attn_drop: dropout on the attention weights (training only).

    ``fused`` selects ``F.scaled_dot_product_attention`` (the default) or the plain softmax path,
    which is kept to check the fused one and to expose the attention weights: when
    ``keep_attention`` is set, the plain path stores them in ``last_attention`` (G, heads, L, L).
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.attn_drop = attn_drop
        self.fused = True
        self.keep_attention = False
        self.last_attention: Tensor | None = None

    def forward(self, x: Tensor, project: bool = True, queries: int | None = None) -> Tensor:
        """(G, L, D) -> (G, Q, D); without ``project``, the heads' output before ``proj``.

        Every token is a key and a value; with ``queries`` only the first Q tokens are queries
        (Q = L by default), so the other tokens' queries and outputs are never computed.
        """
        g, l, d = x.shape
        drop = self.attn_drop if self.training else 0.0
        if queries is None or queries >= l:
            # (G, L, 3D) -> (G, L, 3, heads, head_dim): q, k, v in the reference's order.
            qkv = self.qkv(x).reshape(g, l, 3, self.num_heads, self.head_dim)
            kernel = self._short_kernel(qkv, drop)
            if kernel is not None:
                out = kernel(qkv, self.scale).reshape(g, l, d)
                return self.proj(out) if project else out
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            qkv = None
            # Rows [0, D) of the fused weight make q, rows [D, 3D) make k and v.
            w, b = self.qkv.weight, self.qkv.bias
            q = linear(x[:, :queries], w[:d], None if b is None else b[:d], self.qkv, "q")
            kv = linear(x, w[d:], None if b is None else b[d:], self.qkv, "kv")
            q = q.reshape(g, queries, self.num_heads, self.head_dim).transpose(1, 2)
            k, v = kv.reshape(g, l, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            l = queries
        if self.fused and not self.keep_attention and not _plain_is_faster(q):
            order = CUDA_SDPA_PRIORITY if q.is_cuda else None
            with sdpa_kernel(order, set_priority=True) if order else contextlib.nullcontext():
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:
            if qkv is not None and _split_heads_applies(qkv):
                # The same q, k and v with one copy of their gradient in the backward.
                q, k, v = SplitHeads.apply(qkv, self.scale)
            elif torch.is_grad_enabled() or in_graph():
                q = q * self.scale
            else:
                q = scaled_copy(q, self.scale)
            attn = q @ k.transpose(-2, -1)  # (G, heads, L, L)
            attn = attn.softmax(dim=-1)
            if self.keep_attention:
                self.last_attention = attn.detach()
            if drop:
                attn = F.dropout(attn, drop)
            out = attn @ v
        out = out.transpose(1, 2).reshape(g, l, d)
        return self.proj(out) if project else out

    def _short_kernel(self, qkv: Tensor, drop: float) -> Callable[[Tensor, float], Tensor] | None:
        """``short_groups``' kernel where it runs (switched on, on a CUDA device, for bf16 or
        fp16 q, k and v on the fused path without dropout on the weights or kept attention
        maps; under ``torch.compile`` unless ``CUDA_SHORT_GROUP_KERNEL_COMPILED`` is off),
        else None."""
        if not (
            CUDA_SHORT_GROUP_KERNEL
            and _kernel_device(qkv)
            and self.fused
            and qkv.dtype in SHORT_GROUP_KERNEL_DTYPES
        ):
            return None
        if torch.compiler.is_compiling() and not CUDA_SHORT_GROUP_KERNEL_COMPILED:
            return None
        # Imported here: importing Triton is slow, and every ``import timesformer`` on a
        # machine with Triton would otherwise pay for it.
        from timesformer.layers import short_groups

        if self.keep_attention or drop or not short_groups.applies(qkv):
            return None
        if _kernel_unavailable(qkv.device, qkv.dtype, self.head_dim):
            return None
        return short_groups.short_group_attention


@torch.compiler.assume_constant_result
def _kernel_unavailable(device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    """``short_groups.unavailable``, with a warning where the kernel cannot run.

    On by default, so a card or Triton build that cannot run the kernel must not stop the
    model: the first call for each device, dtype and head size tries it, and a failure falls
    back to the path without it, once told. Under ``torch.compile`` this runs as plain Python
    while the graph is traced (its arguments are constants, never traced tensors), and its
    answer is a constant of the graph, so compiled graphs fall back too."""
    from timesformer.layers import short_groups

    why = short_groups.unavailable(device, dtype, head_dim)
    if why:
        warnings.warn(
            f"the short-group attention kernel does not run here ({why}); attention takes "
            "the path without it",
            RuntimeWarning,
            stacklevel=2,
        )
    return why


def _kernel_device(qkv: Tensor) -> bool:
    """Whether ``qkv``'s device runs the short-group kernel: CUDA devices (the CPU tests, which
    run it in Triton's interpreter, stand this in)."""
    return qkv.is_cuda


def _plain_is_faster(q: Tensor) -> bool:
    """Short low-precision sequences on the CPU (see ``CPU_PLAIN_MAX_LEN``), short sequences on
    a CUDA device (``CUDA_PLAIN_MAX_LEN``)."""
    if q.device.type == "cuda":
        return q.shape[-2] <= CUDA_PLAIN_MAX_LEN
    return (
        q.device.type == "cpu"
        and q.dtype in (torch.bfloat16, torch.float16)
        and q.shape[-2] <= CPU_PLAIN_MAX_LEN
    )


def scaled_copy(q: Tensor, scale: float) -> Tensor:
    """``q * scale`` as a contiguous tensor (..., L, head_dim), outside autograd.

    Scaling q rather than the scores: the products need q contiguous, and the scale rides along
    with that copy. ``q * scale`` alone would not do: an elementwise product keeps the order of
    its input's strides, here q's (G, L, heads, head_dim) layout inside qkv, and the product
    would copy it once more."""
    return torch.mul(q, scale, out=q.new_empty(q.shape))


class SplitHeads(torch.autograd.Function):
    """(G, L, 3, heads, head_dim) fused q, k, v -> q * scale, k, v, each (G, heads, L, head_dim)
    and contiguous: the copies the plain path's products need, the scale riding on q's.

    Autograd's own backward of a permute, unbind and scale gets there in three passes over the
    gradient of qkv: the scale, ``torch.stack`` of the three, and the copy of the permuted stack
    into qkv's layout. This one writes the three gradients straight into that layout, one pass,
    with the same values (the scale is the same product); the products after it read another
    memory layout than autograd's path gives them, so the layer's results agree to rounding
    only. Its gain is measured with the other pass savings in docs/performance.md, "Few passes
    over the tokens".
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, scale: float) -> tuple[Tensor, Tensor, Tensor]:
        ctx.scale = scale
        heads_first = qkv.transpose(1, 3)  # (G, heads, 3, L, head_dim), a view
        q = scaled_copy(heads_first[:, :, 0], scale)
        return q, heads_first[:, :, 1].contiguous(), heads_first[:, :, 2].contiguous()

    @staticmethod
    def backward(ctx, gq: Tensor, gk: Tensor, gv: Tensor) -> tuple[Tensor, None]:
        g, heads, l, head_dim = gq.shape
        grad = gq.new_empty(g, l, 3, heads, head_dim)
        view = grad.transpose(1, 3)  # (G, heads, 3, L, head_dim)
        torch.mul(gq, ctx.scale, out=view[:, :, 0])
        view[:, :, 1].copy_(gk)
        view[:, :, 2].copy_(gv)
        return grad, None


def _split_heads_applies(qkv: Tensor) -> bool:
    """Whether the plain path splits ``qkv`` with ``SplitHeads``: where its gradient is wanted,
    on the CPU (where it was measured), in eager mode (compiled graphs fuse these copies)."""
    return (
        qkv.requires_grad
        and torch.is_grad_enabled()
        and qkv.device.type == "cpu"
        and not in_graph()
    )


def set_fused_attention(module: nn.Module, fused: bool) -> None:
    """Switch every ``Attention`` inside ``module`` between the fused and the plain path."""
    for m in module.modules():
        if isinstance(m, Attention):
            m.fused = fused
