"""Experiment: fewer regrouping copies in one divided block's bf16 training step.

One TimeSformer-Base divided block (8 x 224 grid, batch 1), forward and backward under bf16
autocast, with the library's switches for the experiment of this commit off and on, alternating
rep by rep:

- ``split``: ``timesformer.layers.attention.SPLIT_HEADS_IN_ONE_PASS``, q, k and v's gradients
  written into the fused qkv layout in one pass;
- ``views``: ``timesformer.schemes.base.GROUP_VIEWS``, regrouped results added to the patch
  tokens where they lie and the cls copies joined to the spatial groups in one copy.

Checks first that each setting gives the block's output and every gradient bit for bit, then
reports the median times and the per-rep ratios against both switches off.

    .venv/bin/python benchmarks/bench_block.py --reps 40
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_model import write_result

import timesformer.layers.attention as attention
import timesformer.schemes.base as base
from timesformer.schemes.base import Grid
from timesformer.schemes.divided import DividedBlock

SETTINGS = {"off": (False, False), "split": (True, False), "split + views": (True, True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    block = DividedBlock(768, 12).train()
    with torch.no_grad():
        block.temporal_fc.weight.normal_(0, 0.02)
    grid = Grid(8, 14, 14)
    x = torch.randn(1, 1 + grid.n * grid.t, 768, requires_grad=True)
    upstream = torch.randn_like(x)

    def run(name: str) -> list[torch.Tensor]:
        attention.SPLIT_HEADS_IN_ONE_PASS, base.GROUP_VIEWS = SETTINGS[name]
        with torch.autocast("cpu", torch.bfloat16):
            y = block(x, grid)
        y.backward(upstream)
        out = [y.detach(), x.grad, *(p.grad for p in block.parameters())]
        block.zero_grad(set_to_none=True)
        x.grad = None
        return out

    ref = run("off")
    identical = {
        n: all(torch.equal(a, b) for a, b in zip(ref, run(n), strict=True)) for n in SETTINGS
    }
    times: dict[str, list[float]] = {n: [] for n in SETTINGS}
    for i in range(args.reps):
        order = list(SETTINGS) if i % 2 else list(SETTINGS)[::-1]
        for name in order:
            t0 = time.perf_counter()
            run(name)
            times[name].append(time.perf_counter() - t0)
    lines = [
        "# Experiment: fewer regrouping copies, one divided block's bf16 training step",
        "",
        f"TimeSformer-Base divided block, 8 x 224 grid, batch 1, forward + backward under bf16 "
        f"autocast; {args.reps} reps, settings alternating rep by rep (order reversed every "
        f"other rep). torch {torch.__version__}, {torch.get_num_threads()} threads.",
        "",
        "| setting | bit-identical to off | median (ms) | off / setting, per rep: median "
        "(quartiles) |",
        "|---|---|---:|---:|",
    ]
    for name in SETTINGS:
        ratios = [a / b for a, b in zip(times["off"], times[name], strict=True)]
        lo, mid, hi = statistics.quantiles(ratios, n=4)
        lines.append(
            f"| {name} | {'yes' if identical[name] else 'NO'} | "
            f"{statistics.median(times[name]) * 1e3:.1f} | {mid:.3f} ({lo:.3f}-{hi:.3f}) |"
        )
    lines += ["", f"Command: `.venv/bin/python benchmarks/bench_block.py --reps {args.reps}`"]
    write_result("\n".join(lines) + "\n", "block_copies_cpu.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
