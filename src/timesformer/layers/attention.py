"""Multi-head self-attention over groups of tokens.

Every attention scheme reduces to this layer: the scheme regroups the clip's tokens into G
independent sequences of length L, and this layer attends within each sequence.  Nothing here
knows about space or time, and no N x N mask is ever built.

``Attention.forward`` is the paper's: project q, k and v, ``attend``, project back. ``attend``
picks one of three kernels, as ``layers.backend`` configures it: SDPA, the plain softmax path
(faster for short low-precision sequences, and the one that can hand out its weights), or the
Triton kernel for groups of up to 16 tokens on a CUDA device.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import sdpa_kernel

from timesformer.layers.backend import get_backend
from timesformer.layers.linear import Linear, in_graph, linear


class QKV(NamedTuple):
    """The projected queries, keys and values of G groups, each (G, ·, heads, head_dim).

    q has Q rows, k and v have L. ``packed`` is the (G, L, 3, heads, head_dim) projection that
    q, k and v are views of, where Q = L (the kernels that read that layout take it); else None.
    """

    q: Tensor
    k: Tensor
    v: Tensor
    packed: Tensor | None


class Attention(nn.Module):
    """Fused-qkv multi-head attention, the reference's ``Attention`` with the same key names.

    Args:
        dim: token width D.
        num_heads: heads; D must divide evenly.
        qkv_bias: bias on the fused q, k, v projection (the reference has it).
        attn_drop: dropout on the attention weights (training only).

    ``fused`` lets ``attend`` choose SDPA (the default) or keeps the plain softmax path, which
    checks the fused one. With ``keep_attention`` set, the plain path runs and stores the
    attention weights in ``last_attention`` (G, heads, L, L), for attention rollout.
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

    def forward(self, x: Tensor, queries: int | None = None) -> Tensor:
        """(G, L, D) -> (G, Q, D).

        Every token is a key and a value; with ``queries`` only the first Q tokens are queries
        (Q = L by default), so the other tokens' queries and outputs are never computed.
        """
        return self.proj(self.heads(x, queries))

    def heads(self, x: Tensor, queries: int | None = None) -> Tensor:
        """(G, L, D) -> (G, Q, D): the heads' outputs side by side, before ``proj``."""
        qkv = self.project_qkv(x, queries)
        if self.keep_attention:
            out, self.last_attention = plain_attention(qkv, self.scale)
            return out
        dropout_p = self.attn_drop if self.training else 0.0
        return attend(qkv, self.scale, dropout_p, sdpa=self.fused)

    def project_qkv(self, x: Tensor, queries: int | None = None) -> QKV:
        """(G, L, D) -> q (G, Q, heads, head_dim), k and v (G, L, heads, head_dim)."""
        g, l, d = x.shape
        shape = (self.num_heads, self.head_dim)
        if queries is None or queries >= l:
            # (G, L, 3D) -> (G, L, 3, heads, head_dim): q, k, v in the reference's order.
            packed = self.qkv(x).reshape(g, l, 3, *shape)
            return QKV(*packed.unbind(2), packed=packed)
        # Rows [0, D) of the fused weight make q, rows [D, 3D) make k and v.
        w, b = self.qkv.weight, self.qkv.bias
        q = linear(x[:, :queries], w[:d], None if b is None else b[:d], self.qkv, "q")
        kv = linear(x, w[d:], None if b is None else b[d:], self.qkv, "kv")
        k, v = kv.reshape(g, l, 2, *shape).unbind(2)
        return QKV(q.reshape(g, queries, *shape), k, v, packed=None)


def attend(qkv: QKV, scale: float, dropout_p: float = 0.0, sdpa: bool = True) -> Tensor:
    """Softmax attention of every query over its group's keys: -> (G, Q, D), heads side by side.

    The kernel, as ``layers.backend`` sets the choice: the Triton kernel for short bf16/fp16
    groups on a CUDA device; SDPA unless ``sdpa`` is False or the plain path is faster (short
    low-precision sequences); else the plain softmax path.
    """
    if sdpa and _short_kernel_runs(qkv, dropout_p):
        from timesformer.layers import short_groups  # imported late: importing Triton is slow

        return short_groups.short_group_attention(qkv.packed, scale).flatten(2)
    if sdpa and not plain_is_faster(qkv.q):
        return sdpa_attention(qkv, scale, dropout_p)
    return plain_attention(qkv, scale, dropout_p)[0]


def sdpa_attention(qkv: QKV, scale: float, dropout_p: float = 0.0) -> Tensor:
    """``F.scaled_dot_product_attention`` in PyTorch's kernel order, or the backend's on CUDA."""
    q, k, v = (t.transpose(1, 2) for t in qkv[:3])  # (G, heads, ·, head_dim)
    order = get_backend().cuda_sdpa_priority if q.is_cuda else None
    with sdpa_kernel(list(order), set_priority=True) if order else contextlib.nullcontext():
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2).flatten(2)


def plain_attention(qkv: QKV, scale: float, dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """softmax(q k^T * scale) v with two matrix products: (output (G, Q, D), the attention
    weights (G, heads, Q, L), detached)."""
    q, k, v = split_heads(qkv, scale)  # (G, heads, ·, head_dim), q scaled
    attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    weights = attn.detach()
    if dropout_p:
        attn = F.dropout(attn, dropout_p)
    return (attn @ v).transpose(1, 2).flatten(2), weights


def split_heads(qkv: QKV, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """q * scale, k, v, each (G, heads, ·, head_dim), for the plain path's products."""
    if qkv.packed is not None and not in_graph():
        # Contiguous copies with a one-pass backward; compiled graphs fuse these copies.
        return SplitHeads.apply(qkv.packed, scale)
    q, k, v = (t.transpose(1, 2) for t in qkv[:3])
    return q * scale, k, v


def plain_is_faster(q: Tensor) -> bool:
    """Whether the plain path beats SDPA for q (G, ·, heads, head_dim): short bf16/fp16
    sequences on the CPU, short sequences on a CUDA device (``layers.backend``)."""
    backend = get_backend()
    if q.device.type == "cuda":
        return q.shape[1] <= backend.cuda_plain_max_len
    return (
        q.device.type == "cpu"
        and q.dtype in (torch.bfloat16, torch.float16)
        and q.shape[1] <= backend.cpu_plain_max_len
    )


def _short_kernel_runs(qkv: QKV, dropout_p: float) -> bool:
    """Whether ``short_groups``' kernel takes these groups: switched on in the backend, on a
    CUDA device, for the backend's dtypes, without dropout on the weights, where Triton built
    it for this card (and under ``torch.compile`` only if the backend says so)."""
    backend, packed = get_backend(), qkv.packed
    if (
        packed is None
        or dropout_p
        or not backend.short_group_kernel
        or not _kernel_device(packed)
        or packed.dtype not in backend.short_group_dtypes
        or (torch.compiler.is_compiling() and not backend.short_group_kernel_compiled)
    ):
        return False
    from timesformer.layers import short_groups

    if not short_groups.applies(packed):
        return False
    return not _kernel_unavailable(packed.device, packed.dtype, packed.shape[-1])


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


def set_fused_attention(module: nn.Module, fused: bool) -> None:
    """Switch every ``Attention`` inside ``module`` between the fused and the plain path."""
    for m in module.modules():
        if isinstance(m, Attention):
            m.fused = fused
