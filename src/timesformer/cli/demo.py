"""``timesformer demo``: the paper's main finding in miniature, on this machine."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from timesformer.errors import ConfigError
from timesformer.names import PAPER_SCHEMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train all five attention schemes on the synthetic motion set (CPU)",
        description=(
            "Generate the synthetic motion set (classes in time-reversal pairs), train a small "
            "TimeSformer with each attention scheme from scratch, evaluate each with 1 clip x 3 "
            "crops, and print a table in the form of the paper's Table 1 with the accuracy "
            "within each pair, where only frame order separates the classes (chance 50%). "
            "Writes runs, plots (summary.png, curves, confusion matrices) and results.md to --out."
        ),
    )
    p.add_argument("--out", default="runs/demo", help="output folder (runs/demo)")
    p.add_argument("--quick", action="store_true", help="fewer clips and epochs (a few minutes)")
    p.add_argument(
        "--schemes", default=",".join(PAPER_SCHEMES), help="comma-separated schemes (all five)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from timesformer.demo import HEADER, DemoSettings, format_row, run_demo
    from timesformer.schemes import ATTENTION_SCHEMES

    schemes = tuple(s.strip() for s in args.schemes.split(",") if s.strip())
    unknown = [s for s in schemes if s not in ATTENTION_SCHEMES]
    if not schemes:
        raise ConfigError(f"--schemes names no scheme; choose from {', '.join(ATTENTION_SCHEMES)}")
    if unknown:
        raise ConfigError(
            f"--schemes: unknown scheme(s) {', '.join(unknown)}; choose from "
            f"{', '.join(ATTENTION_SCHEMES)}"
        )
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    make = DemoSettings.quick if args.quick else DemoSettings
    settings = make(
        out=Path(args.out), schemes=schemes, seed=args.seed, progress=not args.no_progress
    )
    start = time.perf_counter()
    results = run_demo(settings)
    print()
    print(HEADER)
    for r in results:
        print(format_row(r))
    print(
        f"\n{len(results)} schemes in {time.perf_counter() - start:.0f} s; "
        f"report: {settings.out / 'results.md'}, plot: {settings.out / 'summary.png'}"
    )
    return 0
