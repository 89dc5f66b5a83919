"""The variants on a GPU: TimeSformer (8 x 224), -HR (16 x 448) and -L (96 x 224), against the peer.

For each variant (divided attention, 400 classes, batch ``--batch``): bf16 inference throughput of
ours (bf16 weights) and the peer (transformers under bf16 autocast, same weights), a bf16 training
step of each (forward + backward under autocast), peak memory of both, and the fraction of the
device's bf16 peak that ours reaches: model MACs per second over ``--peak-tflops`` (the vendor's
dense bf16 figure, e.g. 989 for an H100 SXM) and over a large matrix product measured in the same
run. The targets: HR inference at least 2x the peer's throughput, a training step at least 45% of
the peak.

- ``--batch`` takes one batch size for all variants or one per variant (``base=32,hr=2``).
- ``--ours nokernel,default`` times ours under several choices of the attention layer's CUDA
  kernels (``harness.ATTENTION_SETTINGS``) against the same peer.
- ``--compile`` adds ours under ``torch.compile`` (inference with freezing, and the training
  step) under each setting of ``--compiled-ours``; ``--compile-mode`` sets the training step's
  mode (e.g. ``max-autotune-no-cudagraphs``).

Made for a GPU (peak memory from CUDA's allocator); on the CPU (``--device cpu``) it runs, as a
smoke test, but its memory columns are only the rise of the resident set. Writes
``variants_gpu.md`` (with ``--compile``: ``variants_gpu_compiled.md``) under
``benchmarks/results/``; ``gpu_check.sh`` runs it in stages.

    .venv/bin/python benchmarks/bench_variants.py --variants base,hr,large \\
        --batch base=32,hr=2,large=2 --ours nokernel,default --peak-tflops 989
    .venv/bin/python benchmarks/bench_variants.py --variants base,hr --batch base=32,hr=2 \\
        --reps 6 --compile --compiled-ours nokernel,default --peak-tflops 989
"""

from __future__ import annotations

import argparse
import sys

import torch
from harness import (
    allow_inductor_cantsplit,
    alternate,
    attention_settings,
    autocast,
    build_pair,
    command,
    inputs,
    items,
    machine,
    machine_kind,
    peak_mib,
    result,
    train_step,
    with_backend,
    write_result,
)

from timesformer.flops import count_macs
from timesformer.layers.backend import get_backend, set_backend
from timesformer.variants import model_config

VARIANTS = {"base": (8, 224), "hr": (16, 448), "large": (96, 224)}


def _matmul_macs_per_s(device: torch.device) -> float:
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return n**3 / alternate({"mm": lambda: a @ b}, 5, device)["mm"]


def parse_batches(spec: str, variants: list[str]) -> dict[str, int]:
    """``"4"`` -> 4 for every variant; ``"base=16,hr=2"`` -> per variant (1 where unnamed)."""
    if "=" not in spec:
        return dict.fromkeys(variants, int(spec))
    pairs = dict(item.split("=") for item in spec.split(",") if item.strip())
    unknown = set(pairs) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--batch: unknown variant(s) {', '.join(sorted(unknown))}")
    return {v: int(pairs.get(v, 1)) for v in variants}


def _compiled_name(name: str, compiled: dict) -> str:
    return "ours compiled" if list(compiled) == ["default"] else f"ours compiled {name}"


def _measure(
    name: str,
    device: torch.device,
    batch: int,
    reps: int,
    compiled: dict,
    settings: dict,
    compile_mode: str | None = None,
) -> dict:
    frames, size = VARIANTS[name]
    library = get_backend()
    macs = count_macs(model_config("timesformer_base", attention="divided"), frames, size) * batch
    ours, peer = build_pair("divided", frames, size, device)
    x, xp = inputs(frames, size, device, batch)
    label = torch.zeros(batch, dtype=torch.long, device=device)

    def step(model, fn):
        return train_step(model, fn, label, device)

    ours.train()
    peer.train()
    fns = {f"ours {k}": with_backend(v, step(ours, lambda: ours(x))) for k, v in settings.items()}
    fns["peer"] = step(peer, lambda: peer(pixel_values=xp).logits)
    if compiled:
        allow_inductor_cantsplit()
        fast = torch.compile(ours, mode=compile_mode)
    for k, v in compiled.items():
        fns[_compiled_name(k, compiled)] = with_backend(v, step(ours, lambda: fast(x)))
    train = alternate(fns, reps, device)
    train_mem = {k: peak_mib(fn, device) for k, fn in fns.items() if "compiled" not in k}
    ours.eval().to(torch.bfloat16)
    peer.eval()
    x16 = x.to(torch.bfloat16)

    def peer_infer():
        with autocast(device):
            peer(pixel_values=xp)

    with torch.no_grad():
        fns = {f"ours {k}": with_backend(v, lambda: ours(x16)) for k, v in settings.items()}
        fns["peer"] = peer_infer
        if compiled:
            fast_infer = torch.compile(ours, options={"freezing": True})
        for k, v in compiled.items():
            fns[_compiled_name(k, compiled)] = with_backend(v, lambda: fast_infer(x16))
        infer = alternate(fns, reps, device)
        infer_mem = {k: peak_mib(fn, device) for k, fn in fns.items() if "compiled" not in k}
    set_backend(library)
    return {
        "name": name,
        "batch": batch,
        "frames": frames,
        "size": size,
        "macs": macs,
        "infer": infer,
        "train": train,
        "infer_mem": infer_mem,
        "train_mem": train_mem,
    }


