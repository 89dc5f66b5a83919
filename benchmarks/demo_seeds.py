"""How much the demo's divided result depends on the seed and on the float path of training.

Runs the demo's divided model (``timesformer demo --schemes divided``; another scheme with
``--scheme``) for several seeds, with
training as shipped (the last block computes the cls token alone) and, for comparison, with the
last block computing every token (``forward_tokens(x)``): the same logits and gradients to float
rounding, another order of sums. Writes a Markdown table.

    .venv/bin/python benchmarks/demo_seeds.py --seeds 0,1,2   # results/demo_seeds.md
    .venv/bin/python benchmarks/demo_seeds.py --scheme axial  # results/demo_seeds_axial.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from harness import command, machine, result, write_result

from timesformer.demo import DemoSettings, run_demo
from timesformer.engine import load_config, packaged_config
from timesformer.model import TimeSformer
from timesformer.schemes import ATTENTION_SCHEMES


def _full_last_block(self: TimeSformer, x: torch.Tensor) -> torch.Tensor:
    tokens, grid = self.forward_tokens(x, cls_only=False)
    return self.norm(self.scheme.pool(tokens, grid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    parser.add_argument(
        "--scheme", default="divided", choices=ATTENTION_SCHEMES, help="attention scheme (divided)"
    )
    parser.add_argument(
        "--set", default="", help='space-separated config overrides, e.g. "optim.epochs=12"'
    )
    parser.add_argument("--work", default="runs/demo_seeds", help="folder for data and runs")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    shipped = TimeSformer.forward_features
    rows = []
    t0 = time.perf_counter()
    for seed in seeds:
        for mode in ("as shipped", "full last block in training"):
            TimeSformer.forward_features = shipped if mode == "as shipped" else _full_last_block
            try:
                out = Path(args.work) / args.scheme / f"seed{seed}"
                (r,) = run_demo(
                    DemoSettings(
                        out=out,
                        schemes=(args.scheme,),
                        seeds=(seed,),
                        progress=False,
                        overrides=tuple(args.set.split()),
                    ),
                    log=lambda *_: None,
                )
            finally:
                TimeSformer.forward_features = shipped
            rows.append((seed, mode, r))
            print(seed, mode, f"{r.clip_top1:.1%}", flush=True)
    overrides = [f"optim.epochs={DemoSettings.epochs}", *args.set.split()]
    cfg = load_config([packaged_config("synthetic")], overrides)
    extra = f" with `{args.set}`" if args.set else ""
    cmd = command(
        "demo_seeds.py",
        f"--seeds {args.seeds}",
        f"--scheme {args.scheme}" if args.scheme != "divided" else "",
        f'--set "{args.set}"' if args.set else "",
        f"--out {args.out}" if args.out else "",
    )
    lines = [
        f"`timesformer demo --schemes {args.scheme} --seed N` (the synthetic motion set, the "
        f"`synthetic` config{extra}: {cfg.optim.epochs} epochs of batch {cfg.data.batch_size}, "
        "fp32), trained as shipped (the last block "
        "computes the cls token alone) and with the last block computing every token (the "
        "same logits and gradients up to float rounding, another order of sums). Accuracy on "
        "the validation clips, 1 clip x 3 crops.",
        "",
        "| seed | training | clip top-1 | pair found | direction |",
        "|---:|---|---:|---:|---:|",
        *(
            f"| {seed} | {mode} | {r.clip_top1:.1%} | {r.pair_found:.1%} | {r.direction:.1%} |"
            for seed, mode, r in rows
        ),
        "",
        f"Machine: {machine(torch.device('cpu'))}. Ran in {time.perf_counter() - t0:.0f} s.",
    ]
    name = "demo_seeds.md" if args.scheme == "divided" else f"demo_seeds_{args.scheme}.md"
    title = f"The demo's {args.scheme} model over seeds and float paths"
    write_result(result(title, cmd, lines), name, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
