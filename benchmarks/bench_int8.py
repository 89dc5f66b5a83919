"""Int8 linear products at CPU inference (``--precision int8``): what they gain, and cost.

``timesformer.layers.quantize_int8`` runs every linear product of a model (the folded and
cls-only products too) through oneDNN's int8 kernels, on weights quantised once per output
channel (symmetric, scale max|w| / 127); each input is quantised per tensor as it arrives.
Everything else stays fp32. ``--route`` picks the kernels (``Backend.int8_route`` in
``timesformer.layers.backend``): PyTorch's dynamic quantized kernel, the default where the build
has it, or ``onednn.qlinear_pointwise``; each route writes its own table.

- Linear products: each linear shape of TimeSformer-Base (1569 tokens), int8 against bf16 and
  fp32, both on the library's prepacked path.
- The model: TimeSformer-Base, divided, 8 x 224, batch 1, random weights: fp32 (the library's
  default), bf16 weights, int8; alternating rep by rep, medians; the logits' cosine similarity to
  fp32.
- With ``--checkpoint`` (and its run's ``config.yaml`` beside it, as ``timesformer train``
  writes), the trained model on its validation set by the test protocol (``evaluate``): video
  top-1 in fp32, bf16 and int8, and how often bf16 and int8 predict what fp32 predicts. For the
  demo's five models, after ``make demo``: ``--checkpoint runs/demo/*/best.safetensors``.

    .venv/bin/python benchmarks/bench_int8.py --checkpoint runs/demo/*/best.safetensors
    .venv/bin/python benchmarks/bench_int8.py --route pointwise --checkpoint runs/demo/*/best...

The first writes ``results/int8_cpu.md``, the second ``results/int8_pointwise_cpu.md`` (on an
Intel CPU: ``..._cpu_intel.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import (
    alternate,
    build_pair,
    command,
    copy_of,
    inputs,
    machine,
    machine_kind,
    result,
    write_result,
)
from torch import Tensor, nn

from timesformer.layers import linear as linear_module
from timesformer.layers import quantize_int8
from timesformer.layers.backend import INT8_ROUTES, get_backend, set_backend

TOKENS = 1569  # 1 + 196 x 8: one 8 x 224 clip


def median_ms(fns: dict, reps: int) -> dict[str, float]:
    """``harness.alternate`` (one warm-up each, then rep by rep in turn), in milliseconds."""
    return {k: 1e3 * v for k, v in alternate(fns, reps, torch.device("cpu")).items()}


def cosine(a: Tensor, b: Tensor) -> float:
    # In float64: summed in fp32 over millions of elements it can come out above 1.
    return F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


@torch.no_grad()
def products(reps: int) -> list[str]:
    owner = nn.Module()
    int8_owner = nn.Module()
    quantize_int8(int8_owner)
    lines = [
        "| product (1569 tokens) | fp32 (ms) | bf16 (ms) | int8 (ms) | int8 vs bf16 | "
        "int8 output's cosine to fp32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    g = torch.Generator().manual_seed(0)
    for name, k, n in (
        ("qkv", 768, 2304),
        ("proj, fold", 768, 768),
        ("fc1", 768, 3072),
        ("fc2", 3072, 768),
    ):
        x = torch.randn(TOKENS, k, generator=g)
        if name == "fc2":
            x = F.gelu(x)
        w = torch.randn(n, k, generator=g) * k**-0.5
        b = torch.randn(n, generator=g) * 0.02
        wb, xb = w.bfloat16(), x.bfloat16()
        fns = {
            "fp32": lambda x=x, w=w, b=b, n=name: linear_module.linear(x, w, b, owner, n),
            "bf16": lambda xb=xb, wb=wb, b=b, n=name: linear_module.linear(
                xb, wb, b.bfloat16(), owner, n + "16"
            ),
            "int8": lambda x=x, w=w, b=b, n=name: linear_module.linear(x, w, b, int8_owner, n),
        }
        t = median_ms(fns, reps)
        c = cosine(fns["int8"](), F.linear(x, w, b))
        lines.append(
            f"| {name} ({k} -> {n}) | {t['fp32']:.2f} | {t['bf16']:.2f} | {t['int8']:.2f} | "
            f"{t['bf16'] / t['int8']:.2f}x | {c:.5f} |"
        )
    return lines


@torch.no_grad()
def model_speed(reps: int) -> list[str]:
    """Ours in fp32, with bf16 weights and in int8, beside the peer in fp32 and under bf16
    autocast (``harness.build_pair``: the same random weights)."""
    ours, peer = build_pair("divided", 8, 224, torch.device("cpu"))
    bf16 = copy_of(ours, torch.bfloat16)
    quant = copy_of(ours)
    quantize_int8(quant)
    x, xp = inputs(8, 224, torch.device("cpu"))
    x16 = x.bfloat16()

    def peer_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return peer(pixel_values=xp).logits

    fns = {
        "fp32": lambda: ours(x),
        "bf16": lambda: bf16(x16),
        "int8": lambda: quant(x),
        "peer fp32": lambda: peer(pixel_values=xp).logits,
        "peer bf16": peer_bf16,
    }
    ref = fns["fp32"]()
    cos = {k: cosine(f(), ref) for k, f in fns.items()}
    t = median_ms(fns, reps)
    lines = [
        "| TimeSformer-Base, divided, 8 x 224, batch 1 | ms | vs our fp32 | vs our bf16 weights "
        "| vs the peer under bf16 autocast | logits' cosine to our fp32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, what in (
        ("fp32", "ours, fp32 (the default)"),
        ("bf16", "ours, bf16 weights"),
        ("int8", "ours, int8 products, the rest fp32"),
        ("peer fp32", "peer, fp32"),
        ("peer bf16", "peer, bf16 autocast"),
    ):
        lines.append(
            f"| {what} | {t[k]:.0f} | {t['fp32'] / t[k]:.2f}x | {t['bf16'] / t[k]:.2f}x | "
            f"{t['peer bf16'] / t[k]:.2f}x | {cos[k]:.5f} |"
        )
    return lines


def trained(checkpoints: list[Path]) -> list[str]:
    from timesformer.checkpoints import load_checkpoint
    from timesformer.engine.builders import build_dataset
    from timesformer.engine.config import load_config
    from timesformer.engine.evaluate import evaluate

    lines = [
        "| trained model, on its validation set | videos x views | video top-1: fp32 | bf16 "
        "weights | int8 | same prediction as fp32: bf16 | int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for checkpoint in checkpoints:
        config = checkpoint.parent / "config.yaml"
        if not config.is_file():
            raise SystemExit(f"{config}: not found (the run's config, beside the checkpoint)")
        dataset = build_dataset(load_config([config], []), "val", "test")
        scores = {}
        for what in ("fp32", "bf16", "int8"):
            model = load_checkpoint(checkpoint).eval()
            if what == "bf16":
                model = model.to(torch.bfloat16)
                cast = model.forward
                model.forward = lambda x, cast=cast: cast(x.bfloat16()).float()
            precision = "int8" if what == "int8" else "fp32"
            scores[what] = evaluate(model, dataset, precision=precision, progress=False)
        ref = scores["fp32"].scores.argmax(-1)
        top1 = [f"{100 * r.video_top1:.1f}%" for r in scores.values()]
        same = [
            f"{100 * (scores[k].scores.argmax(-1) == ref).float().mean().item():.1f}%"
            for k in ("bf16", "int8")
        ]
        r = scores["fp32"]
        lines.append(
            f"| {checkpoint} | {r.num_videos} x {r.num_views} | {' | '.join(top1)} | "
            f"{' | '.join(same)} |"
        )
    return lines


def _checkpoint_args(checkpoints: list[Path] | None) -> str:
    """``--checkpoint`` as the command states it: the demo's glob where it is the demo's."""
    if not checkpoints:
        return ""
    demo = "runs/demo/*/best.safetensors"
    if sorted(map(str, checkpoints)) == sorted(map(str, Path().glob(demo))):
        return f"--checkpoint {demo}"
    return "--checkpoint " + " ".join(map(str, checkpoints))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument(
        "--checkpoint", type=Path, nargs="+", default=None, help="trained models to score"
    )
    parser.add_argument(
        "--route",
        choices=tuple(INT8_ROUTES),
        default=get_backend().int8_route,
        help="int8 kernels (Backend.int8_route; default: the library's)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/")
    args = parser.parse_args()
    if not INT8_ROUTES.get(args.route or "", False):
        raise SystemExit(f"this torch build has no oneDNN int8 linear kernels for {args.route}")
    set_backend(int8_route=args.route)
    kernel = {
        "dynamic": "`torch.ops.quantized.linear_dynamic` (oneDNN engine)",
        "pointwise": "`torch.ops.onednn.qlinear_pointwise` (inputs quantised by the library)",
    }[args.route]
    cpu = torch.device("cpu")
    lines = [
        f"Machine: {machine(cpu)}. Medians of {args.reps} alternating reps. fp32 and bf16 run "
        "on the library's prepacked oneDNN products; int8 on "
        f"{kernel} through `quantize_int8`.",
        "",
        *products(args.reps * 3),
        "",
        *model_speed(args.reps),
    ]
    if args.checkpoint is not None:
        lines += ["", *trained(args.checkpoint)]
    default_route = next((r for r, ok in INT8_ROUTES.items() if ok), None)
    route = "" if args.route == default_route else f"_{args.route}"
    cmd = command(
        "bench_int8.py",
        f"--route {args.route}" if route else "",
        f"--reps {args.reps}" if args.reps != 6 else "",
        _checkpoint_args(args.checkpoint),
    )
    title = "Int8 linears at CPU inference" + (f", {args.route} route" if route else "")
    write_result(result(title, cmd, lines), f"int8{route}_{machine_kind(cpu)}.md", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
