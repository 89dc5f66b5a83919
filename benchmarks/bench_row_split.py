"""Does a weight gradient over a multiple of 32 rows pay off in the bf16 training step? (No.)

On this project's Intel CPU (AMX), oneDNN's bf16 weight-gradient product ``g^T x`` (N x M by
M x K, M the rows) runs clearly faster when M is a multiple of 32. TimeSformer-Base's step has
M = 1569 for the MLP (1 + 8 x 196 tokens) and 1576 for the spatial qkv and proj (8 x 197), but
1568 for the temporal ones. This measures:

1. each weight-gradient product of the step alone at 1568, 1569 and 1576 rows, and split into
   a product over the largest multiple of 32 rows plus the remaining rows added in place
   (``addmm_``), which gives the same sum in another order;
2. the whole bf16 training step (forward + backward under autocast, no optimizer) of ours with
   autograd's linear against a linear whose backward splits its weight gradient that way,
   alternating rep by rep in one process.

    .venv/bin/python benchmarks/bench_row_split.py    # results/row_split_cpu.md
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from bench_model import (
    _machine,
    alternate,
    alternate_times,
    build_ours,
    inputs,
    ratio_spread,
    train_step,
    write_result,
)

ALIGN = 32
# (out, in) of the step's linears: fc1, fc2, qkv, proj (and the folded temporal product).
SHAPES = ((3072, 768), (768, 3072), (2304, 768), (768, 768))
ROWS = (1568, 1569, 1576)


class SplitWeightGrad(torch.autograd.Function):
    """y = x W^T + b for x (M, K), W (N, K), b (N,), all bf16; the backward computes W's
    gradient over the first M - M % 32 rows, then adds the last rows' product in place."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return torch.mm(x, w.t()) if b is None else torch.addmm(b, x, w.t())

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        return g @ w, split_product(g, x), g.sum(0) if ctx.has_bias else None


def split_product(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """g^T x for g (M, N), x (M, K): (N, K), over the aligned rows first, the rest in place."""
    head = g.shape[0] - g.shape[0] % ALIGN
    out = torch.mm(g[:head].t(), x[:head])
    if head < g.shape[0]:
        out.addmm_(g[head:].t(), x[head:])
    return out


@contextlib.contextmanager
def split_linears() -> Iterator[None]:
    """Every ``F.linear`` under CPU bf16 autocast with gradients and unaligned rows goes through
    ``SplitWeightGrad`` (the library calls ``F.linear`` by attribute, so patching it reaches
    every linear of the step, the folded temporal product included)."""
    original = F.linear

    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if not (torch.is_grad_enabled() and torch.is_autocast_enabled("cpu") and rows % ALIGN):
            return original(x, w, b)
        dt = torch.get_autocast_dtype("cpu")
        bias = None if b is None else b.to(dt)
        out = SplitWeightGrad.apply(x.reshape(rows, -1).to(dt), w.to(dt), bias)
        return out.reshape(*x.shape[:-1], w.shape[0])

    F.linear = linear
    try:
        yield
    finally:
        F.linear = original


def products_table(reps: int) -> list[str]:
    lines = [
        "| weight (N x K) | rows M | one product (ms) | GMAC/s | split: 32-row multiple + rest "
        "(ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    gen = torch.Generator().manual_seed(0)
    for n, k in SHAPES:
        for m in ROWS:
            g = torch.randn(m, n, generator=gen).bfloat16()
            x = torch.randn(m, k, generator=gen).bfloat16()
            # The same sum in another order: equal up to bf16 rounding.
            exact = g.float().t() @ x.float()
            torch.testing.assert_close(split_product(g, x).float(), exact, rtol=0.02, atol=0.5)
            fns = {"one": lambda g=g, x=x: torch.mm(g.t(), x)}
            if m % ALIGN:
                fns["split"] = lambda g=g, x=x: split_product(g, x)
            t = alternate(fns, reps, torch.device("cpu"))
            one = t["one"] * 1e3
            split = t.get("split", t["one"]) * 1e3
            rate = n * k * m / one / 1e6
            lines.append(f"| {n} x {k} | {m} | {one:.2f} | {rate:.0f} | {split:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=16, help="alternating step reps (16)")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    device = torch.device("cpu")
    t0 = time.perf_counter()
    products = products_table(30)

    model = build_ours("divided", 8, 224, device)
    model.train()
    x, _ = inputs(8, 224, device)
    step = train_step(model, lambda: model(x), torch.tensor([3]), device)

    def split_step() -> None:
        with split_linears():
            step()

    times = alternate_times({"autograd": step, "split": split_step}, args.reps, device)
    base, split = (statistics.median(times[k]) * 1e3 for k in ("autograd", "split"))
    lines = [
        "# Weight gradients over a multiple of 32 rows (bf16, CPU)",
        "",
        f"Machine: {_machine(device)}. Part 1: each weight-gradient product g^T x of "
        "TimeSformer-Base's bf16 training step alone (medians of 30 reps, alternating with "
        "its split), and the same sum split into a product over the largest multiple of 32 "
        "rows plus the rest added in place. Part 2: the whole training step of ours "
        "(divided, 8 x 224, batch 1, forward + backward under bf16 autocast, no optimizer) "
        "with autograd's linear and with the split one, alternating, "
        f"{args.reps} reps.",
        "",
        *products,
        "",
        "| training step | ms (median) |",
        "|---|---:|",
        f"| autograd's linear | {base:.0f} |",
        f"| weight gradient split at a multiple of 32 rows | {split:.0f} |",
        "",
        f"Speed-up of the split, rep by rep: **{ratio_spread(times['autograd'], times['split'])}**"
        " (median, quartiles).",
        "",
        f"Timed in {time.perf_counter() - t0:.0f} s. Command: "
        "`.venv/bin/python benchmarks/bench_row_split.py`",
        "",
    ]
    write_result("\n".join(lines), "row_split_cpu.md", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