def _row(r: dict, who: str, limit: float, peak_tflops: float | None) -> str:
    i, t, b = r["infer"], r["train"], r["batch"]
    train_macs_s = 3 * r["macs"] / t[who]
    of_peak = f"{train_macs_s * 2 / 1e12 / peak_tflops * 100:.0f}%" if peak_tflops else "-"
    mem = (
        f"{r['infer_mem'][who]:.0f} / {r['infer_mem']['peer']:.0f} | "
        f"{r['train_mem'][who]:.0f} / {r['train_mem']['peer']:.0f}"
        if who in r["infer_mem"]
        else "- | -"
    )
    return (
        f"| {r['name']} ({r['frames']} x {r['size']}) | {who.removeprefix('ours ')} | "
        f"{b} | {b / i[who]:.2f} | {b / i['peer']:.2f} | **{i['peer'] / i[who]:.2f}x** | "
        f"{t[who] * 1e3:.0f} | {t['peer'] * 1e3:.0f} | **{t['peer'] / t[who]:.2f}x** | "
        f"{of_peak} | {train_macs_s / limit * 100:.0f}% | {mem} |"
    )


def suite_variants(
    device: torch.device,
    variants: list[str],
    batches: dict[str, int],
    reps: int,
    peak_tflops: float | None,
    compiled: list[str] | None = None,
    ours: list[str] | None = None,
    compile_mode: str | None = None,
) -> str:
    settings = attention_settings(ours or ["default"])
    compiled_settings = attention_settings(compiled) if compiled else {}
    who = [f"ours {k}" for k in settings]
    who += [_compiled_name(k, compiled_settings) for k in compiled_settings]
    limit = _matmul_macs_per_s(device)
    print(f"matrix-product limit {limit * 2 / 1e12:.1f} TFLOP/s", flush=True)
    rows = []
    for v in variants:
        rows.append(
            _measure(v, device, batches[v], reps, compiled_settings, settings, compile_mode)
        )
        for w in who:
            print(_row(rows[-1], w, limit, peak_tflops), flush=True)
    lines = [
        f"Device: {machine(device)}. Medians of {reps} alternating reps after a warm-up. "
        f"Matrix-product limit measured in this run: {limit * 2 / 1e12:.1f} TFLOP/s bf16"
        + (f"; vendor peak given: {peak_tflops:.0f} TFLOP/s." if peak_tflops else "."),
        "",
        "| variant | ours | batch | clips/s ours | clips/s peer | ours vs peer | "
        "train step ours (ms) | peer (ms) | train ours vs peer | train of peak | train of matmul | "
        "memory infer ours / peer (MiB) | memory train ours / peer (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines += [_row(r, w, limit, peak_tflops) for w in who]
    lines += [
        "",
        "Training fractions count 3x the forward MACs; compiled rows are ours under "
        "`torch.compile` against the eager peer. The `ours` column names the attention layer's "
        "CUDA choices (`harness.ATTENTION_SETTINGS`): `default` the library's, with the Triton "
        "kernel for groups of up to 16 tokens (`layers/short_groups.py`), `nokernel` the same "
        "without that kernel, `sdpa` SDPA for every group in PyTorch's kernel order, `plain96` "
        "the plain path for groups of up to 96 tokens, `flash` SDPA's flash kernel first. "
        "Targets: HR inference at least 2x the peer; a training step at least 45% of the bf16 "
        "peak.",
    ]
    cmd = command(
        "bench_variants.py",
        "" if device.type == "cuda" else f"--device {device.type}",
        f"--variants {','.join(variants)}",
        "--batch " + ",".join(f"{v}={batches[v]}" for v in variants),
        f"--reps {reps}" if reps != 10 else "",
        f"--ours {','.join(settings)}" if list(settings) != ["default"] else "",
        "--compile" if compiled else "",
        f"--compiled-ours {','.join(compiled)}" if compiled and compiled != ["default"] else "",
        f"--compile-mode {compile_mode}" if compiled and compile_mode else "",
        f"--peak-tflops {peak_tflops:g}" if peak_tflops else "",
    )
    title = "Variants, bf16, divided attention" + (", compiled" if compiled else "")
    return result(title, cmd, lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="base,hr,large", help="base, hr, large")
    parser.add_argument(
        "--batch", default="1", help="clips per batch, or per variant: base=32,hr=2"
    )
    parser.add_argument("--reps", type=int, default=10, help="timed reps (10)")
    parser.add_argument(
        "--ours", default="default", help="attention settings of ours (default,nokernel,sdpa,...)"
    )
    parser.add_argument("--compile", action="store_true", help="also ours under torch.compile")
    parser.add_argument(
        "--compiled-ours", default="default", help="attention settings of compiled ours"
    )
    parser.add_argument(
        "--compile-mode",
        default=None,
        help="torch.compile mode of the compiled training step (default: torch's default)",
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 peak")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    device = torch.device(args.device)
    names = items(args.variants)
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown variant(s) {', '.join(sorted(unknown))}")
    text = suite_variants(
        device,
        names,
        parse_batches(args.batch, names),
        args.reps,
        args.peak_tflops,
        items(args.compiled_ours) if args.compile else None,
        items(args.ours),
        args.compile_mode,
    )
    name = f"variants_{machine_kind(device)}{'_compiled' if args.compile else ''}.md"
    write_result(text, name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
