"""The variants on an accelerator: TimeSformer (8 x 224), -HR (16 x 448) and -L (96 x 224).

For each variant (divided attention, 400 classes, batch ``--batch``): bf16 inference throughput of
ours (bf16 weights) and the peer (transformers under bf16 autocast, same weights), a bf16 training
step of each (forward + backward under autocast), peak memory of both, and the fraction of the
device's bf16 peak that ours reaches: model MACs per second over ``--peak-tflops`` (the vendor's
dense bf16 figure, e.g. 989 for an H100 SXM) and over a large matrix product measured in the same
run. Targets from the performance issue: at least 2x the peer's inference throughput for HR, and
at least 45% of the peak in a training step. Run through ``bench_model.py --suite variants``.
``--batch`` takes one batch size for all variants or one per variant (``base=16,hr=2,large=2``);
``--compile`` adds ours under ``torch.compile`` (inference and training step) beside eager, under
each setting of ``--compiled-ours`` (the library's by default), with ``--compile-mode`` for the
training step (e.g. ``max-autotune-no-cudagraphs``, which lets inductor fuse bias and GELU into
its own matrix-product templates; inference keeps the freezing options);
``--ours sdpa,plain96,flash`` times ours under several choices of the attention layer's CUDA
kernels (see ``_settings``) against the same peer.
Made for a GPU (peak memory from CUDA's allocator); on the CPU it runs, as a smoke test, but
its memory columns are only the rise of the resident set.
"""

from __future__ import annotations

import torch
from bench_model import _machine, alternate, autocast, build_pair, inputs, peak_mib, train_step

import timesformer.layers.attention as attention
from timesformer.flops import count_macs
from timesformer.layers import short_groups
from timesformer.variants import model_config

VARIANTS = {"base": (8, 224), "hr": (16, 448), "large": (96, 224)}


def _matmul_macs_per_s(device: torch.device) -> float:
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return n**3 / alternate({"mm": lambda: a @ b}, 5, device)["mm"]


def _allow_inductor_cantsplit() -> None:
    """torch 2.11's inductor raises ``CantSplit`` without the two arguments its constructor
    requires (fixed by 2.13), which turns a tiling it would skip into a TypeError that stops the
    compile of our training step; give the arguments defaults there."""
    from torch._inductor.codegen import simd

    cls = simd.CantSplit
    try:
        cls()
    except TypeError:
        init = cls.__init__
        cls.__init__ = lambda self, expr=None, remaining=None: init(self, expr, remaining)


def parse_batches(spec: str, variants: list[str]) -> dict[str, int]:
    """``"4"`` -> 4 for every variant; ``"base=16,hr=2"`` -> per variant (1 where unnamed)."""
    if "=" not in spec:
        return dict.fromkeys(variants, int(spec))
    pairs = dict(item.split("=") for item in spec.split(",") if item.strip())
    unknown = set(pairs) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--batch: unknown variant(s) {', '.join(sorted(unknown))}")
    return {v: int(pairs.get(v, 1)) for v in variants}


Setting = tuple[int, "list | None", int, bool]
#: A setting's warps for the Triton kernel on with ``short_groups.warps()``' measured choice.
TUNED = -1


def _library() -> Setting:
    return (
        attention.CUDA_PLAIN_MAX_LEN,
        attention.CUDA_SDPA_PRIORITY,
        (short_groups.NUM_WARPS or TUNED) if attention.CUDA_SHORT_GROUP_KERNEL else 0,
        attention.CUDA_SHORT_GROUP_KERNEL_COMPILED,
    )


def _settings(names: list[str]) -> dict[str, Setting]:
    """``--ours`` settings -> (plain-path max length, SDPA kernel priority, warps per program of
    the Triton kernel for groups of up to 16 tokens: 0 off, ``TUNED`` its measured choice;
    whether that kernel runs under ``torch.compile`` too) on CUDA. ``kernel`` is the library's
    choices with that kernel on at its measured warps, compiled too (``layers/short_groups.py``),
    ``kernelN`` the same with N warps per program in both passes; ``nokernel`` the library's
    choices with the kernel off."""
    from torch.nn.attention import SDPBackend

    flash = [
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.MATH,
    ]
    library = _library()
    known = {
        "default": library,
        "sdpa": (0, None, 0, False),
        "plain96": (96, None, 0, False),
        "flash": (0, flash, 0, False),
        "plain96+flash": (96, flash, 0, False),
        "kernel": (*library[:2], TUNED, True),
        "nokernel": (*library[:2], 0, False),
    }
    known |= {f"kernel{w}": (*library[:2], w, True) for w in (1, 2, 4, 8)}
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"--ours: unknown setting(s) {', '.join(sorted(unknown))}")
    return {n: known[n] for n in names}


