"""Linear layers that run on oneDNN's prepacked weights at CPU inference.

``F.linear`` on the CPU multiplies with the weight as stored, every call. oneDNN can reorder a
weight once into the blocked layout its matrix-product kernels read fastest, and fuse an
activation into the product, which makes inference's linear layers faster in fp32 and bf16
(measured in docs/performance.md, "Prepacked linear layers"). The reordered copy is cached for
the module with an alias of the weight it came from: a weight changed in place (its version
counter) or replaced (another storage; the alias keeps the old one from being reused at the
same address) is reordered again. Under bf16 autocast it computes in bf16 on a reordered bf16
copy, as autocast's ``F.linear`` would. Training, autograd, fp16 autocast, other devices,
``torch.compile`` (which does its own packing), ``torch.export`` and ``torch.jit.trace`` use
``F.linear`` unchanged.

The cache holds a second copy of each weight, in the dtype of the product (fp32 weights under
autocast: a bf16 copy). ``set_backend(pack_cpu_linears=False)`` (``layers.backend``) turns the
path off.

Optionally (``quantize_int8``), the products of a module run in int8 at CPU inference: dynamic
quantisation, as ``torch.ao``'s ``quantize_dynamic`` does it, but through this module's cache, so
that every product the model makes is covered (the folded linears and the cls-only block's split
qkv too) and the fp32 weights stay in the model, untouched. Each weight is quantised once per
output channel (symmetric, scale max|w| / 127) and packed by oneDNN (about a quarter of the fp32
weights' size); each input is quantised per tensor (asymmetric uint8) as it arrives. On CPUs
with AVX-512 VNNI that beats bf16 weights (docs/performance.md, "Int8, optional"). Two sets of
kernels do it (the backend's ``int8_route``): by default PyTorch's quantized ones, which
quantise the input inside the kernel but whose quantized dtypes torch 2.13 deprecates
(pytorch/pytorch#184982); and, where a build lacks those or on request, oneDNN's int8 product
on plain int8 tensors, the input quantised here first (``quantize_rows``) and GELU fused into
the product, which is a little slower. Where a build has neither, ``quantize_int8`` says so.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timesformer.layers.backend import INT8_ROUTES, get_backend

T = TypeVar("T")
# Set on every module ``quantize_int8`` marks; ``linear`` reads it from the product's owner.
INT8_ATTR = "_int8_products"
# oneDNN's engine: the one with VNNI kernels.
_INT8_ENGINE = "onednn"

# Tensors derived from a module's weights (reordered weights, folded linears), kept per module
# outside it: oneDNN's opaque tensors cannot be copied or pickled, so keeping them in the module
# would break copy.deepcopy and torch.save of a model that has run. They go when the module goes.
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

_HAS_KERNELS = (
    hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    and torch.backends.mkldnn.is_available()
)


def in_graph() -> bool:
    """Whether this code is being traced into a graph (``torch.compile``, ``torch.export``,
    ``torch.jit.trace``) rather than run eagerly: the eager-only fast paths step aside there,
    as graphs keep portable ops and the compiler fuses what they would save."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def compute_dtype(x: Tensor, weight: Tensor) -> torch.dtype | None:
    """The dtype ``linear(x, weight, ...)`` computes in on the prepacked path, or None where it
    takes ``F.linear``. Under bf16 autocast that is bf16, as autocast's own ``F.linear``."""
    if not (
        get_backend().pack_cpu_linears
        and _HAS_KERNELS
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        # Traced or exported graphs keep the portable F.linear.
        and not in_graph()
        and x.numel() > 0
    ):
        return None
    low = (torch.float32, torch.bfloat16)
    if torch.is_autocast_enabled("cpu"):
        bf16 = torch.get_autocast_dtype("cpu") == torch.bfloat16
        return torch.bfloat16 if bf16 and x.dtype in low and weight.dtype in low else None
    return x.dtype if x.dtype == weight.dtype and x.dtype in low else None


def int8_applies(x: Tensor, weight: Tensor, owner: nn.Module) -> bool:
    """Whether ``linear(x, weight, ..., owner)`` runs in int8: ``owner`` is marked by
    ``quantize_int8`` and this is an fp32 product at CPU inference, outside autocast and graphs."""
    return (
        getattr(owner, INT8_ATTR, False)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not in_graph()
        and x.numel() > 0
    )


def linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    owner: nn.Module,
    key: str = "weight",
    gelu: bool = False,
) -> Tensor:
    """``F.linear(x, weight, bias)`` (then exact GELU if ``gelu``): (..., K) -> (..., N).

    At CPU inference the product runs on ``weight`` reordered by oneDNN, cached for ``owner``
    under ``key``, with the GELU fused into it; or in int8 where ``owner`` was marked by
    ``quantize_int8``.
    """
    if int8_applies(x, weight, owner):
        out = _int8_linear(x.reshape(-1, x.shape[-1]), weight, bias, owner, key, gelu)
        if out is not None:
            return out.reshape(*x.shape[:-1], weight.shape[0])
    dtype = compute_dtype(x, weight)
    if dtype is None:
        out = F.linear(x, weight, bias)
        return F.gelu(out) if gelu else out
    rows = x.reshape(-1, x.shape[-1]).to(dtype)
    packed = _packed(owner, key, weight, dtype, rows.shape[0])
    out = torch.ops.mkldnn._linear_pointwise(
        rows,
        packed,
        None if bias is None else bias.to(dtype),
        "gelu" if gelu else "none",
        [],
        "none" if gelu else "",
    )
    return out.reshape(*x.shape[:-1], weight.shape[0])


