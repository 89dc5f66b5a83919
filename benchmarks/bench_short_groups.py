"""The Triton kernel for short groups against the attention layer's own path (CUDA).

Times ``Attention(768, 12)`` without its output projection (``project=False``) on divided
attention's temporal groups: base's 8 tokens (batch 32: 6,272 groups) and HR's 16 (batch 2:
1,568 groups), in bf16, forward alone and forward + backward, with the kernel off (the library's
path: the plain path for 8 tokens, SDPA for 16) and on, at ``short_groups.warps()``' choice
per pass and with 1, 2, 4 and 8 warps per program (``short_groups.NUM_WARPS``). The fused qkv
projection alone is timed too: the layer's time less the projection's is the attention's.
Before timing, the kernel's output and input gradient are checked against the library's path.

    python3 benchmarks/bench_short_groups.py --out /tmp/gpu/short_groups_gpu.md   # CUDA only
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from bench_model import _machine, alternate, write_result
from bench_variants import TUNED, Setting, _library, _set

from timesformer.layers import short_groups
from timesformer.layers.attention import Attention

SHAPES = (("base, batch 32", 32 * 196, 8), ("HR, batch 2", 2 * 784, 16))
WARPS = (1, 2, 4, 8)


def _kernel(warps: int) -> Setting:
    """The library's attention choices with the kernel at ``warps`` per program (0: off,
    ``TUNED``: ``short_groups.warps()``' choice)."""
    return (*_library()[:2], warps, warps != 0)


def _check(layer: Attention, x: torch.Tensor) -> tuple[float, float]:
    """Cosine similarity of the kernel's output and input gradient to the library's."""
    upstream = torch.randn(x.shape, device=x.device, dtype=x.dtype)
    got = []
    for warps in (0, TUNED):
        _set(_kernel(warps))
        xg = x.detach().requires_grad_()
        out = layer(xg, project=False)
        (grad,) = torch.autograd.grad(out, xg, upstream)
        got.append((out.float().flatten(), grad.float().flatten()))
    return tuple(
        F.cosine_similarity(got[0][i], got[1][i], dim=0).item()
        for i in range(2)  # type: ignore[return-value]
    )


def measure(groups: int, length: int, reps: int, inner: int, device: torch.device) -> dict:
    """Milliseconds per call of each setting, forward and forward + backward."""
    torch.manual_seed(0)
    layer = Attention(768, 12).to(device, torch.bfloat16).train()
    x = torch.randn(groups, length, 768, device=device, dtype=torch.bfloat16)
    xg = x.clone().requires_grad_()
    upstream = torch.randn_like(x)
    cosines = _check(layer, x)
    settings = {"library": _kernel(0), "kernel, tuned": _kernel(TUNED)}
    settings |= {f"kernel, {w} warps": _kernel(w) for w in WARPS}

    def forward(setting):
        def run():
            _set(setting)
            with torch.no_grad():
                for _ in range(inner):
                    layer(x, project=False)

        return run

    def train(setting):
        def run():
            _set(setting)
            for _ in range(inner):
                layer(xg, project=False).backward(upstream)

        return run

    def projection(grad: bool):
        def run():
            for _ in range(inner):
                if grad:
                    layer.qkv(xg).backward(
                        torch.ones(1, device=device).expand(groups, length, 2304)
                    )
                else:
                    with torch.no_grad():
                        layer.qkv(x)

        return run

    fns = {("fwd", n): forward(u) for n, u in settings.items()}
    fns |= {("fwd+bwd", n): train(u) for n, u in settings.items()}
    fns |= {
        ("fwd", "qkv projection"): projection(False),
        ("fwd+bwd", "qkv projection"): projection(True),
    }
    t = alternate(fns, reps, device)
    _set(settings["library"])
    return {"ms": {k: v * 1e3 / inner for k, v in t.items()}, "cosines": cosines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--inner", type=int, default=10, help="calls per timed rep")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None, help="Markdown file (default: benchmarks/results/)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type != "cuda" or not torch.cuda.is_available():
        print(
            "bench_short_groups.py: needs a CUDA device (the kernel runs there only)",
            file=sys.stderr,
        )
        return 2
    if not short_groups.available():
        print("bench_short_groups.py: needs triton", file=sys.stderr)
        return 2
    names = (
        ["library", "kernel, tuned"] + [f"kernel, {w} warps" for w in WARPS] + ["qkv projection"]
    )
    lines = [
        "# Attention within short groups: the Triton kernel against the layer's own path",
        "",
        f"Device: {_machine(device)}. `Attention(768, 12)` without its output projection, bf16, "
        f"milliseconds per call: medians of {args.reps} alternating reps of {args.inner} calls. "
        "`library` is the layer's path with the kernel off; `kernel, tuned` the kernel at "
        "`short_groups.warps()`' choice per pass; `qkv projection` is the fused "
        "projection alone, which every other column includes.",
        "",
        "| groups | pass | " + " | ".join(names) + " | cosine out / grad |",
        "|---|---|" + "---:|" * (len(names) + 1),
    ]
    for label, groups, length in SHAPES:
        got = measure(groups, length, args.reps, args.inner, device)
        for kind in ("fwd", "fwd+bwd"):
            cells = [f"{got['ms'][(kind, n)]:.3f}" for n in names]
            cos = "{:.5f} / {:.5f}".format(*got["cosines"]) if kind == "fwd" else ""
            lines.append(
                f"| {label}: {groups} x {length} | {kind} | " + " | ".join(cells) + f" | {cos} |"
            )
        print(lines[-2] + "\n" + lines[-1], flush=True)
    lines += ["", "Command: `python3 benchmarks/bench_short_groups.py`"]
    write_result("\n".join(lines) + "\n", "short_groups_gpu.md", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