def _set(setting: Setting) -> None:
    attention.CUDA_PLAIN_MAX_LEN, attention.CUDA_SDPA_PRIORITY, warps, compiled = setting
    attention.CUDA_SHORT_GROUP_KERNEL = warps != 0
    attention.CUDA_SHORT_GROUP_KERNEL_COMPILED = compiled
    short_groups.NUM_WARPS = warps if warps > 0 else None


def _as(setting: Setting, fn):
    """``fn`` run with the attention layer's CUDA choices set to ``setting`` (a compiled ``fn``
    is guarded on them, so each setting gets its own graph)."""

    def run():
        _set(setting)
        return fn()

    return run


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
    library = _library()
    macs = count_macs(model_config("timesformer_base", attention="divided"), frames, size) * batch
    ours, peer = build_pair("divided", frames, size, device)
    x, xp = inputs(frames, size, device, batch)
    label = torch.zeros(batch, dtype=torch.long, device=device)

    def step(model, fn):
        return train_step(model, fn, label, device)

    ours.train()
    peer.train()
    fns = {f"ours {k}": _as(v, step(ours, lambda: ours(x))) for k, v in settings.items()}
    fns["peer"] = step(peer, lambda: peer(pixel_values=xp).logits)
    if compiled:
        _allow_inductor_cantsplit()
        fast = torch.compile(ours, mode=compile_mode)
    for k, v in compiled.items():
        fns[_compiled_name(k, compiled)] = _as(v, step(ours, lambda: fast(x)))
    train = alternate(fns, reps, device)
    train_mem = {k: peak_mib(fn, device) for k, fn in fns.items() if "compiled" not in k}
    ours.eval().to(torch.bfloat16)
    peer.eval()
    x16 = x.to(torch.bfloat16)

    def peer_infer():
        with autocast(device):
            peer(pixel_values=xp)

    with torch.no_grad():
        fns = {f"ours {k}": _as(v, lambda: ours(x16)) for k, v in settings.items()}
        fns["peer"] = peer_infer
        if compiled:
            fast_infer = torch.compile(ours, options={"freezing": True})
        for k, v in compiled.items():
            fns[_compiled_name(k, compiled)] = _as(v, lambda: fast_infer(x16))
        infer = alternate(fns, reps, device)
        infer_mem = {k: peak_mib(fn, device) for k, fn in fns.items() if "compiled" not in k}
    _set(library)
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
    settings = _settings(ours or ["default"])
    compiled_settings = _settings(compiled) if compiled else {}
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
        "# Variants, bf16, divided attention",
        "",
        f"Device: {_machine(device)}. Medians of {reps} alternating reps after a warm-up. "
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
        "CUDA choices: `sdpa` SDPA for every group in PyTorch's kernel order, `plainN` the "
        "plain path for groups up to N tokens, `flash` the flash kernel first, `kernel` the "
        "library's setting with the Triton kernel for groups of up to 16 tokens "
        "(`layers/short_groups.py`) compiled too, `kernelN` with N warps per program, "
        "`nokernel` without it; `default` is the "
        "library's setting. Targets: HR inference at least 2x the peer; a training step at "
        "least 45% of the bf16 peak.",
        "",
        "Command: `.venv/bin/python benchmarks/bench_model.py --suite variants --device cuda "
        f"--variants {','.join(variants)} --batch "
        + ",".join(f"{v}={batches[v]}" for v in variants)
        + (" --compile" if compiled else "")
        + (f" --compiled-ours {','.join(compiled)}" if compiled and compiled != ["default"] else "")
        + (f" --compile-mode {compile_mode}" if compiled and compile_mode else "")
        + (f" --ours {','.join(settings)}" if list(settings) != ["default"] else "")
        + (f" --peak-tflops {peak_tflops:g}`" if peak_tflops else "`"),
    ]
    return "\n".join(lines) + "\n"
