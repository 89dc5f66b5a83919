"""Int8 linear products by two oneDNN routes: the one the library uses, and the one that stays.

``--precision int8`` runs each product through ``torch.ops.quantized.linear_dynamic`` (weights as
``torch.qint8`` tensors, each input quantised inside the kernel). Torch 2.13 deprecates those
quantized dtypes (pytorch/pytorch#184982). The route without them is
``torch.ops.onednn.qlinear_pointwise`` on plain int8 tensors, which needs each input quantised
beforehand (here in eager mode: its range, then one pass to uint8 with a zero point) and can fuse
GELU into the product. This script measures both on each linear shape of TimeSformer-Base (1569
tokens of 768), the same per-channel int8 weights, alternating rep by rep, and the outputs' cosine
to the fp32 product, so that the move can be planned on numbers. It changes nothing in the library.

    .venv/bin/python benchmarks/bench_int8_routes.py
"""

from __future__ import annotations

import argparse
import platform
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_int8 import TOKENS, cosine, median_ms
from torch import Tensor

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {  # name: (in, out, GELU after it)
    "qkv": (768, 2304, False),
    "proj": (768, 768, False),
    "fc1 + GELU": (768, 3072, True),
    "fc2": (3072, 768, False),
}


def quantize_input(x: Tensor) -> tuple[Tensor, float, int]:
    """Per-tensor asymmetric uint8, as the dynamic kernel quantises its input: (q, scale, zero)."""
    lo, hi = torch.aminmax(x)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255 or 1.0
    zero = round(-lo / scale)
    return x.div(scale).round_().add_(zero).clamp_(0, 255).to(torch.uint8), scale, zero


def routes(fan_in: int, fan_out: int, gelu: bool) -> tuple[dict, Tensor]:
    """The two routes' products for one shape, on the same int8 weights; and the fp32 output."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, fan_in, generator=gen)
    w = torch.randn(fan_out, fan_in, generator=gen) * 0.02
    b = torch.randn(fan_out, generator=gen) * 0.01
    scale = w.abs().amax(1).clamp_min(1e-12) / 127
    w8 = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    zeros = torch.zeros(fan_out, dtype=torch.long)

    torch.backends.quantized.engine = "onednn"
    with warnings.catch_warnings():  # the deprecation this script is about
        warnings.simplefilter("ignore")
        qw = torch._make_per_channel_quantized_tensor(w8, scale.double(), zeros, 0)
        packed = torch.ops.quantized.linear_prepack(qw, b)

    def dynamic() -> Tensor:
        out = torch.ops.quantized.linear_dynamic(x, packed, False)
        return F.gelu(out) if gelu else out

    w_packed = torch.ops.onednn.qlinear_prepack(w8, [TOKENS, fan_in])

    def pointwise() -> Tensor:
        q, s, z = quantize_input(x)
        post, algorithm = ("gelu", "none") if gelu else ("none", "")
        return torch.ops.onednn.qlinear_pointwise(
            q, s, z, w_packed, scale, zeros, b, 1.0, 0, torch.float32, post, [], algorithm
        )

    reference = F.linear(x, w, b)
    return {"dynamic": dynamic, "pointwise": pointwise}, F.gelu(reference) if gelu else reference


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=40, help="timed reps per route (40)")
    parser.add_argument("--out", default=str(RESULTS / "int8_routes_cpu.md"))
    args = parser.parse_args()
    lines = [
        "# Int8 products: `quantized.linear_dynamic` (used) against `onednn.qlinear_pointwise`",
        "",
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; {TOKENS} tokens; medians of {args.reps} alternating reps.",
        "",
        "| product | linear_dynamic (ms) | qlinear_pointwise (ms) | pointwise vs dynamic | "
        "cosine to fp32: dynamic, pointwise |",
        "|---|---:|---:|---:|---:|",
    ]
    total = {"dynamic": 0.0, "pointwise": 0.0}
    for name, (fan_in, fan_out, gelu) in SHAPES.items():
        fns, reference = routes(fan_in, fan_out, gelu)
        ms = median_ms(fns, args.reps)
        for k in total:
            total[k] += ms[k]
        cos = ", ".join(f"{cosine(fn(), reference):.5f}" for fn in fns.values())
        lines.append(
            f"| {name} ({fan_in} -> {fan_out}) | {ms['dynamic']:.2f} | {ms['pointwise']:.2f} | "
            f"{ms['dynamic'] / ms['pointwise']:.2f}x | {cos} |"
        )
        print(lines[-1], flush=True)
    lines += [
        f"| one block's four | {total['dynamic']:.2f} | {total['pointwise']:.2f} | "
        f"{total['dynamic'] / total['pointwise']:.2f}x | |",
        "",
        '"fc1 + GELU": the dynamic route\'s product then `F.gelu`; the pointwise route fuses the '
        "exact GELU into the product. The pointwise route's times include quantising the input "
        "in eager mode (`aminmax`, then one chain of in-place passes to uint8).",
        "",
        "Command: `.venv/bin/python benchmarks/bench_int8_routes.py`",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
