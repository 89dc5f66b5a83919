"""Whether TF32 explains the short-group kernel's fp32 miss on a GPU, checked on the CPU.

On an H200 (results/cuda_tests_gpu.md, 2026-11-27) the tiny local_global model in fp32 missed
the CPU's logits by up to 5.5e-4, 11 of 15 beyond the test's 1e-4 tolerance, with the Triton
kernel for short groups (layers/short_groups.py) taking its groups of 9 and 16 tokens; the
fused-against-plain test of the same scheme in fp32 passed. The suspected cause: Triton turns
the kernel's ``sum(p[:, :, None] * v[None, :, :], 1)`` into a tensor-core product once the
tile is 16 rows long, and runs it on TF32 inputs (fp32 cut to 10 mantissa bits).

This script runs both GPU tests' setups on the CPU with a stand-in for the kernel that computes
its attention in fp32 but cuts p and v to TF32 before that product for groups over 8 tokens
(truncated, as the tensor cores' conversion does, or rounded to nearest), and prints the same
figures the GPU tests check. Runs in seconds:

    .venv/bin/python benchmarks/emulate_tf32_short_groups.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import timesformer.layers.attention as attention
from helpers import clip, randomize, tiny
from timesformer.layers import short_groups
from timesformer.layers.attention import set_fused_attention


def to_tf32(x: torch.Tensor, rounding: str) -> torch.Tensor:
    """fp32 with the low 13 of its 23 mantissa bits cleared (``trunc``) or rounded (``nearest``)."""
    bits = x.contiguous().view(torch.int32)
    if rounding == "nearest":
        bits = bits + 0x1000
    return (bits & ~0x1FFF).view(torch.float32)


def stand_in(rounding: str | None):
    """The kernel's attention, (G, L, 3, heads, head_dim) -> (G, L, heads, head_dim), in fp32,
    with p and v cut to TF32 before their product for groups of 9-16 tokens."""

    def attend(qkv: torch.Tensor, scale: float) -> torch.Tensor:
        q, k, v = qkv.float().permute(2, 0, 3, 1, 4).unbind(0)  # each (G, heads, L, head_dim)
        p = ((q * scale) @ k.transpose(-2, -1)).softmax(-1)
        if rounding and qkv.shape[1] > 8:
            p, v = to_tf32(p, rounding), to_tf32(v, rounding)
        return (p @ v).transpose(1, 2).to(qkv.dtype)

    return attend


def compare(a: torch.Tensor, b: torch.Tensor) -> str:
    close = torch.isclose(a, b, rtol=1e-4, atol=1e-4)
    diff = (a - b).abs().max().item()
    return f"max abs diff {diff:.2e}, {(~close).sum().item()} of {a.numel()} beyond 1e-4"


def emulate() -> None:
    """Print the table: both tests' figures with the kernel's p and v in fp32 and cut to TF32."""
    # The CPU stands in for a CUDA device, and fp32 is handed to the stand-in.
    attention._kernel_device = lambda qkv: True
    attention.SHORT_GROUP_KERNEL_DTYPES = (torch.float32,)
    short_groups.applies = lambda qkv: qkv.shape[1] <= short_groups.MAX_LEN
    short_groups.unavailable = lambda *key: None
    print(
        "| kernel's p, v | logits test (eval, seed 3, 3 clips) "
        "| fused vs plain (train, seed 5, 2 clips) |"
    )
    print("|---|---|---|")
    for rounding in (None, "nearest", "trunc"):
        short_groups.short_group_attention = stand_in(rounding)
        # test_every_scheme_gives_the_cpu_logits_on_cuda: the kernel against the library's path.
        model, x = randomize(tiny("local_global"), seed=3), clip(b=3)
        outs = []
        for on in (False, True):
            attention.CUDA_SHORT_GROUP_KERNEL = on
            with torch.no_grad():
                outs.append(model(x))
        logits = compare(outs[1], outs[0])
        # test_fused_and_plain_attention_agree_on_cuda_forward_and_backward, its forward.
        model, x = randomize(tiny("local_global"), seed=5).train(), clip(b=2)
        attention.CUDA_SHORT_GROUP_KERNEL = True
        outs = []
        for fused in (True, False):
            set_fused_attention(model, fused)
            outs.append(model(x).detach())
        name = {None: "fp32", "nearest": "TF32, rounded", "trunc": "TF32, truncated"}[rounding]
        print(f"| {name} | {logits} | {compare(outs[0], outs[1])} |")


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    # The stand-ins replace library globals: put them back, for callers in the same process.
    saved = [
        (attention, "_kernel_device"),
        (attention, "SHORT_GROUP_KERNEL_DTYPES"),
        (attention, "CUDA_SHORT_GROUP_KERNEL"),
        (short_groups, "applies"),
        (short_groups, "unavailable"),
        (short_groups, "short_group_attention"),
    ]
    values = [getattr(module, name) for module, name in saved]
    try:
        emulate()
    finally:
        for (module, name), value in zip(saved, values, strict=True):
            setattr(module, name, value)


if __name__ == "__main__":
    main()
