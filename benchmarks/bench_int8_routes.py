"""Int8 linear products by two oneDNN routes: the default one, and the one that stays.

``--precision int8`` runs each product through ``torch.ops.quantized.linear_dynamic`` where the
build has it (weights as ``torch.qint8`` tensors, each input quantised inside the kernel). Torch
2.13 deprecates those quantized dtypes (pytorch/pytorch#184982). The route without them is
``torch.ops.onednn.qlinear_pointwise`` on plain int8 tensors, which needs each input quantised
beforehand (in eager mode: its range, then one pass to uint8 with a zero point) and can fuse GELU
into the product. The library has both (``timesformer.layers.linear.INT8_ROUTE``). This script
runs the library's int8 product on each route for each linear shape of TimeSformer-Base (1569
tokens of 768), alternating rep by rep, and the outputs' cosine to the fp32 product.

    .venv/bin/python benchmarks/bench_int8_routes.py
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_int8 import TOKENS, cosine, median_ms
from torch import Tensor, nn

import timesformer
from timesformer.layers import linear as linear_module
from timesformer.layers import quantize_int8

RESULTS = Path(__file__).resolve().parent / "results"
ROUTES = ("dynamic", "pointwise")
SHAPES = {  # name: (in, out, GELU after it)
    "qkv": (768, 2304, False),
    "proj": (768, 768, False),
    "fc1 + GELU": (768, 3072, True),
    "fc2": (3072, 768, False),
}


def on_route(route: str, fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
    """``fn`` with the library's int8 products on ``route`` (set at each call: the runs
    alternate)."""

    def run() -> Tensor:
        linear_module.INT8_ROUTE = route
        return fn()

    return run


def routes(fan_in: int, fan_out: int, gelu: bool) -> tuple[dict, Tensor]:
    """The library's int8 product (``layers.linear.linear`` on a module marked by
    ``quantize_int8``) on each route for one shape, and the fp32 output."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, fan_in, generator=gen)
    w = torch.randn(fan_out, fan_in, generator=gen) * 0.02
    b = torch.randn(fan_out, generator=gen) * 0.01
    owner = nn.Module()
    quantize_int8(owner)

    reference = F.linear(x, w, b)
    fns = {r: on_route(r, lambda: linear_module.linear(x, w, b, owner, gelu=gelu)) for r in ROUTES}
    return fns, F.gelu(reference) if gelu else reference


@torch.no_grad()
def model_rows(reps: int) -> list[str]:
    """TimeSformer-Base, divided, 8 x 224, batch 1, random weights: int8 on each route beside
    bf16 weights, alternating rep by rep; the logits' cosine to fp32."""
    torch.manual_seed(0)
    make = timesformer.create_model
    model = make("timesformer_base", attention="divided", num_classes=400).eval()
    bf16 = make("timesformer_base", attention="divided", num_classes=400).eval()
    bf16.load_state_dict(model.state_dict())
    bf16.to(torch.bfloat16)
    x = torch.randn(1, 3, 8, 224, 224, generator=torch.Generator().manual_seed(1))
    reference = model(x)
    quantize_int8(model)

    fns = {"bf16": lambda: bf16(x.bfloat16()), **{r: on_route(r, lambda: model(x)) for r in ROUTES}}
    cos = {k: cosine(f().float(), reference) for k, f in fns.items()}
    ms = median_ms(fns, reps)
    return [
        "",
        f"TimeSformer-Base, divided, 8 x 224, batch 1 (medians of {reps} alternating reps):",
        "",
        "| | ms | vs bf16 weights | logits' cosine to fp32 |",
        "|---|---:|---:|---:|",
        *(
            f"| {what} | {ms[k]:.0f} | {ms['bf16'] / ms[k]:.2f}x | {cos[k]:.5f} |"
            for k, what in (
                ("bf16", "bf16 weights"),
                ("dynamic", "int8, linear_dynamic"),
                ("pointwise", "int8, qlinear_pointwise"),
            )
        ),
    ]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=40, help="timed reps per route (40)")
    parser.add_argument("--model-reps", type=int, default=6, help="reps of the model (6)")
    parser.add_argument("--out", default=str(RESULTS / "int8_routes_cpu.md"))
    args = parser.parse_args()
    missing = [r for r in ROUTES if not linear_module._INT8_ROUTES[r]]
    if missing:
        raise SystemExit(f"this torch build lacks the int8 kernels of: {', '.join(missing)}")
    lines = [
        "# Int8 products: `quantized.linear_dynamic` (the default) against "
        "`onednn.qlinear_pointwise`",
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
    model = model_rows(args.model_reps)
    print("\n".join(model), flush=True)
    lines += [
        f"| one block's four | {total['dynamic']:.2f} | {total['pointwise']:.2f} | "
        f"{total['dynamic'] / total['pointwise']:.2f}x | |",
        *model,
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
