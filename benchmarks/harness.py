"""What the benchmarks share: timing, peak memory, the two models, the machine, results, plots.

The suites (``bench_*.py`` and the other scripts here) import from this module and from the
library, never from each other.

- Timing: ``alternate`` runs two or more callables in turn, rep by rep, after one warm-up each,
  so that the machine's drift hits them alike; ``alternate_times`` keeps every rep's seconds and
  ``ratio_spread`` reads the per-rep ratio of two of them.
- Memory: ``peak_mib`` (CUDA's allocator, or on the CPU the rise of the resident-set high-water
  mark, reset through /proc/self/clear_refs after malloc_trim).
- The models: ``build_ours`` is TimeSformer-Base from seed 0 with a random time embedding and
  temporal linears, ``build_peer`` transformers' ``TimesformerForVideoClassification`` holding
  its weights (written by ``export_hf``), ``inputs`` the same pixels in each one's layout,
  ``train_step`` a forward + backward under bf16 autocast without the optimizer.
- The machine: ``machine`` describes it in one line, ``machine_kind`` names its results file
  (``cpu``, ``cpu_intel``, ``gpu``): one current table per suite and kind of machine.
- Results: ``result`` lays out a table with the command that makes it at the top, and
  ``write_result`` writes it under ``benchmarks/results/``.
- CUDA attention settings: ``attention_settings`` maps the names of ``--ours`` (``default``,
  ``nokernel``, ``sdpa``, ...) to ``timesformer.layers.backend.Backend`` settings.
- Plots: ``figure`` and ``save_figure`` (matplotlib, Agg).

``ab_revisions.py`` builds the models here against older revisions of the library, so the model
helpers use only what every revision has (``model_config``, ``TimeSformer``, ``export_hf``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = ".venv/bin/python"


# ---------------------------------------------------------------------------- timing
def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``fn`` (synchronised on a CUDA device)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


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


def alternate(
    fns: dict[str, Callable[[], object]], reps: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of each fn, run in turn rep by rep after one warm-up each."""
    return {k: statistics.median(v) for k, v in alternate_times(fns, reps, device).items()}


def ratio_spread(slow: list[float], fast: list[float], digits: int = 2) -> str:
    """The per-rep ratios slow/fast of one alternating run: "median (quartiles lo-hi)"."""
    ratios = [s / f for s, f in zip(slow, fast, strict=True)]
    lo, mid, hi = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return f"{mid:.{digits}f}x ({lo:.{digits}f}-{hi:.{digits}f}x)"


# ---------------------------------------------------------------------------- memory
def status_mib(key: str) -> float:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``, ...) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def reset_peak() -> float:
    """Release free heap memory, reset the high-water mark; the resident MiB now."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_mib("VmRSS")


def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory of ``fn()`` above what was held before it (MiB)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    before = reset_peak()
    fn()
    return status_mib("VmHWM") - before


# ---------------------------------------------------------------------------- the models
def build_ours(attention: str, frames: int, size: int, device: torch.device, classes: int = 400):
    """Our TimeSformer-Base from seed 0, in eval mode."""
    import timesformer
    from timesformer.variants import model_config

    torch.manual_seed(0)
    config = model_config(
        "timesformer_base",
        attention=attention,
        num_frames=frames,
        img_size=size,
        num_classes=classes,
        drop_path_rate=0.0,
    )
    ours = timesformer.TimeSformer(config)
    # Random non-zero time embedding and temporal linears so that every part computes something.
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name == "time_embed" or "temporal_fc" in name:
                p.normal_(0, 0.02)
    return ours.eval().to(device)


def copy_of(ours, dtype: torch.dtype | None = None):
    """A second model with ``ours``' config and weights, in eval mode (in ``dtype``)."""
    import timesformer

    other = timesformer.TimeSformer(ours.config)
    other.load_state_dict(ours.state_dict())
    device = next(ours.parameters()).device
    return other.eval().to(device, dtype)


def build_peer(ours, device: torch.device):
    """transformers' model holding ``ours``' weights (written by ``export_hf``), in eval mode."""
    from transformers import TimesformerForVideoClassification

    from timesformer.checkpoints.hf import export_hf

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(ours, tmp)
        peer = TimesformerForVideoClassification.from_pretrained(tmp)
    return peer.eval().to(device)


def build_pair(attention: str, frames: int, size: int, device: torch.device, classes: int = 400):
    """Our TimeSformer-Base and the transformers model with the same weights, in eval mode."""
    ours = build_ours(attention, frames, size, device, classes)
    return ours, build_peer(ours, device)


