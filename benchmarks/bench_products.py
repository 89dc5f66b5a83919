"""How far a bf16 training step can go on this CPU: the step's matrix products, timed alone.

Both models spend most of a training step in matrix products that oneDNN already runs near the
machine's limit. This records every product of one step (``mm``, ``addmm``, ``bmm``,
``baddbmm``, convolutions and SDPA kernels, forward and backward, as autocast hands them to the
CPU kernels) for ours and for the peer, then replays the same calls with the same shapes, strides
and dtypes on their own, with nothing between them. The replayed time is a floor for the step:
what the products cost when every other operator (norms, softmax, GELU, copies, casts) takes no
time. The peer's whole step over ours' floor is therefore the most ours could reach against the
peer without computing fewer or faster products.

The replay reuses one buffer per (shape, stride, dtype), so its operands are warmer in the cache
than in the real step: if anything the floor comes out low and the bound high.

A second table takes ours' products one kind at a time (the same op on the same operand
shapes and strides), each repeated alone: its rate against the limit, and the time its calls
lose to the limit in one step, largest first. It shows which products are slow, as against the
step around them.

    .venv/bin/python benchmarks/bench_products.py    # results/training_products_cpu.md
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from bench_model import _machine, alternate, build_pair, inputs, train_step, write_result
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

aten = torch.ops.aten

PRODUCTS = {
    aten.mm.default,
    aten.addmm.default,
    aten.bmm.default,
    aten.baddbmm.default,
    aten.convolution.default,
    aten.convolution_backward.default,
    aten._scaled_dot_product_flash_attention_for_cpu.default,
    aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
}


class TensorSpec:
    """What a replay needs to rebuild an operand: shape, strides, dtype."""

    def __init__(self, t: torch.Tensor) -> None:
        self.key = (tuple(t.shape), tuple(t.stride()), t.dtype, t.device)
        self.contiguous = t.is_contiguous()

    def extent(self) -> int:
        shape, stride = self.key[0], self.key[1]
        return 1 + sum((s - 1) * st for s, st in zip(shape, stride, strict=True) if s > 0)


class Recorder(TorchDispatchMode):
    """Keeps (op, args, kwargs) of every product, operands replaced by ``TensorSpec``s."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in PRODUCTS:
            spec = lambda a: TensorSpec(a) if isinstance(a, torch.Tensor) else a  # noqa: E731
            self.calls.append((func, tree_map(spec, args), tree_map(spec, kwargs)))
        return func(*args, **kwargs)


def record(step: Callable[[], None]) -> list[tuple]:
    with Recorder() as rec:
        step()
    return rec.calls


def macs(func, args: tuple) -> int:
    """Multiply-accumulates of one recorded call (the SDPA kernels: QK^T and PV, backward 2x)."""
    shape = [a.key[0] if isinstance(a, TensorSpec) else None for a in args]
    if func is aten.mm.default:
        (m, k), (_, n) = shape[0], shape[1]
        return m * k * n
    if func is aten.addmm.default:
        (m, k), (_, n) = shape[1], shape[2]
        return m * k * n
    if func in (aten.bmm.default, aten.baddbmm.default):
        a, b = (shape[0], shape[1]) if func is aten.bmm.default else (shape[1], shape[2])
        return a[0] * a[1] * a[2] * b[2]
    if func is aten.convolution.default:
        weight = shape[1]
        out = conv_out(shape[0], weight, args[3], args[4], args[5])
        return math.prod(out) * math.prod(weight[1:])
    if func is aten.convolution_backward.default:
        grad_out, weight = shape[0], shape[2]
        mask = args[10]
        return math.prod(grad_out) * math.prod(weight[1:]) * (int(mask[0]) + int(mask[1]))
    backward = func is aten._scaled_dot_product_flash_attention_for_cpu_backward.default
    q, k = (shape[1], shape[2]) if backward else (shape[0], shape[1])
    forward_macs = 2 * math.prod(q[:-2]) * q[-2] * k[-2] * q[-1]  # (B, heads, L, d)
    return forward_macs * (2 if backward else 1)


