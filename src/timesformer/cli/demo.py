"""``timesformer demo``: the paper's main finding in miniature, on this machine."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from timesformer.errors import ConfigError
from timesformer.names import PAPER_SCHEMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the paper's Tables 1, 4 and 8 in miniature, trained on the CPU",
        description=(
            "Table 1 (the default): generate the synthetic motion set (classes in time-reversal "
            "pairs), train a small TimeSformer with each attention scheme from scratch, evaluate "
            "each with 1 clip x 3 crops, and print the accuracy within each pair, where only "
            "frame order separates the classes (chance 50%). --table 4 trains divided attention "
            "with and without its time and space position embeddings; --table 8 trains on long "
            "videos whose class is the order of two events far apart, with 8, 32 and 96 frames "
            "over the whole video, against short windows averaged (out: runs/demo_long). "
            "--seeds trains every row once per seed and prints the mean and range. Writes runs, "
            "plots (summary.png, curves, confusion matrices) and results.md to --out."
        ),
    )
    p.add_argument("--out", default="runs/demo", help="output folder (runs/demo)")
    p.add_argument(
        "--table",
        type=int,
        choices=(1, 4, 8),
        default=1,
        help="1: attention schemes (default); 4: position embeddings; 8: long-term modelling",
    )
    p.add_argument("--quick", action="store_true", help="fewer clips and epochs (a few minutes)")
    p.add_argument(
        "--schemes",
        default=None,
        help="comma-separated schemes: table 1's rows (all five), table 8's (divided,joint)",
    )
    p.add_argument(
        "--pos-embeds",
        default="space_time,space,none",
        help="comma-separated position embeddings for table 4 (space_time,space,none)",
    )
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S,...",
        help="comma-separated training seeds; every seed trains on the same data set (0)",
    )
    p.add_argument("--seed", type=int, default=None, help="one training seed (same as --seeds S)")
    p.add_argument(
        "--event-seconds",
        default=None,
        metavar="LO,HI",
        help="table 8: how long each flash lasts, drawn in [LO, HI] seconds (1,1.5)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every run, e.g. --set optim.epochs=30 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _seeds(args: argparse.Namespace) -> tuple[int, ...]:
    if args.seeds is not None and args.seed is not None:
        raise ConfigError("give --seeds or --seed, not both")
    if args.seeds is None:
        return (args.seed if args.seed is not None else 0,)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    if not seeds:
        raise ConfigError("--seeds names no seed")
    return tuple(dict.fromkeys(seeds))


def _schemes(spec: str) -> tuple[str, ...]:
    from timesformer.schemes import ATTENTION_SCHEMES

    schemes = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in schemes if s not in ATTENTION_SCHEMES]
    if not schemes:
        raise ConfigError(f"--schemes names no scheme; choose from {', '.join(ATTENTION_SCHEMES)}")
    if unknown:
        raise ConfigError(
            f"--schemes: unknown scheme(s) {', '.join(unknown)}; choose from "
            f"{', '.join(ATTENTION_SCHEMES)}"
        )
    return schemes


def _event_seconds(spec: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in spec.split(","))
    except ValueError:
        raise ConfigError(f"--event-seconds takes LO,HI in seconds, got {spec!r}") from None
    if not 0 < lo <= hi:
        raise ConfigError(f"--event-seconds: need 0 < LO <= HI, got {spec!r}")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    seeds = _seeds(args)
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    default = ("divided", "joint") if args.table == 8 else PAPER_SCHEMES
    schemes = _schemes(args.schemes) if args.schemes is not None else tuple(default)
    if args.event_seconds is not None and args.table != 8:
        raise ConfigError("--event-seconds is for --table 8")
    if args.table == 8:
        return _run_long(args, seeds, schemes)
    from timesformer.config import POS_EMBEDS
    from timesformer.demo import DemoSettings, format_row, header, run_demo, summary

    pos_embeds = tuple(s.strip() for s in args.pos_embeds.split(",") if s.strip())
    wrong = [p for p in pos_embeds if p not in POS_EMBEDS]
    if wrong or not pos_embeds:
        raise ConfigError(f"--pos-embeds: choose from {', '.join(POS_EMBEDS)}")
    make = DemoSettings.quick if args.quick else DemoSettings
    settings = make(
        out=Path(args.out),
        table=args.table,
        schemes=schemes,
        pos_embeds=pos_embeds,
        seeds=seeds,
        overrides=tuple(args.set),
        progress=not args.no_progress,
    )
    start = time.perf_counter()
    results = run_demo(settings)
    print()
    print(header(args.table))
    for r in results:
        print(format_row(r, args.table))
    if len(seeds) > 1:
        print(f"\nover seeds {', '.join(map(str, seeds))}:")
        print("\n".join(summary(results, args.table)))
    print(
        f"\n{len(results)} runs in {time.perf_counter() - start:.0f} s; "
        f"report: {settings.out / 'results.md'}, plot: {settings.out / 'summary.png'}"
    )
    return 0


def _run_long(args: argparse.Namespace, seeds: tuple[int, ...], schemes: tuple[str, ...]) -> int:
    """``demo --table 8``: one long-term demo per seed (the seed makes its data set too)."""
    from timesformer.demo_long import LongDemoSettings, format_table8, run_long_demo

    extra = {"attentions": schemes}
    if args.event_seconds is not None:
        extra["event_seconds"] = _event_seconds(args.event_seconds)

    out = Path("runs/demo_long" if args.out == "runs/demo" else args.out)
    start = time.perf_counter()
    for seed in seeds:
        folder = out if seeds == (0,) else out / f"seed-{seed}"
        make = LongDemoSettings(
            out=folder,
            seed=seed,
            overrides=tuple(args.set),
            progress=not args.no_progress,
            **extra,
        )
        if args.quick:
            make = dataclasses.replace(make, train_per_class=32, val_per_class=16, epochs=4)
        rows = run_long_demo(make)
        print(f"\nseed {seed}:\n" + format_table8(rows))
    print(f"\n{time.perf_counter() - start:.0f} s; report: {out}")
    return 0
