"""Which kernels the layers run on: one settings object, one setter.

The model's arithmetic is fixed by its weights; *how* each product and each attention is
computed is a choice of kernels, made here for the whole process. The defaults are what measured
fastest (docs/performance.md names each measurement and its command). Change them with
``set_backend``, which returns the settings it replaced so that they can be put back::

    from timesformer.layers.backend import set_backend

    before = set_backend(pack_cpu_linears=False)
    ...
    set_backend(before)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend


def _int8_routes() -> dict[str, bool]:
    """The two sets of int8 kernels for linear products, and whether this build has each."""
    return {
        # PyTorch's quantized kernels on qint8 weights, the input quantised inside the kernel:
        # the faster of the two, on dtypes that torch 2.13 deprecates (pytorch/pytorch#184982).
        "dynamic": "onednn" in torch.backends.quantized.supported_engines
        and hasattr(torch.ops.quantized, "linear_dynamic")
        and hasattr(torch.ops.quantized, "linear_prepack")
        and hasattr(torch, "quantize_per_channel"),
        # oneDNN's int8 product on plain int8 tensors, the input quantised first: the route
        # without the deprecated dtypes, for builds that drop them.
        "pointwise": hasattr(torch.ops.onednn, "qlinear_pointwise")
        and hasattr(torch.ops.onednn, "qlinear_prepack")
        and torch.backends.mkldnn.is_available(),
    }


INT8_ROUTES = _int8_routes()


@dataclass(frozen=True)
class Backend:
    """The kernel choices of ``timesformer.layers``.

    Attributes:
        pack_cpu_linears: at CPU inference, run linear products on weights that oneDNN has
            reordered once into its fastest layout, with GELU fused (``layers.linear``).
        int8_route: the int8 kernels of ``quantize_int8``: ``"dynamic"`` or ``"pointwise"``;
            by default the first of the two this build has (None: neither).
        cpu_plain_max_len: on the CPU, bf16/fp16 sequences up to this length take the plain
            softmax path, which beats SDPA's flash kernel there; longer ones and fp32 take SDPA.
        cuda_plain_max_len: on a CUDA device, sequences up to this length take the plain path.
        cuda_sdpa_priority: SDPA's kernel order on a CUDA device; None keeps PyTorch's.
        short_group_kernel: on a CUDA device with Triton, groups of up to 16 tokens in bf16 or
            fp16 take ``layers.short_groups``' kernel.
        short_group_kernel_compiled: ``torch.compile``'d graphs take that kernel too.
        short_group_dtypes: the dtypes handed to it (fp32 would come out at TF32 precision).
        short_group_warps: warps per kernel program; None takes the measured choice.
    """

    pack_cpu_linears: bool = True
    int8_route: str | None = next((r for r, ok in INT8_ROUTES.items() if ok), None)
    cpu_plain_max_len: int = 512
    cuda_plain_max_len: int = 8
    cuda_sdpa_priority: tuple[SDPBackend, ...] | None = None
    short_group_kernel: bool = True
    short_group_kernel_compiled: bool = True
    short_group_dtypes: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16)
    short_group_warps: int | None = None


_current = Backend()


def get_backend() -> Backend:
    """The settings in force."""
    return _current


def set_backend(settings: Backend | None = None, /, **changes: object) -> Backend:
    """Put ``settings`` (or the current ones with ``changes``) in force; returns the previous.

    Raises:
        TypeError: a name that is not a ``Backend`` field.
        ValueError: an int8 route that is not one of ``INT8_ROUTES``.
    """
    global _current
    new = dataclasses.replace(settings or _current, **changes)
    if new.int8_route is not None and new.int8_route not in INT8_ROUTES:
        raise ValueError(f"int8_route must be one of {sorted(INT8_ROUTES)} or None")
    previous, _current = _current, new
    return previous
