"""Model speed and memory: timesformer beside transformers' TimeSformer, same weights, same inputs.

The peer is ``transformers.TimesformerForVideoClassification`` holding our weights (written with
``export_hf`` and loaded by ``from_pretrained``), run in fp32 and under bf16 autocast. The machine's
limit is the throughput of one large matrix product (fp32 and bf16) measured in the same run.
Ours and the peer alternate rep by rep so that the machine's drift hits both alike; the tables give
medians.

Suites:

- ``cpu``: batch 1, 8 x 224, divided, TimeSformer-Base (400 classes): fp32 inference, bf16
  inference (ours with bf16 weights and under autocast; the peer under autocast) with the logits'
  cosine similarity to fp32, and a bf16 training step (forward + backward under autocast).
- ``memory``: joint space-time at 32 x 224 (the paper's out-of-memory point), fp32 inference: peak
  memory of the forward pass above what the model and input already hold.
- ``linear``: every linear shape of TimeSformer-Base, ``F.linear`` against the prepacked oneDNN
  product that ``timesformer.layers.linear`` uses at CPU inference.
- ``scaling``: frames 8/16/32/64/96 and sizes 224/336/448, divided and joint, bf16 inference: MACs,
  time and peak memory, ours beside the peer (the paper's Figure 3, measured). Configurations
  whose predicted time or memory exceed the limits given are listed as not run, with the reason.

Peak memory on the CPU is the rise of the process's resident-set high-water mark (VmHWM, reset
through /proc/self/clear_refs after malloc_trim) over the resident set before the call.

    .venv/bin/python benchmarks/bench_model.py --suite cpu      # results/model_cpu.md
    .venv/bin/python benchmarks/bench_model.py --suite memory   # results/model_memory_cpu.md
    .venv/bin/python benchmarks/bench_model.py --suite scaling  # results/model_scaling_cpu.md
    .venv/bin/python benchmarks/bench_model.py --suite variants --device cuda --peak-tflops 989
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import timesformer
from timesformer.checkpoints.hf import export_hf
from timesformer.flops import count_macs
from timesformer.variants import model_config

RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------- measuring
def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> float:
    """Release free heap memory, reset the high-water mark; the resident MiB now."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory of ``fn()`` above what was held before it (MiB)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    before = _reset_peak()
    fn()
    return _status_mib("VmHWM") - before


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def alternate(fns: dict[str, Callable[[], object]], reps: int, device: torch.device) -> dict:
    """Median seconds of each fn, run in turn rep by rep after one warm-up each."""
    return {k: statistics.median(v) for k, v in alternate_times(fns, reps, device).items()}


def alternate_times(
    fns: dict[str, Callable[[], object]], reps: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds of each fn in each rep, run in turn rep by rep after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(timed(fn, device))
    return times


def ratio_spread(slow: list[float], fast: list[float]) -> str:
    """The per-rep ratios slow/fast of one alternating run: "median (quartiles lo-hi)"."""
    ratios = [s / f for s, f in zip(slow, fast, strict=True)]
    lo, mid, hi = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return f"{mid:.2f}x ({lo:.2f}-{hi:.2f}x)"


# ---------------------------------------------------------------------------- the models
def build_pair(attention: str, frames: int, size: int, device: torch.device, classes: int = 400):
    """Our TimeSformer-Base and the transformers model with the same weights, in eval mode."""
    ours = build_ours(attention, frames, size, device, classes)
    return ours, build_peer(ours, device)


def build_ours(attention: str, frames: int, size: int, device: torch.device, classes: int = 400):
    """Our TimeSformer-Base from seed 0, in eval mode."""
    torch.manual_seed(0)
    ours = timesformer.create_model(
        "timesformer_base",
        attention=attention,
        num_frames=frames,
        img_size=size,
        num_classes=classes,
        drop_path_rate=0.0,
    )
    # Random non-zero time embedding and temporal linears so that every part computes something.
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name == "time_embed" or "temporal_fc" in name:
                p.normal_(0, 0.02)
    return ours.eval().to(device)


def build_peer(ours, device: torch.device):
    """transformers' model holding ``ours``' weights (written by ``export_hf``), in eval mode."""
    from transformers import TimesformerForVideoClassification

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(ours, tmp)
        peer = TimesformerForVideoClassification.from_pretrained(tmp)
    return peer.eval().to(device)


def inputs(frames: int, size: int, device: torch.device, batch: int = 1):
    """Ours (B, 3, T, H, W) and the peer's (B, T, 3, H, W), the same pixels, both contiguous."""
    x = torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(1))
    return x.to(device), x.transpose(1, 2).contiguous().to(device)


