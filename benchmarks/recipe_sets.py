"""The shipped from-scratch recipe on motion sets it was not tuned on: one row per set, scheme
and seed.

Each set is written by ``timesformer data synth`` with every pair of motions (rotation, fade and
convergence included, which the demo leaves out) at another frame rate, length and size than the
demo's set (30 fps, 16 frames, 32 px); then the ``synthetic`` config trains on it with nothing
changed but ``data.root`` (and the attention scheme), and is tested with its multi-view protocol.
Writes ``results/recipe_sets_cpu.md`` (``_gpu`` where a GPU trains).

    .venv/bin/python benchmarks/recipe_sets.py                       # the three sets, divided
    .venv/bin/python benchmarks/recipe_sets.py --sets 12:16:32 --schemes divided,axial --seeds 0,1
    .venv/bin/python benchmarks/recipe_sets.py --sets 12:16:32 --pairs rotation \
        --schemes divided,joint

A set is ``FPS:FRAMES:SIZE``; sets are written under ``--work`` once and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch
from harness import command, items, machine, result, write_result

from timesformer.data.synthetic import make_synthetic
from timesformer.demo import train_and_test
from timesformer.names import PAIRS, ROTATIONS

SETS = ("12:16:32", "24:32:64", "60:48:128")


def make_set(
    root: Path, spec: str, pairs: list[str], per_class: int, seed: int, rotation: str
) -> Path:
    """The set ``FPS:FRAMES:SIZE`` of ``pairs`` under ``root`` (written once: same seed, same
    files)."""
    fps, frames, size = (float(v) if i == 0 else int(v) for i, v in enumerate(spec.split(":")))
    parts = [spec.replace(":", "-"), *([] if len(pairs) == len(PAIRS) else pairs)]
    data = root / "-".join(parts + ([] if rotation == "up" else [f"rotation_{rotation}"]))
    meta = data / "meta.json"
    have = json.loads(meta.read_text()) if meta.is_file() else {}
    want = {"train_per_class": per_class, "seed": seed, "rotation": rotation}
    if any(have.get(k) != v for k, v in want.items()):
        print(f"writing {data} ...", flush=True)
        make_synthetic(data, seed=seed, pairs=pairs, train_per_class=per_class, val_per_class=50,
                       frames=frames, size=size, fps=fps, style="simple", rotation=rotation,
                       overwrite=True)  # fmt: skip
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default=",".join(SETS), help="FPS:FRAMES:SIZE,... (%(default)s)")
    p.add_argument("--schemes", default="divided", help="attention schemes (%(default)s)")
    p.add_argument("--seeds", default="0", help="training seeds (%(default)s)")
    p.add_argument("--pairs", default="all", help="pairs of motions (%(default)s: all six)")
    p.add_argument("--per-class", type=int, default=300, help="training videos per class (300)")
    p.add_argument("--data-seed", type=int, default=7, help="seed of the sets (7)")
    p.add_argument("--rotation", choices=ROTATIONS, default="up",
                   help="where the rotation pair's tip points at mid-clip (up)")  # fmt: skip
    p.add_argument("--work", default="runs/recipe_sets", help="sets and runs (%(default)s)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="a config override for every run (repeatable): a probe of the recipe, "
                        "not the recipe")  # fmt: skip
    p.add_argument("--name", default=None, help="table file name (default: by device)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work)
    pairs = [p.name for p in PAIRS] if args.pairs == "all" else items(args.pairs)
    rows = []
    for spec in items(args.sets):
        data = make_set(work / "data", spec, pairs, args.per_class, args.data_seed, args.rotation)
        for scheme in items(args.schemes):
            for seed in (int(s) for s in items(args.seeds)):
                run = work / "runs" / f"{data.name}-{scheme}-seed{seed}"
                if (run / "config.yaml").is_file():
                    # This script's own earlier run: replaced, not kept beside as RUN.old-N.
                    shutil.rmtree(run)
                overrides = [f"model.attention={scheme}", *args.overrides]
                r = train_and_test(data, run, overrides, scheme, seed, progress=False)
                fps, frames, size = spec.split(":")
                by_pair = " ".join(f"{100 * r.by_pair[p.forward]:.0f}"
                                   for p in PAIRS if p.forward in r.by_pair)  # fmt: skip
                row = (f"| {fps} | {frames} | {size} | {scheme} | {seed} | "
                       f"{100 * r.video_top1:.1f} | {100 * r.pair_found:.1f} | "
                       f"{100 * r.direction:.1f} | {by_pair} | {r.train_s:.0f} |")  # fmt: skip
                print(row, flush=True)
                rows.append(row)
    gpu = torch.cuda.is_available()
    only = "" if args.pairs == "all" else "_" + "_".join(pairs)
    name = args.name or f"recipe_sets{only}_{'gpu' if gpu else 'cpu'}.md"
    cmd = command(
        "recipe_sets.py",
        f"--sets {args.sets}",
        f"--schemes {args.schemes}",
        f"--seeds {args.seeds}",
        f"--pairs {args.pairs}" if args.pairs != "all" else "",
        *(f"--set {o}" for o in args.overrides),
        f"--per-class {args.per_class}" if args.per_class != 300 else "",
        f"--rotation {args.rotation}" if args.rotation != "up" else "",
        f"--name {args.name}" if args.name else "",
    )
    n_classes = 2 * len(pairs)
    lines = [
        f"Machine: {machine(torch.device('cuda' if gpu else 'cpu'))}.",
        "",
        f"Each set: `timesformer data synth --pairs {args.pairs} --style simple "
        f"--seed {args.data_seed} "
        + (f"--rotation {args.rotation} " if args.rotation != "up" else "")
        + f"--fps FPS --frames FRAMES --size SIZE --train-per-class {args.per_class} "
        f"--val-per-class 50` ({n_classes} classes in {len(pairs)} time-reversal pairs). Training: "
        "`timesformer train --config synthetic data.root=SET model.attention=SCHEME "
        "run.seed=SEED`"
        + (f" plus `{' '.join(args.overrides)}`" if args.overrides else ", nothing else changed")
        + ". Test: 1 clip x 3 crops. direction: the true "
        "class scores above its time reversal (chance 50%); pair found: the prediction is in "
        "the right pair. By pair: the direction within each pair, in the order "
        + ", ".join(f"{p.name} ({p.forward}/{p.backward})" for p in PAIRS if p.name in pairs)
        + ".",
        "",
        "| fps | frames | px | attention | seed | top-1 (%) | pair found (%) | direction (%) | "
        "direction by pair (%) | train s |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---|---:|",
        *rows,
    ]
    title = "The synthetic recipe on motion sets it was not tuned on"
    write_result(result(title, cmd, lines), name)


if __name__ == "__main__":
    main()
