"""Linear layers that run on oneDNN's prepacked weights at CPU inference.

``F.linear`` on the CPU multiplies with the weight as stored, every call. oneDNN can reorder a
weight once into the blocked layout its matrix-product kernels read fastest, and fuse an
activation into the product. For TimeSformer-Base's shapes on this project's CPU that made the
linear layers 1.37x faster in fp32 and 1.09x in bf16 (``benchmarks/bench_model.py --suite
linear``, results/linear_cpu.md). The reordered copy is cached for the module with an alias of the
weight it came from: a weight changed in place (its version counter) or replaced (another
storage; the alias keeps the old one from being reused at the same address) is reordered again.
Under bf16 autocast it computes in bf16 on a reordered bf16 copy, as autocast's ``F.linear``
would. Training, autograd, fp16 autocast, other devices, ``torch.compile`` (which does its own
packing), ``torch.export`` and ``torch.jit.trace`` use ``F.linear`` unchanged.

The cache holds a second copy of each weight: about 170 MiB for TimeSformer-Base in bf16, 340 MiB
in fp32 (fp32 weights under autocast: a bf16 copy). ``PACK_CPU_LINEARS = False`` turns the path off.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PACK_CPU_LINEARS = True
T = TypeVar("T")

# Tensors derived from a module's weights (reordered weights, folded linears), kept per module
# outside it: oneDNN's opaque tensors cannot be copied or pickled, so keeping them in the module
# would break copy.deepcopy and torch.save of a model that has run. They go when the module goes.
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

_HAS_KERNELS = (
    hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    and torch.backends.mkldnn.is_available()
)


def compute_dtype(x: Tensor, weight: Tensor) -> torch.dtype | None:
    """The dtype ``linear(x, weight, ...)`` computes in on the prepacked path, or None where it
    takes ``F.linear``. Under bf16 autocast that is bf16, as autocast's own ``F.linear``."""
    if not (
        PACK_CPU_LINEARS
        and _HAS_KERNELS
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        # Traced or exported graphs keep the portable F.linear.
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and x.numel() > 0
    ):
        return None
    low = (torch.float32, torch.bfloat16)
    if torch.is_autocast_enabled("cpu"):
        bf16 = torch.get_autocast_dtype("cpu") == torch.bfloat16
        return torch.bfloat16 if bf16 and x.dtype in low and weight.dtype in low else None
    return x.dtype if x.dtype == weight.dtype and x.dtype in low else None


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
    under ``key``, with the GELU fused into it.
    """
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


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same keys) that takes the prepacked path at CPU
    inference."""

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_features) -> (..., out_features)."""
        return linear(x, self.weight, self.bias, self)
