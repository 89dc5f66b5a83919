"""Search the from-scratch recipe for the synthetic motion set: one row per setting.

Trains the `synthetic` config with each given set of overrides (one Trainer per setting, same
data and seed) and writes validation top-1 per epoch plus the final multi-view top-1 and the
accuracy within time-reversal pairs to a Markdown table (``results/recipe_cpu.md``, or
``recipe_gpu.md`` where a GPU trains).

    .venv/bin/python benchmarks/recipe_search.py --data runs/demo/data \
        --set "optim.epochs=8" --set "optim.epochs=8 optim.lr=0.002"
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from harness import RESULTS, command, machine, result, write_result

from timesformer.data.synthetic import make_synthetic
from timesformer.demo import pair_metrics
from timesformer.engine import Trainer, final_evaluation, load_config, packaged_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="synthetic set (written if missing)")
    p.add_argument("--out", default=str(RESULTS), help="folder for the table and the runs")
    p.add_argument("--set", action="append", default=[], dest="settings",
                   help="space-separated key=value overrides; repeat for more rows")  # fmt: skip
    p.add_argument("--name", default=None, help="table file name (default: by device)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = Path(args.data)
    if not (data / "meta.json").is_file():
        make_synthetic(data, seed=0, train_per_class=300, val_per_class=50, frames=16, size=32,
                       style="simple", progress=False)  # fmt: skip
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    rows = []
    for i, setting in enumerate(args.settings or [""]):
        overrides = [f"data.root={data}", f"run.out={Path(args.out) / 'runs' / f'r{i}'}",
                     "run.resume=false", "run.progress=false", "run.tensorboard=false",
                     *setting.split()]  # fmt: skip
        cfg = load_config([packaged_config("synthetic")], overrides)
        start = time.perf_counter()
        trainer = Trainer(cfg)
        trainer.fit()
        ev = final_evaluation(trainer)
        seconds = time.perf_counter() - start
        found, direction = pair_metrics(ev.scores, ev.labels, trainer.class_names)
        curve = " ".join(f"{100 * h['val_top1']:.0f}" for h in trainer.state.history)
        row = (f"| `{setting or '(defaults)'}` | {cfg.model.attention} | {curve} | "
               f"{100 * ev.video_top1:.1f} | {100 * direction:.1f} | {100 * found:.1f} | "
               f"{seconds:.0f} |")  # fmt: skip
        print(row, flush=True)
        rows.append(row)
    name = args.name or f"recipe_{'cpu' if device == 'CPU' else 'gpu'}.md"
    cmd = command(
        "recipe_search.py",
        "--data DATA",
        *(f'--set "{s}"' for s in args.settings),
        f"--name {args.name}" if args.name else "",
    )
    where = machine(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    lines = [
        f"Machine: {where}. DATA: the demo's synthetic motion set (`--data`: written there if "
        "missing, 300 training and 50 validation videos per class). Config `synthetic` plus the "
        "overrides of each row; val top-1 per epoch (one centred clip), then the 1 clip x 3 crops "
        "test: top-1, accuracy within time-reversal pairs (direction, chance 50%) and pair "
        "found.",
        "",
        "| overrides | attention | val top-1 by epoch (%) | test top-1 (%) | direction (%) | "
        "pair found (%) | seconds |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    title = f"Recipe search on the synthetic motion set ({device})"
    write_result(result(title, cmd, lines), name, Path(args.out) / name)


if __name__ == "__main__":
    main()