def cached(
    owner: nn.Module, key: Hashable, sources: tuple[Tensor, ...], make: Callable[[], T]
) -> T:
    """``make()``, kept for ``owner`` under ``key`` until any of ``sources`` changes in place
    (its version counter) or is replaced (another storage: the detached aliases kept here hold
    the old one, so a new tensor cannot reuse its address and pass for it)."""
    cache = _CACHE.setdefault(owner, {})
    hit = cache.get(key)
    if (
        hit is not None
        and hit[1] == tuple(t._version for t in sources)
        and all(
            a.data_ptr() == t.data_ptr() and a.dtype == t.dtype and a.shape == t.shape
            for a, t in zip(hit[0], sources, strict=True)
        )
    ):
        return hit[2]
    value = make()
    cache[key] = (tuple(t.detach() for t in sources), tuple(t._version for t in sources), value)
    return value


def packed_weights(owner: nn.Module) -> dict:
    """What is cached for ``owner``: reordered weights keyed (name, dtype) once it has run the
    packed path, and for a block its folded linears keyed ("fold", step, dtype)."""
    return _CACHE.get(owner, {})


def _packed(owner: nn.Module, key: str, weight: Tensor, dtype: torch.dtype, rows: int) -> Tensor:
    # The row count is a hint for the layout; products with other row counts stay correct.
    return cached(
        owner,
        (key, dtype),
        (weight,),
        lambda: torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype), rows),
    )


def _int8_linear(
    rows: Tensor, weight: Tensor, bias: Tensor | None, owner: nn.Module, key: str, gelu: bool
) -> Tensor | None:
    """(M, K) fp32 rows -> (M, N) fp32 by int8 products on the backend's ``int8_route``; None
    where the rows are not finite (the float path then carries the NaN or inf, as F.linear
    would)."""
    route = get_backend().int8_route
    if route == "pointwise":
        quantised = quantize_rows(rows)
        if quantised is None:
            return None
        w8, scale, zero = cached(owner, (key, "int8", route), (weight,), lambda: _int8_pw(weight))
        post, algorithm = ("gelu", "none") if gelu else ("none", "")
        return torch.ops.onednn.qlinear_pointwise(
            *quantised, w8, scale, zero, bias, 1.0, 0, torch.float32, post, [], algorithm
        )
    # The packed int8 weight holds the bias too, so a new bias must repack it.
    sources = (weight,) if bias is None else (weight, bias)
    packed = cached(owner, (key, "int8", route), sources, lambda: _int8(weight, bias))
    # reduce_range=False: VNNI's dot products accumulate in int32, without the 16-bit
    # saturation that the reduced range guards against on older instruction sets.
    out = torch.ops.quantized.linear_dynamic(rows, packed, False)
    return F.gelu(out) if gelu else out


def quantize_rows(x: Tensor) -> tuple[Tensor, float, int] | None:
    """fp32 x -> (uint8 q, scale, zero point) with x ~ (q - zero) * scale: per tensor and
    asymmetric over x's range (widened to hold 0), as the dynamic kernel quantises its input.
    None where x holds NaN or inf."""
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255 or 1.0
    zero = min(255, max(0, round(-lo / scale)))
    # One chain of in-place passes after the division's new tensor.
    q = x.div(scale).round_().add_(zero).clamp_(0, 255).to(torch.uint8)
    return q, scale, zero


def _weight_scale(w: Tensor) -> Tensor:
    """(N, K) -> (N,) per-output-channel symmetric int8 scale, max|w| / 127."""
    return (w.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny)


def _int8_pw(weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(N, K) fp32 weight -> oneDNN's packed int8 weight, its (N,) scales and zero points."""
    w = weight.detach()
    scale = _weight_scale(w)
    w8 = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    return torch.ops.onednn.qlinear_prepack(w8, None), scale, zero


def _int8(weight: Tensor, bias: Tensor | None) -> object:
    """(N, K) fp32 weight -> oneDNN's packed int8 weight (per output channel, symmetric)."""
    w = weight.detach()
    scale = _weight_scale(w)
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        # torch 2.13 warns that quantized dtypes are deprecated; docs/performance.md says so, once.
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(w, scale.double(), zero, 0, torch.qint8)
    # The packed weight carries its engine; the process's choice is put back.
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = _INT8_ENGINE
    try:
        return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach())
    finally:
        torch.backends.quantized.engine = before


def quantize_int8(module: nn.Module, enabled: bool = True) -> None:
    """Run every linear product inside ``module`` in int8 at CPU inference, or, with
    ``enabled=False``, in float again. The weights are not changed: the int8 copies are made on
    first use and kept beside them, and made again when a weight changes. Training, autocast,
    bf16 weights, other devices and compiled, traced or exported graphs keep the float path.

    Raises:
        RuntimeError: this PyTorch build has no int8 kernels for oneDNN.
    """
    if enabled and not INT8_ROUTES.get(get_backend().int8_route or "", False):
        raise RuntimeError(
            "this PyTorch build has no oneDNN int8 linear kernels (torch.ops.quantized or "
            "torch.ops.onednn); use fp32 or bf16"
        )
    for m in module.modules():
        setattr(m, INT8_ATTR, enabled)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same keys) that takes the prepacked path at CPU
    inference."""

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_features) -> (..., out_features)."""
        return linear(x, self.weight, self.bias, self)