def inputs(frames: int, size: int, device: torch.device, batch: int = 1):
    """Ours (B, 3, T, H, W) and the peer's (B, T, 3, H, W), the same pixels, both contiguous."""
    x = torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(1))
    return x.to(device), x.transpose(1, 2).contiguous().to(device)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device``."""
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


# ---------------------------------------------------------------------------- the machine
def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or what ``platform`` knows)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """One line: the device (or CPU, its cores and threads), Python and torch."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}; torch {torch.__version__}"
    return (
        f"{cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def machine_kind(device: torch.device) -> str:
    """The suffix of a results file: ``gpu`` on a CUDA device, ``cpu_intel`` on an Intel CPU,
    ``cpu`` on any other CPU (the AMD EPYC of the tables here)."""
    if device.type == "cuda":
        return "gpu"
    return "cpu_intel" if "intel" in cpu_name().lower() else "cpu"


def transformers_version() -> str:
    import transformers

    return transformers.__version__


# ---------------------------------------------------------------------------- results
def command(script: str, *args: str) -> str:
    """The command line of a script in this folder, as the results and docs state it."""
    return " ".join([PYTHON, f"benchmarks/{script}", *(a for a in args if a)])


def result(title: str, cmd: str, lines: list[str]) -> str:
    """A results file: its title, the command that makes it, then ``lines``."""
    return "\n".join([f"# {title}", "", f"Command: `{cmd}`", "", *lines]).rstrip("\n") + "\n"


def write_result(text: str, name: str, out: str | Path | None = None) -> Path:
    """Write a result table to ``out`` or ``benchmarks/results/name``, and show it."""
    path = Path(out) if out else RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    print(text)
    print(f"wrote {path}", file=sys.stderr)
    return path


def items(spec: str) -> list[str]:
    """``"a, b,"`` -> ``["a", "b"]``: a comma-separated option's names."""
    return [item.strip() for item in spec.split(",") if item.strip()]


# ---------------------------------------------------------------------------- CUDA settings
#: What each ``--ours`` name sets in ``timesformer.layers.backend``, over the library's
#: settings: ``default`` changes nothing; ``nokernel`` turns the Triton kernel for groups of up to
#: 16 tokens off (eager and compiled); ``sdpa`` takes SDPA for every group in PyTorch's kernel
#: order, ``plain96`` the plain path for groups of up to 96 tokens, ``flash`` SDPA's flash kernel
#: first (these three without the Triton kernel).
ATTENTION_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "nokernel": {"short_group_kernel": False, "short_group_kernel_compiled": False},
    "sdpa": {"cuda_plain_max_len": 0, "cuda_sdpa_priority": None},
    "plain96": {"cuda_plain_max_len": 96, "cuda_sdpa_priority": None},
    "flash": {"cuda_plain_max_len": 0, "cuda_sdpa_priority": "flash"},
    "plain96+flash": {"cuda_plain_max_len": 96, "cuda_sdpa_priority": "flash"},
}


def attention_settings(names: list[str]) -> dict[str, Any]:
    """``--ours`` names -> ``Backend`` settings (see ``ATTENTION_SETTINGS``)."""
    from torch.nn.attention import SDPBackend

    from timesformer.layers.backend import get_backend

    unknown = set(names) - set(ATTENTION_SETTINGS)
    if unknown:
        raise SystemExit(
            f"unknown attention setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(ATTENTION_SETTINGS)}"
        )
    flash = (
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.MATH,
    )
    library = get_backend()
    settings = {}
    for name in names:
        changes = dict(ATTENTION_SETTINGS[name])
        if changes.get("cuda_sdpa_priority") == "flash":
            changes["cuda_sdpa_priority"] = flash
        if name not in ("default", "nokernel"):
            changes |= ATTENTION_SETTINGS["nokernel"]
        settings[name] = dataclasses.replace(library, **changes)
    return settings


def with_backend(settings, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with the library's kernel choices set to ``settings`` (a compiled ``fn`` is
    guarded on them, so each setting gets its own graph)."""
    from timesformer.layers.backend import set_backend

    def run():
        set_backend(settings)
        return fn()

    return run


def allow_inductor_cantsplit() -> None:
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


# ---------------------------------------------------------------------------- plots
def figure(rows: int = 1, cols: int = 1, **kwargs: Any):
    """A matplotlib figure and its axes, drawn off-screen (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, **kwargs)


def save_figure(fig, path: Path, dpi: int = 100) -> Path:
    """Save ``fig`` to ``path`` and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