def conv_out(x: tuple, w: tuple, stride, padding, dilation) -> tuple:
    spatial = [
        (size + 2 * p - d * (kk - 1) - 1) // s + 1
        for size, kk, s, p, d in zip(x[2:], w[2:], stride, padding, dilation, strict=True)
    ]
    return (x[0], w[0], *spatial)


def replayer(calls: list[tuple]) -> Callable[[], None]:
    """A function that runs the recorded calls again on random operands of the same layout."""
    buffers: dict[tuple, torch.Tensor] = {}

    def build(a):
        if not isinstance(a, TensorSpec):
            return a
        if a.key not in buffers:
            shape, stride, dtype, device = a.key
            flat = torch.randn(a.extent(), device=device).to(dtype)
            buffers[a.key] = flat.as_strided(shape, stride)
        return buffers[a.key]

    ready = [(f, tree_map(build, args), tree_map(build, kw)) for f, args, kw in calls]

    def run() -> None:
        for f, args, kw in ready:
            f(*args, **kw)

    return run


def inference_macs(ours, peer, x, xp) -> dict[str, int]:
    """MACs of one inference forward as each model runs it (counted, not timed). The packed
    linears are switched off for the count: their oneDNN op is not one the recorder reads."""
    import timesformer.layers.linear as packed

    ours.eval()
    peer.eval()
    saved, packed.PACK_CPU_LINEARS = packed.PACK_CPU_LINEARS, False
    try:
        with torch.no_grad():
            ours(x)  # the first call makes the cached folds; count the second
            counts = {
                "ours": record(lambda: ours(x)),
                "peer": record(lambda: peer(pixel_values=xp)),
            }
    finally:
        packed.PACK_CPU_LINEARS = saved
        ours.train()
        peer.train()
    return {name: sum(macs(f, a) for f, a, _ in c) for name, c in counts.items()}


def _kind(call: tuple) -> tuple:
    func, args, _ = call
    # Shape and strides; whether the operand is contiguous follows from them (for the table).
    operands = tuple((*a.key[:2], a.contiguous) for a in args if isinstance(a, TensorSpec))
    return func, operands


def per_kind(calls: list[tuple], mm: Callable[[], object], reps: int) -> list[tuple]:
    """(seconds lost to the limit per step, calls, seconds per call, rate, kind) of each kind of
    product in ``calls``, largest loss first; each kind timed alone, repeated, alternating with
    the limit's product ``mm`` (2048^3), so that the machine's drift leaves the rate alone."""
    kinds: dict[tuple, list[tuple]] = {}
    for call in calls:
        kinds.setdefault(_kind(call), []).append(call)
    rows = []
    for kind, group in kinds.items():
        t = alternate({"one": replayer(group[:1]), "mm": mm}, max(reps, 3), torch.device("cpu"))
        limit = 2048**3 / t["mm"]
        seconds = t["one"]
        work = macs(group[0][0], group[0][1])
        lost = len(group) * (seconds - work / limit)
        rows.append((lost, len(group), seconds, work / seconds / limit, kind))
    return sorted(rows, key=lambda r: -r[0])


