"""Attention within short groups (L <= 16 tokens) as one Triton kernel on a CUDA device.

Divided attention's temporal step attends within B x H'W' groups of T = 8 tokens (16 for -HR).
On a GPU, cuBLAS runs those 8 x 64 x 8 products at a tiny fraction of its speed, and the layout
copies and the softmax around them are separate passes over memory: together a large share of
a training step's time for a tiny share of its MACs. Here one program per (group, head) reads
its q, k and v where the fused qkv projection wrote them, (G, L, 3, heads, head_dim), computes
the L x L scores, softmax and weighted sum in fp32 registers, and writes the output in the
(G, L, D) layout ``proj`` reads. Its backward recomputes the scores (cheaper than storing them)
and writes the gradients of q, k and v straight into the fused qkv gradient. Nothing of size
L x L reaches memory, and no copy regroups q, k, v or the output.

Both kernels are launched from ``torch.library.custom_op`` operators, which ``torch.compile``
keeps as opaque calls: the launch runs exactly as in eager mode, so compiled graphs keep the
kernels' eager speed. As ``triton_op`` operators, which inductor compiles itself, the same
kernels ran much slower in a compiled graph than eagerly, for a cause not found.

The backend's ``short_group_kernel`` switches the kernels on (``layers.backend``; the attention
layer hands them its ``short_group_dtypes``, bf16 and fp16). Their measurements, and the
commands that test and time them against the library's path, are in docs/performance.md, "A
Triton kernel for groups of up to 16 tokens". They were checked for correctness in Triton's
interpreter on the CPU (``tests/layers/test_short_groups.py``, which needs ``triton``
installed) and by the CUDA tests on a GPU. Without Triton (every CPU-only install) this module
defines nothing to call and ``available()`` is False.
"""

from __future__ import annotations

import torch
from torch import Tensor

from timesformer.layers.backend import get_backend

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: torch's CPU wheels do not bring Triton
    triton = None

#: The longest group the kernels take: each program holds an L x L x head_dim product in
#: registers, which stops being cheap beyond this.
MAX_LEN = 16


def warps(length: int, backward: bool) -> int:
    """Warps per program for groups of ``length`` tokens: the backend's ``short_group_warps`` if
    set (read at each call, compiled graphs included), else 1, but 8
    for the backward of groups over 8 tokens. These were the fastest in a sweep of 1, 2, 4 and 8
    warps (docs/performance.md): one warp for 8-token groups in both passes and for 16-token
    forwards; the 16-token backward, whose (L, L, head_dim) products hold 16,384 values a
    program, spreads them over 8."""
    chosen = get_backend().short_group_warps
    if chosen:
        return chosen
    return 8 if backward and length > 8 else 1


#: (device, dtype, head_dim) -> None where both kernels built and ran, else why not.
_PROBED: dict[tuple, str | None] = {}
#: The group lengths the probe runs: the longest tile at each launch setting (``warps()``:
#: groups of up to 8 tokens at 1 warp in both passes, longer ones at 8 in the backward), the
#: settings that need the most registers and shared memory.
PROBE_LENGTHS = (8, MAX_LEN)


