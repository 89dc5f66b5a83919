"""Our model against transformers' TimeSformer: same weights, same inputs, same process.

The peer is ``transformers.TimesformerForVideoClassification`` holding our weights (written with
``export_hf`` and loaded by ``from_pretrained``), run in fp32 and under bf16 autocast. The machine's
limit is the throughput of one large matrix product (fp32 and bf16) measured in the same run.
Ours and the peer alternate rep by rep (``harness.alternate``) so that the machine's drift hits
both alike; the tables give medians. Each suite writes one table per kind of machine
(``harness.machine_kind``: ``cpu``, ``cpu_intel``, ``gpu``) under ``benchmarks/results/``:

- ``cpu``: batch 1, 8 x 224, divided, TimeSformer-Base (400 classes): fp32 inference, bf16
  inference (ours with bf16 weights and under autocast; the peer under autocast) with the logits'
  cosine similarity to fp32, and a bf16 training step (forward + backward under autocast); each
  also under ``torch.compile`` (``--no-compile`` skips those).
- ``memory``: joint space-time at 32 x 224 (the paper's out-of-memory point), fp32 inference: peak
  memory of the forward pass above what the model and input already hold.
- ``linear``: every linear shape of TimeSformer-Base, ``F.linear`` against the prepacked oneDNN
  product that ``timesformer.layers.linear`` uses at CPU inference.
- ``attention``: SDPA against the plain path (and, on CUDA, each of SDPA's kernels) for the group
  shapes of divided and joint attention: what the thresholds of ``layers.backend`` rest on.
- ``macs``: the multiply-accumulates of every matrix product that one inference forward and one
  training step of each model run (counted, not timed; the same on every machine).

    .venv/bin/python benchmarks/bench_model.py --suite cpu      # results/model_cpu.md
    .venv/bin/python benchmarks/bench_model.py --suite memory   # results/model_memory_cpu.md
    .venv/bin/python benchmarks/bench_model.py --suite linear   # results/linear_cpu.md
    .venv/bin/python benchmarks/bench_model.py --suite attention --device cuda --batch 32
    .venv/bin/python benchmarks/bench_model.py --suite macs     # results/model_macs.md
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from harness import (
    alternate,
    alternate_times,
    autocast,
    build_pair,
    command,
    copy_of,
    inputs,
    machine,
    machine_kind,
    peak_mib,
    ratio_spread,
    result,
    timed,
    train_step,
    transformers_version,
    write_result,
)

from timesformer.flops import count_macs
from timesformer.layers.backend import get_backend, set_backend
from timesformer.variants import model_config


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

    ours16 = copy_of(ours, torch.bfloat16)
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

    cmd = command(
        "bench_model.py",
        "--suite cpu",
        "" if compiled else "--no-compile",
        f"--reps {reps}" if reps != 6 else "",
        f"--train-reps {train_reps}" if train_reps != 9 else "",
    )
    lines = [
        f"Machine: {machine(device)}; transformers {transformers_version()}. Ours, the peer "
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
    ]
    return result("Model speed: TimeSformer-Base, divided, 8 x 224, batch 1", cmd, lines)


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
        f"Machine: {machine(device)}; transformers {transformers_version()}.",
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
    ]
    cmd = command("bench_model.py", "--suite memory", f"--frames {frames}" if frames != 32 else "")
    return result(
        f"Memory: joint space-time at {frames} x 224, fp32 inference, batch 1", cmd, lines
    )


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
    names = list(_attention_kernels(device, compiled))
    where = "a CUDA device" if device.type == "cuda" else "the CPU"
    lines = [
        f"Machine: {machine(device)}. Median of {reps} alternating reps (ms); "
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
        f"length {get_backend().cpu_plain_max_len} (its matrix is then small), SDPA otherwise."
        if device.type == "cpu"
        else "`timesformer.layers.attention` on a CUDA device takes the plain path for groups "
        f"of up to {get_backend().cuda_plain_max_len} tokens and SDPA in the kernel order "
        f"{get_backend().cuda_sdpa_priority or 'of PyTorch'} otherwise "
        "(`timesformer.layers.backend`)."
    )
    lines += ["", rule]
    cmd = command(
        "bench_model.py",
        "--suite attention",
        f"--device cuda --batch {batch}" if device.type == "cuda" else "",
        f"--reps {reps}" if reps != 6 else "",
        "--compile" if compiled else "",
    )
    return result(f"Attention kernels on {where}: SDPA against the plain path", cmd, lines)


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
        f"Machine: {machine(device)}. Median of {reps} alternating reps (ms); "
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
    ]
    cmd = command("bench_model.py", "--suite linear", f"--reps {reps}" if reps != 6 else "")
    return result(
        "Linear layers on the CPU: F.linear against the prepacked oneDNN product", cmd, lines
    )


# ---------------------------------------------------------------------------- counting MACs
aten = torch.ops.aten


def _sdpa_macs(q: tuple, k: tuple) -> int:
    """QK^T and PV of one SDPA call on (B, heads, L, d) operands."""
    return 2 * math.prod(q[:-2]) * q[-2] * k[-2] * q[-1]


def _conv_macs(x: tuple, w: tuple, stride, padding, dilation) -> int:
    spatial = [
        (size + 2 * p - d * (kk - 1) - 1) // s + 1
        for size, kk, s, p, d in zip(x[2:], w[2:], stride, padding, dilation, strict=True)
    ]
    return x[0] * w[0] * math.prod(spatial) * math.prod(w[1:])


def product_macs(func, args: tuple) -> int | None:
    """Multiply-accumulates of one call of a matrix product (None: not a product counted here)."""
    shape = [tuple(a.shape) if isinstance(a, torch.Tensor) else None for a in args]
    if func is aten.mm.default:
        return shape[0][0] * shape[0][1] * shape[1][1]
    if func is aten.addmm.default:
        return shape[1][0] * shape[1][1] * shape[2][1]
    if func is aten.bmm.default:
        return math.prod(shape[0]) * shape[1][2]
    if func is aten.baddbmm.default:
        return math.prod(shape[1]) * shape[2][2]
    if func is aten.convolution.default:
        return _conv_macs(shape[0], shape[1], args[3], args[4], args[5])
    if func is aten.convolution_backward.default:
        mask = args[10]
        per = math.prod(shape[0]) * math.prod(shape[2][1:])
        return per * (int(mask[0]) + int(mask[1]))
    if func is aten._scaled_dot_product_flash_attention_for_cpu.default:
        return _sdpa_macs(shape[0], shape[1])
    if func is aten._scaled_dot_product_flash_attention_for_cpu_backward.default:
        return 2 * _sdpa_macs(shape[1], shape[2])
    return None


def count_run_macs(fn) -> tuple[int, set[str]]:
    """MACs of the matrix products ``fn()`` runs, as they reach the kernels; and the names of
    ops that look like products but are not counted (so that the table can say so)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.macs, self.missed = 0, set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            n = product_macs(func, args)
            if n is not None:
                self.macs += n
            elif any(w in str(func) for w in ("mm", "conv", "attention", "linear")):
                self.missed.add(str(func))
            return func(*args, **(kwargs or {}))

    with Counter() as counter:
        fn()
    return counter.macs, counter.missed


