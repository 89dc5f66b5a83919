"""Our model at two revisions, side by side: is a change faster, and by how much?

A change worth 1-3% is lost in the noise of two runs on a shared machine. This runs the
working tree's ``src/`` and another revision's (``git archive``) in two worker processes that
take turns, one timed step each per rep, so that both see the same load. Each worker builds
TimeSformer-Base (divided unless ``--attention``, 8 x 224, batch 1) with the same seed and times
one bf16 training step (forward + backward under autocast, no optimizer, as ``bench_model.py``),
one fp32 inference forward, or one bf16-weights inference forward; the one not running waits
idle on its pipe. Prints and writes the medians and the per-rep ratio (median and quartiles).
With ``--peer`` a third worker, transformers' model with the same weights (the peer of
``bench_model.py``, under bf16 autocast for ``bf16``), takes its turn too, each model then in a
process of its own.

    .venv/bin/python benchmarks/ab_revisions.py --base HEAD~3 --what train
    .venv/bin/python benchmarks/ab_revisions.py --base HEAD~1 --what fp32 --reps 12 --peer
    .venv/bin/python benchmarks/ab_revisions.py --base HEAD~2 --work HEAD~1 --what train

``--work REV`` takes that revision in place of the working tree. The workers build the models
with ``harness`` from this working tree against the other revision's ``src/``, so ``harness``'s
model helpers use only what every revision of the library has. The table is printed (and
written with ``--out``), not kept under ``benchmarks/results/``: it answers one question about
one change.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHATS = {
    "train": "bf16 training step (fwd + bwd)",
    "fp32": "fp32 inference",
    "bf16": "bf16 inference, bf16 weights",
}


def worker(what: str, attention: str, peer: bool = False) -> None:
    """Build the model from whichever ``timesformer`` is on the path (with ``peer``,
    transformers' model holding its weights), as ``bench_model.py`` builds them; then, per line
    read, time one step and write its seconds."""
    import torch
    from harness import autocast, build_ours, build_peer, inputs, train_step

    cpu = torch.device("cpu")
    model = build_ours(attention, 8, 224, cpu)
    x, x_peer = inputs(8, 224, cpu)
    if peer:
        model = build_peer(model, cpu)

        def forward():
            return model(pixel_values=x_peer).logits

    else:
        if what == "bf16":
            model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)

        def forward():
            return model(x)

    if what == "train":
        model.train()
        step = train_step(model, forward, torch.tensor([3]), cpu)
    else:

        def step() -> None:
            # The peer's bf16 is autocast: it has no bf16-weights path.
            with torch.no_grad(), autocast(cpu, enabled=peer and what == "bf16"):
                forward()

    step()  # warm-up: packing, allocator
    for _ in sys.stdin:
        t0 = time.perf_counter()
        step()
        print(time.perf_counter() - t0, flush=True)


def start(src: Path, args: argparse.Namespace, peer: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, __file__, "--worker", "--what", args.what, "--attention", args.attention]
    cmd += ["--peer"] if peer else []
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def timed(proc: subprocess.Popen) -> float:
    proc.stdin.write("run\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"ab_revisions: a worker stopped (exit {proc.wait()})")
    return float(line)


def _revision(name: str) -> str:
    """A revision's short hash; exits with one line if there is none."""
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{name}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if rev.returncode:
        raise SystemExit(f"ab_revisions: {name}: not a revision of this repository")
    return rev.stdout.strip()


def _extract(rev: str, into: Path) -> Path:
    """``src/`` of ``rev`` written under ``into``; returns its path."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="revision to hold the working tree against")
    parser.add_argument("--work", default=None, help="revision in place of the working tree")
    parser.add_argument("--what", choices=tuple(WHATS), default="train")
    parser.add_argument("--attention", default="divided")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    parser.add_argument(
        "--peer", action="store_true", help="a third worker: transformers' model, same weights"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.what, args.attention, args.peer)
        return 0
    if args.reps < 2:
        parser.error("--reps must be at least 2 (the quartiles of the per-rep ratio)")
    base_rev = _revision(args.base)
    if args.work:
        work = _revision(args.work)
    else:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        work = f"{_revision('HEAD')}{' + uncommitted changes' if dirty else ''}"
    with tempfile.TemporaryDirectory() as tmp:
        base_src = _extract(base_rev, Path(tmp) / "base")
        work_src = _extract(work, Path(tmp) / "work") if args.work else REPO / "src"
        procs = {"base": start(base_src, args), "work": start(work_src, args)}
        if args.peer:
            procs["peer"] = start(REPO / "src", args, peer=True)
        try:
            times: dict[str, list[float]] = {k: [] for k in procs}
            for _ in range(args.reps):
                for k, proc in procs.items():
                    times[k].append(timed(proc))
        finally:
            for proc in procs.values():
                proc.stdin.close()
                proc.wait()
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    import torch
    from harness import machine

    where = machine(torch.device("cpu"))

    def speedup(slow: str, fast: str) -> str:
        ratios = [s / f for s, f in zip(times[slow], times[fast], strict=True)]
        lo, mid, hi = statistics.quantiles(ratios, n=4)
        return f"**{mid:.3f}x** (quartiles {lo:.3f}-{hi:.3f}x)"

    peer_rows, peer_lines = [], []
    if args.peer:
        peer_rows = [f"| the peer (transformers, {work}'s export) | {med['peer']:.0f} |"]
        peer_lines = [
            "",
            f"Against the peer, rep by rep: {base_rev} {speedup('peer', 'base')}, "
            f"{work} {speedup('peer', 'work')}.",
        ]
    text = "\n".join(
        [
            f"# A/B: {WHATS[args.what]}, {work} against {base_rev}",
            "",
            f"Machine: {where}. TimeSformer-Base, {args.attention}, 8 x 224, batch 1; "
            f"{len(times)} worker processes taking turns, {args.reps} reps after a warm-up "
            "(benchmarks/ab_revisions.py).",
            "",
            "| revision | median (ms) |",
            "|---|---:|",
            f"| {base_rev} | {med['base']:.0f} |",
            f"| {work} | {med['work']:.0f} |",
            *peer_rows,
            "",
            f"Speed-up, rep by rep: {speedup('base', 'work')}.",
            *peer_lines,
            "",
            f"Command: `.venv/bin/python benchmarks/ab_revisions.py --base {args.base} "
            + (f"--work {args.work} " if args.work else "")
            + f"--what {args.what} --reps {args.reps}{' --peer' if args.peer else ''}`",
            "",
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