def _describe(kind: tuple) -> str:
    func, operands = kind
    name = str(func).removeprefix("aten.").removesuffix(".default")
    shapes = ", ".join(
        "x".join(map(str, shape)) + ("" if contiguous else " (strided)")
        for shape, _, contiguous in operands
    )
    return f"`{name}` {shapes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="timed reps of each (3)")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    device = torch.device("cpu")
    ours, peer = build_pair("divided", 8, 224, device)
    ours.train()
    peer.train()
    x, xp = inputs(8, 224, device)
    label = torch.tensor([3])
    steps = {
        "ours": train_step(ours, lambda: ours(x), label, device),
        "peer": train_step(peer, lambda: peer(pixel_values=xp).logits, label, device),
    }
    calls = {name: record(step) for name, step in steps.items()}
    forward_macs = inference_macs(ours, peer, x, xp)
    n = 2048
    a, b = torch.randn(n, n).bfloat16(), torch.randn(n, n).bfloat16()
    fns = dict(steps)
    fns |= {f"{name} products": replayer(c) for name, c in calls.items()}
    fns["mm"] = lambda: a @ b
    t0 = time.perf_counter()
    t = alternate(fns, args.reps, device)
    limit = n**3 / t["mm"]
    work = {name: sum(macs(f, a) for f, a, _ in c) for name, c in calls.items()}

    rows = [
        ("products per step (calls)", *(f"{len(calls[k])}" for k in steps)),
        ("their MACs (G)", *(f"{work[k] / 1e9:.1f}" for k in steps)),
        (
            "MACs of an inference forward, for comparison (G)",
            *(f"{forward_macs[k] / 1e9:.1f}" for k in steps),
        ),
        ("products alone (ms)", *(f"{t[k + ' products'] * 1e3:.0f}" for k in steps)),
        (
            "products' rate, of the matmul limit",
            *(f"{work[k] / t[k + ' products'] / limit:.0%}" for k in steps),
        ),
        ("whole step (ms)", *(f"{t[k] * 1e3:.0f}" for k in steps)),
        (
            "everything else (ms)",
            *(f"{(t[k] - t[k + ' products']) * 1e3:.0f}" for k in steps),
        ),
    ]
    bound = t["peer"] / t["ours products"]
    kinds = per_kind(calls["ours"], fns["mm"], args.reps)
    alone = sum(r[1] * r[2] for r in kinds)
    lost_alone = sum(r[0] for r in kinds)
    shown = kinds[:12]
    lines = [
        "# Training step: the matrix products alone (TimeSformer-Base, divided, 8 x 224, batch 1)",
        "",
        f"Machine: {_machine(device)}. One bf16 training step (forward + backward under "
        "autocast, no optimizer) of ours and of the peer; every matrix product of the step "
        "recorded and replayed alone with the same shapes, strides and dtypes. Medians of "
        f"{args.reps} reps, all alternating; the 2048^3 bf16 matrix product (the limit) ran at "
        f"{limit / 1e9:.0f} GMAC/s.",
        "",
        "| | ours | peer |",
        "|---|---:|---:|",
        *(f"| {what} | {o} | {p} |" for what, o, p in rows),
        "",
        f"Ours against the peer, whole step: **{t['peer'] / t['ours']:.2f}x**. With every "
        "operator other than the products taking no time, ours would be at most "
        f"**{bound:.2f}x** the peer (the peer's step over ours' products alone).",
        "",
        "## Ours' products by kind, each alone",
        "",
        "Each kind (op and operand shapes; `strided` marks a transposed or sliced operand) "
        "repeated alone, alternating with the limit's product, and held against the limit "
        f"measured beside it; the {len(shown)} of {len(kinds)} kinds that lose the most time to "
        "the limit in one step. Over all kinds the products take "
        f"{alone * 1e3:.0f} ms this way, {lost_alone * 1e3:.0f} ms more than at the limit "
        f"(against {t['ours products'] * 1e3:.0f} ms replayed in the step's order and "
        f"{t['ours'] * 1e3:.0f} ms for the whole step in the first table's runs).",
        "",
        "| product | calls per step | ms per call | of the limit | ms lost per step |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {_describe(kind)} | {n} | {sec * 1e3:.2f} | {rate:.0%} | {lost * 1e3:.1f} |"
            for lost, n, sec, rate, kind in shown
        ),
        "",
        f"Timed in {time.perf_counter() - t0:.0f} s. Command: "
        "`.venv/bin/python benchmarks/bench_products.py`",
    ]
    write_result("\n".join(lines) + "\n", "training_products_cpu.md", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