def suite_macs() -> str:
    """MACs of one inference forward (fp32) and one bf16 training step of ours and the peer,
    TimeSformer-Base, divided, 8 x 224, batch 1, counted as the products reach the kernels.
    The prepacked linears are off for the count: their oneDNN op is another product."""
    device = torch.device("cpu")
    ours, peer = build_pair("divided", 8, 224, device)
    x, xp = inputs(8, 224, device)
    label = torch.tensor([3])
    nominal = count_macs(model_config("timesformer_base", attention="divided"))
    counts, missed = {}, set()
    before = set_backend(pack_cpu_linears=False)
    try:
        with torch.no_grad():
            ours(x)  # the first call makes the cached folds; count the second
            for who, fn in (("ours", lambda: ours(x)), ("peer", lambda: peer(pixel_values=xp))):
                counts["infer", who], m = count_run_macs(fn)
                missed |= m
        ours.train()
        peer.train()
        for who, fn in (
            ("ours", train_step(ours, lambda: ours(x), label, device)),
            ("peer", train_step(peer, lambda: peer(pixel_values=xp).logits, label, device)),
        ):
            counts["train", who], m = count_run_macs(fn)
            missed |= m
    finally:
        set_backend(before)
    lines = [
        f"Machine: {machine(device)}; transformers {transformers_version()}. Every matrix "
        "product (`mm`, `addmm`, `bmm`, `baddbmm`, convolutions and SDPA's kernels, forward and "
        "backward) counted as it reaches the kernels; ours with its prepacked linears off. The "
        f"paper's nominal count for this model is {nominal / 1e9:.1f} G per view.",
        "",
        "| MACs (G) | ours | peer | ours / peer |",
        "|---|---:|---:|---:|",
    ]
    for key, what in (("infer", "fp32 inference forward"), ("train", "bf16 training step")):
        o, p = counts[key, "ours"], counts[key, "peer"]
        lines.append(f"| {what} | {o / 1e9:.1f} | {p / 1e9:.1f} | {o / p:.1%} |")
    if missed:
        lines += ["", f"Not counted: {', '.join(sorted(missed))}."]
    title = "Matrix-product MACs: TimeSformer-Base, divided, 8 x 224, batch 1"
    return result(title, command("bench_model.py", "--suite macs"), lines)


SUITES = ("cpu", "memory", "linear", "attention", "macs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=SUITES, default="cpu")
    parser.add_argument("--reps", type=int, default=6, help="timed reps per model (6)")
    parser.add_argument("--train-reps", type=int, default=9, help="cpu: training-step reps (9)")
    parser.add_argument("--no-compile", action="store_true", help="cpu: skip torch.compile rows")
    parser.add_argument("--frames", type=int, default=32, help="memory: frames (32)")
    parser.add_argument("--batch", type=int, default=1, help="attention: clips per batch (1)")
    parser.add_argument(
        "--compile", action="store_true", help="attention: the plain path compiled too"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    device = torch.device(args.device)
    kind = machine_kind(device)
    if args.suite == "cpu":
        text = suite_cpu(device, args.reps, not args.no_compile, args.train_reps)
        name = f"model_{kind}.md"
    elif args.suite == "memory":
        text, name = suite_memory(device, args.frames), f"model_memory_{kind}.md"
    elif args.suite == "linear":
        text, name = suite_linear(device, args.reps), f"linear_{kind}.md"
    elif args.suite == "attention":
        text = suite_attention(device, args.reps, args.batch, args.compile)
        name = f"attention_{kind}.md"
    else:
        text, name = suite_macs(), "model_macs.md"
    write_result(text, name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
