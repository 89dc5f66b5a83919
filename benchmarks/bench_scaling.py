"""The paper's Figure 3, measured: cost of divided and joint attention as frames and size grow.

For frames 8/16/32/64/96 at 224 px and sizes 224/336/448 at 8 frames (and the rest of the grid
when ``--grid full``), divided and joint TimeSformer-Base in bf16 inference, batch 1: MACs, time
and peak memory of one forward pass, ours (bf16 weights) beside transformers (bf16 autocast), the
same weights. A configuration is not run when its predicted time exceeds ``--max-seconds`` or,
for the peer, when its stored attention matrices are predicted to exceed ``--max-gib``; the
table says so and why. Writes the table and its plot (``model_scaling_<machine kind>.md`` and
``.png``) under ``benchmarks/results/``.

    .venv/bin/python benchmarks/bench_scaling.py        # results/model_scaling_cpu.md
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from harness import (
    RESULTS,
    autocast,
    build_pair,
    command,
    figure,
    inputs,
    machine,
    machine_kind,
    reset_peak,
    result,
    save_figure,
    status_mib,
    write_result,
)

from timesformer.flops import count_macs
from timesformer.variants import model_config

FRAMES = (8, 16, 32, 64, 96)
SIZES = (224, 336, 448)


def _configs(grid: str) -> list[tuple[int, int]]:
    if grid == "full":
        return list(itertools.product(FRAMES, SIZES))
    return [(t, 224) for t in FRAMES] + [(8, s) for s in SIZES if s != 224]


def _peer_attention_gib(attention: str, frames: int, size: int) -> float:
    """The peer's largest attention tensors at once: scores and probabilities in fp32 (autocast
    runs softmax in fp32) for one layer, 12 heads."""
    n = (size // 16) ** 2
    length, groups = (frames * n + 1, 1) if attention == "joint" else (n + 1, frames)
    return 2 * groups * 12 * length * length * 4 / 2**30


def _run(fn) -> tuple[float, float]:
    """(seconds, peak MiB above the start) of one call."""
    before = reset_peak()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, status_mib("VmHWM") - before


def suite_scaling(
    device: torch.device,
    grid: str = "axes",
    max_seconds: float = 40.0,
    max_gib: float = 6.0,
    plot: Path | None = None,
) -> str:
    rows = []
    rate: dict[str, float] = {}  # achieved MACs/s at the smallest config, to predict the others
    for attention in ("divided", "joint"):
        for frames, size in _configs(grid):
            macs = count_macs(model_config("timesformer_base", attention=attention), frames, size)
            row = {"attention": attention, "frames": frames, "size": size, "macs": macs}
            predicted = macs / rate[attention] if attention in rate else 0.0
            if predicted > max_seconds:
                row["note"] = f"not run: predicted {predicted:.0f} s > {max_seconds:.0f} s"
                rows.append(row)
                continue
            row.update(_measure(attention, frames, size, device, predicted < 5, max_gib))
            rate.setdefault(attention, macs / row["ours_s"])
            rows.append(row)
            print(row, flush=True)
    plot = plot or RESULTS / f"model_scaling_{machine_kind(device)}.png"
    _plot(rows, plot)
    return _table(rows, device, grid, max_seconds, max_gib, plot.name)


def _measure(
    attention: str, frames: int, size: int, device: torch.device, warm: bool, max_gib: float
) -> dict:
    """Time and peak memory of one forward of ours and (when it fits) the peer."""
    out: dict = {}
    ours, peer = build_pair(attention, frames, size, device)
    ours = ours.to(torch.bfloat16)
    x, xp = inputs(frames, size, device)
    x16 = x.to(torch.bfloat16)
    with torch.no_grad():
        if warm:  # warm up the small ones; the first call of a big one is close enough
            ours(x16)
        else:  # but let a tiny clip make the prepacked weights, held like the weights
            ours(x16[:, :, :1, :32, :32])
        out["ours_s"], out["ours_mib"] = _run(lambda: ours(x16))
        gib = _peer_attention_gib(attention, frames, size)
        if gib > max_gib:
            out["peer_note"] = f"peer not run: {gib:.0f} GiB of attention matrices"
            return out
        with autocast(device):
            if warm:
                peer(pixel_values=xp)
            out["peer_s"], out["peer_mib"] = _run(lambda: peer(pixel_values=xp))
    return out


def _fmt(row: dict, key: str, unit: str) -> str:
    if key in row:
        return f"{row[key]:.1f}" if unit == "s" else f"{row[key]:.0f}"
    return "-"


def _table(rows, device, grid, max_seconds, max_gib, plot: str) -> str:
    lines = [
        f"Machine: {machine(device)}. Ours: bf16 weights; peer: transformers under bf16 "
        "autocast, same weights. One timed forward per configuration (after a warm-up for those "
        "under 5 s); peak memory is the rise of the resident high-water mark during that "
        "forward (ours' prepacked linear weights, about 170 MiB, are made before it and held "
        f"like the weights). Limits: {max_seconds:.0f} s predicted per forward, "
        f"{max_gib:.0f} GiB of the peer's attention matrices.",
        "",
        "| attention | frames | size | GMACs | ours (s) | peer (s) | peer / ours | ours peak (MiB)"
        " | peer peak (MiB) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{r['peer_s'] / r['ours_s']:.2f}x" if "peer_s" in r and "ours_s" in r else "-"
        note = r.get("note") or r.get("peer_note") or ""
        lines.append(
            f"| {r['attention']} | {r['frames']} | {r['size']} | {r['macs'] / 1e9:,.0f} | "
            f"{_fmt(r, 'ours_s', 's')} | {_fmt(r, 'peer_s', 's')} | {ratio} | "
            f"{_fmt(r, 'ours_mib', 'm')} | {_fmt(r, 'peer_mib', 'm')} | {note} |"
        )
    lines += ["", f"![scaling plot]({plot})"]
    cmd = command(
        "bench_scaling.py",
        f"--grid {grid}" if grid != "axes" else "",
        f"--max-seconds {max_seconds:g}" if max_seconds != 40.0 else "",
        f"--max-gib {max_gib:g}" if max_gib != 6.0 else "",
    )
    title = "Scaling: divided vs joint, frames and size (TimeSformer-Base, bf16 inference, batch 1)"
    return result(title, cmd, lines)


def _plot(rows, path: Path) -> None:
    fig, axes = figure(2, 2, figsize=(10, 7))
    for col, (axis, fixed_key, fixed) in enumerate(
        (("frames", "size", 224), ("size", "frames", 8))
    ):
        for attention, colour in (("divided", "tab:blue"), ("joint", "tab:red")):
            sel = [r for r in rows if r["attention"] == attention and r[fixed_key] == fixed]
            sel.sort(key=lambda r: r[axis])
            for who, style in (("ours", "-o"), ("peer", "--s")):
                for row_i, (key, label) in enumerate(
                    ((f"{who}_s", "time (s)"), (f"{who}_mib", "peak memory (MiB)"))
                ):
                    pts = [(r[axis], r[key]) for r in sel if key in r]
                    ax = axes[row_i, col]
                    if pts:
                        ax.plot(
                            *zip(*pts, strict=True), style, color=colour, label=f"{who} {attention}"
                        )
                    missing = [r[axis] for r in sel if key not in r]
                    if missing and pts:
                        ax.plot(
                            missing,
                            [max(p[1] for p in pts)] * len(missing),
                            "x",
                            color=colour,
                            markersize=9,
                        )
                    ax.set_ylabel(label)
                    ax.set_xlabel(axis)
                    ax.set_yscale("log")
                    ax.set_xticks(FRAMES if axis == "frames" else SIZES)
        axes[0, col].set_title(f"{axis} ({fixed_key} {fixed})")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("TimeSformer-Base, bf16 inference on the CPU; x: not run (limits in the table)")
    save_figure(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", choices=("axes", "full"), default="axes", help="configurations")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="predicted, per forward")
    parser.add_argument("--max-gib", type=float, default=6.0, help="the peer's attention matrices")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file; the plot beside it")
    args = parser.parse_args()
    device = torch.device("cpu")
    plot = args.out.with_suffix(".png") if args.out else None
    text = suite_scaling(device, args.grid, args.max_seconds, args.max_gib, plot)
    write_result(text, f"model_scaling_{machine_kind(device)}.md", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