def unavailable(device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    """Why the kernels cannot run on ``device`` for ``dtype`` and ``head_dim``, or None.

    The first call for each builds and runs both kernels on one group of one head at each of
    ``PROBE_LENGTHS`` (a Triton build fails on a card or Triton version it does not support, or
    when a program needs more registers or shared memory than the card has), and the answer is
    kept. Its arguments are plain values, never a tensor being traced, so the attention layer
    asks it while ``torch.compile`` traces too (``attention._kernel_unavailable``)."""
    key = (device, dtype, head_dim)
    if key in _PROBED:  # every call but the first: the answer kept
        return _PROBED[key]
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return None  # no probe inside a CUDA graph's capture: it would be recorded there
    try:
        # A failed build raises at the launch, so no synchronisation is needed to see it.
        for length in PROBE_LENGTHS:
            one = torch.randn(1, length, 3, 1, head_dim, device=device).to(dtype)
            _attention(one, 1.0)
            _attention_backward(one, one[:, :, 0], 1.0)
        _PROBED[key] = None
    except Exception as error:  # any failure of the probe means: not on this device
        lines = str(error).strip().splitlines()
        _PROBED[key] = f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
    return _PROBED[key]


def available() -> bool:
    """Whether Triton is importable, so that the kernels exist."""
    return triton is not None


def applies(qkv: Tensor) -> bool:
    """Whether the kernels take ``qkv`` (G, L, 3, heads, head_dim): L <= ``MAX_LEN``, a
    power-of-two head_dim up to 128, a float dtype, and Triton present."""
    if triton is None or qkv.dim() != 5 or qkv.shape[2] != 3:
        return False
    length, head_dim = qkv.shape[1], qkv.shape[-1]
    return (
        0 < length <= MAX_LEN
        and 16 <= head_dim <= 128
        and head_dim & (head_dim - 1) == 0
        and qkv.dtype in (torch.float32, torch.bfloat16, torch.float16)
    )


if triton is not None:

    @triton.jit
    def _program(heads, BLOCK_L: tl.constexpr, HEAD_DIM: tl.constexpr):
        # This program's group and head, and the row and column indices of its tiles.
        pid = tl.program_id(0)
        g = (pid // heads).to(tl.int64)  # g x its stride passes 2^31 from about 100k groups
        return g, pid % heads, tl.arange(0, BLOCK_L), tl.arange(0, HEAD_DIM)

    @triton.jit
    def _load_qkv(qkv, g, h, rows, cols, length, s_g, s_l, s_c, s_h, scale):
        # (L', head_dim) fp32 tiles of q (scaled), k and v; rows >= L read as zeros.
        mask = rows[:, None] < length
        at = qkv + g * s_g + h * s_h + rows[:, None] * s_l + cols[None, :]
        q = tl.load(at, mask=mask, other=0.0).to(tl.float32) * scale
        k = tl.load(at + s_c, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(at + 2 * s_c, mask=mask, other=0.0).to(tl.float32)
        return q, k, v

    @triton.jit
    def _probabilities(q, k, rows, length):
        # softmax over keys of q k^T: (L', L'), zero in the padded key columns.
        scores = tl.sum(q[:, None, :] * k[None, :, :], axis=2)
        scores = tl.where(rows[None, :] < length, scores, float("-inf"))
        p = tl.exp(scores - tl.max(scores, axis=1)[:, None])
        return p / tl.sum(p, axis=1)[:, None]

    @triton.jit
    def _forward_kernel(
        qkv, out, length, heads, scale,
        s_g, s_l, s_c, s_h,  # qkv's strides (the last one is 1)
        o_g, o_l, o_h,  # out's strides (the last one is 1)
        BLOCK_L: tl.constexpr, HEAD_DIM: tl.constexpr,
    ):  # fmt: skip
        g, h, rows, cols = _program(heads, BLOCK_L, HEAD_DIM)
        q, k, v = _load_qkv(qkv, g, h, rows, cols, length, s_g, s_l, s_c, s_h, scale)
        p = _probabilities(q, k, rows, length)
        o = tl.sum(p[:, :, None] * v[None, :, :], axis=1)  # (L', head_dim)
        at = out + g * o_g + h * o_h + rows[:, None] * o_l + cols[None, :]
        tl.store(at, o.to(out.dtype.element_ty), mask=rows[:, None] < length)

    @triton.jit
    def _backward_kernel(
        qkv, grad_out, grad_qkv, length, heads, scale,
        s_g, s_l, s_c, s_h,  # qkv's strides
        d_g, d_l, d_h,  # grad_out's strides
        r_g, r_l, r_c, r_h,  # grad_qkv's strides
        BLOCK_L: tl.constexpr, HEAD_DIM: tl.constexpr,
    ):  # fmt: skip
        g, h, rows, cols = _program(heads, BLOCK_L, HEAD_DIM)
        mask = rows[:, None] < length
        q, k, v = _load_qkv(qkv, g, h, rows, cols, length, s_g, s_l, s_c, s_h, scale)
        p = _probabilities(q, k, rows, length)  # (i, j)
        at = grad_out + g * d_g + h * d_h + rows[:, None] * d_l + cols[None, :]
        do = tl.load(at, mask=mask, other=0.0).to(tl.float32)  # (i, head_dim)
        dv = tl.sum(p[:, :, None] * do[:, None, :], axis=0)  # (j, head_dim)
        dp = tl.sum(do[:, None, :] * v[None, :, :], axis=2)  # (i, j)
        ds = p * (dp - tl.sum(dp * p, axis=1)[:, None])  # the softmax's backward
        dq = tl.sum(ds[:, :, None] * k[None, :, :], axis=1) * scale  # (i, head_dim)
        dk = tl.sum(ds[:, :, None] * q[:, None, :], axis=0)  # (j, head_dim); q is scaled
        at = grad_qkv + g * r_g + h * r_h + rows[:, None] * r_l + cols[None, :]
        kind = grad_qkv.dtype.element_ty
        tl.store(at, dq.to(kind), mask=mask)
        tl.store(at + r_c, dk.to(kind), mask=mask)
        tl.store(at + 2 * r_c, dv.to(kind), mask=mask)

    def _block(length: int) -> int:
        # Tiles are a power of two long (tl.arange); a group of 1 runs as a padded tile of 2,
        # the size the interpreter tests check.
        return max(2, triton.next_power_of_2(length))

    @torch.library.custom_op("timesformer::short_group_attention", mutates_args=())
    def _attention(qkv: Tensor, scale: float) -> Tensor:
        g, length, _, heads, head_dim = qkv.shape
        out = qkv.new_empty(g, length, heads, head_dim)
        if out.numel():
            _forward_kernel[(g * heads,)](
                qkv, out, length, heads, scale,
                *qkv.stride()[:4], *out.stride()[:3],
                BLOCK_L=_block(length), HEAD_DIM=head_dim, num_warps=warps(length, False),
            )  # fmt: skip
        return out

    @_attention.register_fake
    def _attention_shape(qkv: Tensor, scale: float) -> Tensor:
        g, length, _, heads, head_dim = qkv.shape
        return qkv.new_empty(g, length, heads, head_dim)

    @torch.library.custom_op("timesformer::short_group_attention_backward", mutates_args=())
    def _attention_backward(qkv: Tensor, grad_out: Tensor, scale: float) -> Tensor:
        g, length, _, heads, head_dim = qkv.shape
        grad_qkv = qkv.new_empty(qkv.shape)
        if grad_qkv.numel():
            _backward_kernel[(g * heads,)](
                qkv, grad_out, grad_qkv, length, heads, scale,
                *qkv.stride()[:4], *grad_out.stride()[:3], *grad_qkv.stride()[:4],
                BLOCK_L=_block(length), HEAD_DIM=head_dim, num_warps=warps(length, True),
            )  # fmt: skip
        return grad_qkv

    @_attention_backward.register_fake
    def _attention_backward_shape(qkv: Tensor, grad_out: Tensor, scale: float) -> Tensor:
        return qkv.new_empty(qkv.shape)

    def _setup_context(ctx, inputs, output) -> None:
        qkv, scale = inputs
        ctx.save_for_backward(qkv)
        ctx.scale = scale

    def _backward(ctx, grad_out: Tensor):
        (qkv,) = ctx.saved_tensors
        grad_out = grad_out.contiguous() if grad_out.stride(-1) != 1 else grad_out
        return _attention_backward(qkv, grad_out, ctx.scale), None

    _attention.register_autograd(_backward, setup_context=_setup_context)


def short_group_attention(qkv: Tensor, scale: float) -> Tensor:
    """Softmax attention within each group: (G, L, 3, heads, head_dim) -> (G, L, heads,
    head_dim), q, k and v at index 0, 1, 2 of the third axis; ``applies(qkv)`` must hold.

    Computes in fp32 registers and returns ``qkv``'s dtype; differentiable in ``qkv``. For
    fp32 input, groups of 9-16 tokens may come out at about TF32 precision on a GPU (see
    the backend's ``short_group_dtypes``), which is why the attention layer uses it for bf16
    and fp16 only.
    """
    if not applies(qkv):
        raise ValueError(
            f"short_group_attention takes (G, L <= {MAX_LEN}, 3, heads, head_dim a power of two "
            f"in 16..128) with Triton installed; got {tuple(qkv.shape)} {qkv.dtype}"
        )
    if qkv.stride(-1) != 1:
        qkv = qkv.contiguous()
    return _attention(qkv, float(scale))
