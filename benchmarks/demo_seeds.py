"""How much the demo's divided result depends on the seed and on the float path of training.

Runs the demo's divided model (``timesformer demo --schemes divided``) for several seeds, with
training as shipped and, for comparison, with the last block computing the cls token alone in
training too (``forward_tokens(x, cls_only=True)``): the same logits and gradients to float
rounding, another order of sums. Writes a Markdown table.

    .venv/bin/python benchmarks/demo_seeds.py --seeds 0,1,2   # results/demo_seeds.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_model import write_result

from timesformer.demo import DemoSettings, run_demo
from timesformer.model import TimeSformer


def _cls_only_always(self: TimeSformer, x: torch.Tensor) -> torch.Tensor:
    tokens, grid = self.forward_tokens(x, cls_only=True)
    return self.norm(self.scheme.pool(tokens, grid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    parser.add_argument("--work", default="runs/demo_seeds", help="folder for data and runs")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    shipped = TimeSformer.forward_features
    rows = []
    t0 = time.perf_counter()
    for seed in seeds:
        for mode in ("as shipped", "cls-only last block in training"):
            TimeSformer.forward_features = shipped if mode == "as shipped" else _cls_only_always
            try:
                out = Path(args.work) / f"seed{seed}"
                (r,) = run_demo(
                    DemoSettings(out=out, schemes=("divided",), seed=seed, progress=False),
                    log=lambda *_: None,
                )
            finally:
                TimeSformer.forward_features = shipped
            rows.append((seed, mode, r))
            print(seed, mode, f"{r.clip_top1:.1%}", flush=True)
    lines = [
        "# The demo's divided model over seeds and float paths",
        "",
        "`timesformer demo --schemes divided --seed N` (the synthetic motion set, 12 epochs, "
        "fp32), trained as shipped and with the last block computing the cls token alone in "
        "training (the same logits and gradients up to float rounding). Accuracy on the "
        "validation clips, 1 clip x 3 crops.",
        "",
        "| seed | training | clip top-1 | pair found | direction |",
        "|---:|---|---:|---:|---:|",
        *(
            f"| {seed} | {mode} | {r.clip_top1:.1%} | {r.pair_found:.1%} | {r.direction:.1%} |"
            for seed, mode, r in rows
        ),
        "",
        f"Ran in {time.perf_counter() - t0:.0f} s. Command: "
        f"`.venv/bin/python benchmarks/demo_seeds.py --seeds {args.seeds}`",
    ]
    write_result("\n".join(lines) + "\n", "demo_seeds.md", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
