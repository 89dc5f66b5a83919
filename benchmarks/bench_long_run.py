"""A long training run on the synthetic set: are open files, memory, threads and worker processes
the same at the end of the last epoch as after the first ones?

The trainer measures them itself at the start and end of every epoch (``fds``, ``rss_kb``,
``threads`` and ``children`` with ``_start``/``_end`` in each epoch record of metrics.jsonl,
read from /proc). This script runs a tiny model for many epochs with persistent DataLoader workers,
validation and a checkpoint every epoch, and writes the per-epoch table with the growth from the
end of epoch 2 (after the allocator has settled) to the end of the last one.

    .venv/bin/python benchmarks/bench_long_run.py --epochs 200   # results/long_run.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import command, machine, result, write_result

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))

from helpers import tiny_overrides  # noqa: E402 (the tests' tiny run config)
from timesformer.data import make_synthetic  # noqa: E402
from timesformer.engine import Trainer, load_config  # noqa: E402

KEYS = ("fds", "rss_kb", "threads", "children")


def run(epochs: int, workers: int, folder: Path) -> tuple[list[dict], float]:
    """Train ``epochs`` epochs; the epoch records of metrics.jsonl and the total seconds."""
    data = make_synthetic(
        folder / "motion",
        seed=11,
        pairs=("horizontal", "depth"),
        train_per_class=8,
        val_per_class=2,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )
    extra = {
        "optim.epochs": epochs,
        "data.workers": workers,
        "data.batch_size": 4,
        "optim.global_batch": 4,
        "run.keep_last": 2,
    }
    cfg = load_config(overrides=tiny_overrides(data, folder / "run", **extra))
    start = time.perf_counter()
    Trainer(cfg).fit()
    took = time.perf_counter() - start
    lines = (folder / "run" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "epoch"], took


def report(records: list[dict], took: float, workers: int, cmd: str) -> str:
    first, settled, last = records[0], records[min(1, len(records) - 1)], records[-1]
    growth = {k: last[f"{k}_end"] - settled[f"{k}_end"] for k in KEYS}
    rows = [
        "| epoch | open fds (start / end) | RSS MB (start / end) | threads | child processes "
        "| train s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    shown = [r for r in records if len(records) <= 40 or r["epoch"] <= 5 or r["epoch"] % 10 == 0]
    for r in shown:
        rows.append(
            f"| {r['epoch']} | {r['fds_start']} / {r['fds_end']} "
            f"| {r['rss_kb_start'] / 1024:.1f} / {r['rss_kb_end'] / 1024:.1f} "
            f"| {r['threads_start']} / {r['threads_end']} "
            f"| {r['children_start']} / {r['children_end']} | {r['epoch_s']:.2f} |"
        )
    n = len(records)
    return result(
        "Long training run: resources per epoch (CPU)",
        cmd,
        [
            f"{n} epochs of the tiny model (`timesformer_tiny`, divided attention, 4 frames of "
            f"16 px) on a synthetic set of 32 training and 8 validation videos: 8 optimizer "
            f"steps, a validation pass and an atomic checkpoint write every epoch, "
            f"{workers} persistent DataLoader workers. Measured by the trainer (metrics.jsonl) "
            f"at the start and end of every epoch from /proc/self.",
            "",
            f"**Growth from the end of epoch {settled['epoch']} to the end of epoch {n}:** "
            f"open fds {growth['fds']:+d}, RSS {growth['rss_kb'] / 1024:+.1f} MB, threads "
            f"{growth['threads']:+d}, child processes {growth['children']:+d} "
            f"(epoch 1 starts the workers: {first['children_start']} -> "
            f"{first['children_end']} children, {first['fds_start']} -> {first['fds_end']} fds).",
            "",
            *rows,
            *(
                ["", f"({len(shown)} of {n} epochs shown: 1-5 and every 10th.)"]
                if len(shown) < n
                else []
            ),
            "",
            f"Machine: {machine(torch.device('cpu'))}. Total {took:.0f} s.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        records, took = run(args.epochs, args.workers, Path(tmp))
    cmd = command(
        "bench_long_run.py",
        f"--epochs {args.epochs}",
        f"--workers {args.workers}" if args.workers != 2 else "",
    )
    write_result(report(records, took, args.workers, cmd), "long_run.md", args.out)


if __name__ == "__main__":
    main()