def autocast(device: torch.device, enabled: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def train_step(model, fn: Callable[[], torch.Tensor], label: torch.Tensor, device: torch.device):
    """A training step without the optimizer (the same for ours and the peer): ``fn()`` gives
    the logits under bf16 autocast, then cross-entropy, backward, and the gradients dropped."""

    def run() -> None:
        with autocast(device):
            logits = fn()
        F.cross_entropy(logits.float(), label).backward()
        model.zero_grad(set_to_none=True)

    return run


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name()}; torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


# ---------------------------------------------------------------------------- suites
def suite_cpu(device: torch.device, reps: int, compiled: bool = True, train_reps: int = 9) -> str:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # weights as constants: prepacked, folds computed once
    macs = count_macs(model_config("timesformer_base", attention="divided"))
    n = 2048
    mm = {
        dt: (torch.randn(n, n).to(device, dt), torch.randn(n, n).to(device, dt))
        for dt in (torch.float32, torch.bfloat16)
    }

    def matmul(dt):
        return lambda: mm[dt][0] @ mm[dt][1]

    ours, peer = build_pair("divided", 8, 224, device)
    x, xp = inputs(8, 224, device)
    rows = []  # (what, ours s, peer s, MACs per second fraction of the limit, cosine)
    compile_s = {}

    def compile_now(name, model, *args):
        t0 = time.perf_counter()
        fn = torch.compile(model)
        fn(*args)
        compile_s[name] = time.perf_counter() - t0
        return fn

    with torch.no_grad():
        ref = ours(x).float()
        agree = (ref - peer(pixel_values=xp).logits.float()).abs().max().item()
        fns = {
            "ours": lambda: ours(x),
            "peer": lambda: peer(pixel_values=xp),
            "mm": matmul(torch.float32),
        }
        if compiled:
            ours_c = compile_now("fp32", ours, x)
            fns["compiled"] = lambda: ours_c(x)
        t = alternate(fns, reps, device)
    limit32 = n**3 / t["mm"]
    rows.append(("fp32 inference", t["ours"], t["peer"], macs / t["ours"] / limit32, 1.0))
    if compiled:
        rows.append(
            (
                "fp32 inference, torch.compile",
                t["compiled"],
                t["peer"],
                macs / t["compiled"] / limit32,
                1.0,
            )
        )

    ours16 = timesformer.create_model(
        "timesformer_base", attention="divided", num_classes=400, drop_path_rate=0.0
    )
    ours16.load_state_dict(ours.state_dict())
    ours16 = ours16.eval().to(device, torch.bfloat16)
    x16 = x.to(torch.bfloat16)

    def cos(a):
        return F.cosine_similarity(a.float().flatten(), ref.flatten(), dim=0).item()

    with torch.no_grad():
        with autocast(device):
            auto_cos = cos(ours(x))
            peer_cos = cos(peer(pixel_values=xp).logits)
        weights_cos = cos(ours16(x16))

        def ours_auto():
            with autocast(device):
                ours(x)

        def peer_auto():
            with autocast(device):
                peer(pixel_values=xp)

        fns = {
            "weights": lambda: ours16(x16),
            "auto": ours_auto,
            "peer": peer_auto,
            "mm": matmul(torch.bfloat16),
        }
        if compiled:
            ours16_c = compile_now("bf16", ours16, x16)
            compiled_cos = cos(ours16_c(x16))
            fns["compiled"] = lambda: ours16_c(x16)
        t = alternate(fns, reps, device)
    limit16 = n**3 / t["mm"]
    for key, name, c in (
        ("weights", "bf16 inference, bf16 weights", weights_cos),
        ("auto", "bf16 inference, autocast", auto_cos),
    ) + (
        (("compiled", "bf16 inference, bf16 weights, torch.compile", compiled_cos),)
        if compiled
        else ()
    ):
        rows.append((name, t[key], t["peer"], macs / t[key] / limit16, c))

    # Training step: forward + backward under bf16 autocast (no optimizer: the same for both).
    ours.train()
    peer.train()
    label = torch.tensor([3], device=device)

    def step(model, fn):
        return train_step(model, fn, label, device)

    fns = {
        "ours": step(ours, lambda: ours(x)),
        "peer": step(peer, lambda: peer(pixel_values=xp).logits),
        "mm": matmul(torch.bfloat16),
    }
    if compiled:
        inductor_config.freezing = False
        ours_train = torch.compile(ours)
        t0 = time.perf_counter()
        step(ours, lambda: ours_train(x))()
        compile_s["training"] = time.perf_counter() - t0
        fns["compiled"] = step(ours, lambda: ours_train(x))
    # A training step's ratio moves more from rep to rep than inference's (a 4 s step on a
    # shared machine), so more reps, and the spread of the per-rep ratios with the medians.
    train_times = alternate_times(fns, train_reps, device)
    t = {k: statistics.median(v) for k, v in train_times.items()}
    spreads = {
        k: ratio_spread(train_times["peer"], train_times[k]) for k in ("ours", "compiled") if k in t
    }
    limit16_train = n**3 / t["mm"]
    rows.append(
        (
            "bf16 training step (fwd + bwd)",
            t["ours"],
            t["peer"],
            3 * macs / t["ours"] / limit16_train,
            None,
        )
    )
    if compiled:
        rows.append(
            (
                "bf16 training step, torch.compile",
                t["compiled"],
                t["peer"],
                3 * macs / t["compiled"] / limit16_train,
                None,
            )
        )

    lines = [
        "# Model speed: TimeSformer-Base, divided, 8 x 224, batch 1",
        "",
        f"Machine: {_machine(device)}; transformers {_transformers_version()}. Ours, the peer "
        f"and a {n}^3 matrix product (the machine's limit) alternate rep by rep; medians of "
        f"{reps} reps (training: {train_reps}) after a warm-up. Model: {macs / 1e9:.1f} GMACs per "
        f"view. Limit in this run: fp32 {limit32 / 1e9:.0f} GMAC/s, bf16 {limit16 / 1e9:.0f} "
        f"GMAC/s. fp32 logits of ours and the peer differ by at most {agree:.2e}.",
        "",
        "| what | ours (ms) | peer (ms) | ours vs peer | of the matmul limit | cosine to fp32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, t_ours, t_peer, frac, c in rows:
        lines.append(
            f"| {name} | {t_ours * 1e3:.0f} | {t_peer * 1e3:.0f} | **{t_peer / t_ours:.2f}x** | "
            f"{frac * 100:.0f}% | {'' if c is None else f'{c:.5f}'} |"
        )
    lines += [
        "",
        f'The peer\'s bf16 logits have cosine {peer_cos:.5f} to fp32. "Of the matmul limit" is '
        "the model's MACs per second over the matrix product's (training: 3x the forward MACs). "
        "The peer runs eagerly (it has no compiled path of its own here); `torch.compile` rows use "
        "inductor with freezing for inference"
        + (
            f" and took {', '.join(f'{k} {v:.0f} s' for k, v in compile_s.items())} to compile "
            "(not in the times)."
            if compile_s
            else "."
        ),
        "",
        "Training step, the peer's time over ours rep by rep (median, quartiles): eager "
        + spreads["ours"]
        + (f", torch.compile {spreads['compiled']}" if "compiled" in spreads else "")
        + ".",
        "",
        "Command: `.venv/bin/python benchmarks/bench_model.py --suite cpu"
        + (f" --train-reps {train_reps}" if train_reps != 9 else "")
        + "`",
    ]
    return "\n".join(lines) + "\n"


def suite_memory(device: torch.device, frames: int = 32) -> str:
    ours, peer = build_pair("joint", frames, 224, device)
    x, xp = inputs(frames, 224, device)
    with torch.no_grad():
        m_ours = peak_mib(lambda: ours(x), device)
        t_ours = timed(lambda: ours(x), device)
        m_peer = peak_mib(lambda: peer(pixel_values=xp), device)
        t_peer = timed(lambda: peer(pixel_values=xp), device)
    tokens = frames * 196 + 1
    matrix = 12 * tokens * tokens * 4 / 2**20
    lines = [
        f"# Memory: joint space-time at {frames} x 224, fp32 inference, batch 1",
        "",
        f"Machine: {_machine(device)}; transformers {_transformers_version()}.",
        "",
        "| | peak memory of the forward (MiB) | time (s) |",
        "|---|---:|---:|",
        f"| ours (SDPA) | {m_ours:.0f} | {t_ours:.1f} |",
        f"| peer (eager attention) | {m_peer:.0f} | {t_peer:.1f} |",
        f"| ours / peer | **{m_ours / m_peer * 100:.0f}%** | {t_peer / t_ours:.2f}x faster |",
        "",
        f"One layer's attention matrix ({tokens} tokens, 12 heads, fp32) alone is "
        f"{matrix:.0f} MiB: the peer stores it (and its softmax), ours never does. Ours' "
        "figure includes the prepacked copy of its linear weights that this first forward "
        "makes (`timesformer.layers.linear`).",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_model.py --suite memory --frames {frames}`",
    ]
    return "\n".join(lines) + "\n"


def _plain(q, k, v):
    return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1) @ v


def _with_backend(backend):
    """SDPA restricted to one of its kernels (CUDA)."""
    from torch.nn.attention import sdpa_kernel

    def fn(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)

    return fn


def _attention_kernels(device: torch.device, compiled: bool = False) -> dict:
    kernels = {"sdpa": F.scaled_dot_product_attention, "plain": _plain}
    if device.type == "cuda":
        from torch.nn.attention import SDPBackend

        for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
            kernels[name.split("_")[0].lower()] = _with_backend(getattr(SDPBackend, name))
    if compiled:
        # One graph per shape and grad mode: room for all of them in dynamo's cache.
        torch._dynamo.config.cache_size_limit = 64
        kernels["plain compiled"] = torch.compile(_plain, dynamic=False)
    return kernels


def _attention_times(
    dtype, groups: int, length: int, reps: int, device, compiled: bool = False
) -> tuple[dict, dict]:
    """Median seconds of each kernel (SDPA, the plain path, on CUDA each of SDPA's own kernels,
    with ``compiled`` the plain path under torch.compile), forward and forward +
    backward; None where a kernel refuses the input."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(groups, 12, length, 64, generator=gen).to(device, dtype) for _ in "qkv")
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    usable = {}
    for name, fn in _attention_kernels(device, compiled).items():
        try:
            fn(qg, kg, vg).sum().backward()
            usable[name] = fn
        except RuntimeError:
            pass
    with torch.no_grad():
        fwd = alternate({n: (lambda f=f: f(q, k, v)) for n, f in usable.items()}, reps, device)

    def train(fn):
        return lambda: fn(qg, kg, vg).sum().backward()

    both = alternate({n: train(f) for n, f in usable.items()}, max(3, reps // 2), device)
    return fwd, both


def suite_attention(device: torch.device, reps: int, batch: int = 1, compiled: bool = False) -> str:
    """SDPA against the plain path (two batched products and a softmax) for the group shapes of
    divided (196 groups of 8, 8 groups of 197) and joint (1 group of 1569) attention at 8 x 224
    times ``batch``, and 196 groups of 16 (HR's temporal length), 12 heads of 64, forward alone
    and forward + backward. On CUDA each of SDPA's kernels (flash, efficient, cuDNN) is timed
    too; with ``compiled``, the plain path under torch.compile."""
    from timesformer.layers.attention import CPU_PLAIN_MAX_LEN

    names = list(_attention_kernels(device, compiled))
    where = "a CUDA device" if device.type == "cuda" else "the CPU"
    lines = [
        f"# Attention kernels on {where}: SDPA against the plain path",
        "",
        f"Machine: {_machine(device)}. Median of {reps} alternating reps (ms); "
        "fwd+bwd: forward and backward; -: the kernel refuses the input.",
        "",
        "| dtype | groups x length | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{n} fwd+bwd" for n in names)
        + " |",
        "|---|---|" + "---:|" * (2 * len(names)),
    ]
    for dtype in (torch.float32, torch.bfloat16):
        for groups, length in ((196, 8), (196, 16), (8, 197), (1, 1569)):
            fwd, both = _attention_times(dtype, groups * batch, length, reps, device, compiled)
            cells = [f"{t[n] * 1e3:.2f}" if n in t else "-" for t in (fwd, both) for n in names]
            lines.append(
                f"| {str(dtype).removeprefix('torch.')} | {groups * batch} x {length} | "
                + " | ".join(cells)
                + " |"
            )
    rule = (
        f"`timesformer.layers.attention` takes the plain path for bf16/fp16 on the CPU up to "
        f"length {CPU_PLAIN_MAX_LEN} (its matrix is then small), SDPA otherwise."
        if device.type == "cpu"
        else "`timesformer.layers.attention` on CUDA: see `CUDA_PLAIN_MAX_LEN` and "
        "`CUDA_SDPA_PRIORITY` there."
    )
    lines += [
        "",
        rule,
        "",
        "Command: `.venv/bin/python benchmarks/bench_model.py --suite attention"
        + (f" --device cuda --batch {batch}" if device.type == "cuda" else "")
        + (" --compile`" if compiled else "`"),
    ]
    return "\n".join(lines) + "\n"


def suite_linear(device: torch.device, reps: int) -> str:
    """``F.linear`` against oneDNN's prepacked product (``timesformer.layers.linear``) for every
    linear shape of TimeSformer-Base, divided, 8 x 224, batch 1, in fp32 and bf16."""
    from timesformer.layers import linear as packed

    shapes = [  # (rows, in, out, per block, what)
        (1568, 768, 768, 1, "temporal proj+fc, folded"),
        (1576, 768, 2304, 2, "qkv (temporal 1568 rows, spatial 1576)"),
        (1576, 768, 768, 1, "spatial proj"),
        (1569, 768, 3072, 1, "fc1 (+ GELU)"),
        (1569, 3072, 768, 1, "fc2"),
    ]
    lines = [
        "# Linear layers on the CPU: F.linear against the prepacked oneDNN product",
        "",
        f"Machine: {_machine(device)}. Median of {reps} alternating reps (ms); "
        "'per model' weighs each shape by its count in 12 blocks.",
        "",
        "| dtype | shape (rows x in -> out) | what | F.linear | prepacked | speed-up | "
        "packing once |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for dtype in (torch.float32, torch.bfloat16):
        total = {"plain": 0.0, "packed": 0.0}
        for rows, k, n, count, what in shapes:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(rows, k, generator=gen).to(dtype)
            lin = packed.Linear(k, n).to(dtype)
            gelu = what.startswith("fc1")
            w, b = lin.weight.detach(), lin.bias.detach()

            def plain(x=x, w=w, b=b):
                return F.linear(x, w, b)

            def prepacked(x=x, w=w, b=b, lin=lin, gelu=gelu):
                return packed.linear(x, w, b, lin, gelu=gelu)

            def pack(w=w, rows=rows):
                return torch.ops.mkldnn._reorder_linear_weight(w, rows)

            with torch.no_grad():
                t = alternate({"plain": plain, "packed": prepacked}, reps, device)
                t_pack = timed(pack, device)
            for key in total:
                total[key] += t[key] * count * 12
            lines.append(
                f"| {str(dtype).removeprefix('torch.')} | {rows} x {k} -> {n} | {what} | "
                f"{t['plain'] * 1e3:.2f} | {t['packed'] * 1e3:.2f} | "
                f"{t['plain'] / t['packed']:.2f}x | {t_pack * 1e3:.2f} |"
            )
        lines.append(
            f"| {str(dtype).removeprefix('torch.')} | per model | | "
            f"{total['plain'] * 1e3:.0f} | {total['packed'] * 1e3:.0f} | "
            f"**{total['plain'] / total['packed']:.2f}x** | |"
        )
    lines += [
        "",
        "The fc1 row's prepacked product has the exact GELU fused in; its F.linear time is the "
        "product alone.",
        "",
        "Command: `.venv/bin/python benchmarks/bench_model.py --suite linear`",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite",
        choices=("cpu", "memory", "scaling", "attention", "linear", "variants"),
        default="cpu",
    )
    parser.add_argument("--variants", default="base,hr,large", help="variants: base, hr, large")
    parser.add_argument(
        "--batch", default="1", help="variants: clips per batch, or per variant: base=16,hr=2"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="variants: also ours under torch.compile; attention: the compiled plain path",
    )
    parser.add_argument(
        "--compiled-ours",
        default="default",
        help="variants: attention settings of compiled ours (default,sdpa,...)",
    )
    parser.add_argument(
        "--compile-mode",
        default=None,
        help="variants: torch.compile mode of the compiled training step "
        "(e.g. max-autotune-no-cudagraphs; default: torch's default)",
    )
    parser.add_argument(
        "--ours", default="default", help="variants: attention settings of ours (sdpa,plain96)"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="variants: the device's bf16 peak"
    )
    parser.add_argument("--grid", choices=("axes", "full"), default="axes", help="scaling grid")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="scaling: per forward")
    parser.add_argument("--max-gib", type=float, default=6.0, help="scaling: peer attention")
    parser.add_argument("--no-compile", action="store_true", help="cpu: skip torch.compile rows")
    parser.add_argument("--reps", type=int, default=6, help="timed reps per model (6)")
    parser.add_argument("--train-reps", type=int, default=9, help="cpu: training-step reps (9)")
    parser.add_argument("--frames", type=int, default=32, help="frames for --suite memory (32)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    device = torch.device(args.device)
    tag = "gpu" if device.type == "cuda" else "cpu"
    if args.suite == "cpu":
        text = suite_cpu(device, args.reps, not args.no_compile, args.train_reps)
        name = f"model_{tag}.md"
    elif args.suite == "attention":
        batch = int(args.batch)
        text, name = suite_attention(device, args.reps, batch, args.compile), f"attention_{tag}.md"
    elif args.suite == "linear":
        text, name = suite_linear(device, args.reps), f"linear_{tag}.md"
    elif args.suite == "memory":
        text, name = suite_memory(device, args.frames), f"model_memory_{tag}.md"
    elif args.suite == "variants":
        from bench_variants import parse_batches, suite_variants

        names = _items(args.variants)
        batches = parse_batches(args.batch, names)
        text = suite_variants(
            device,
            names,
            batches,
            args.reps,
            args.peak_tflops,
            _items(args.compiled_ours) if args.compile else None,
            _items(args.ours),
            args.compile_mode,
        )
        name = f"variants_{tag}.md"
    else:
        from bench_scaling import suite_scaling

        text = suite_scaling(device, args.grid, args.max_seconds, args.max_gib)
        name = f"model_scaling_{tag}.md"
    write_result(text, name, args.out)
    return 0


def _items(spec: str) -> list[str]:
    """``"a, b,"`` -> ``["a", "b"]``: a comma-separated option's names."""
    return [item.strip() for item in spec.split(",") if item.strip()]


def write_result(text: str, name: str, out: str | None = None) -> Path:
    """Write a result table to ``out`` or ``benchmarks/results/name``, and show it."""
    path = Path(out) if out else RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    print(f"wrote {path}", file=sys.stderr)
    return path


if __name__ == "__main__":
    sys.exit(main())
