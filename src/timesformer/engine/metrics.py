"""Accuracy, run logs (metrics.jsonl, TensorBoard when installed) and the plots of a run."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("timesformer")


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict:
    """Number of samples whose label is among the top k logits, for each k. logits (N, C)."""
    out = {}
    maxk = min(max(ks), logits.shape[-1])
    top = logits.topk(maxk, dim=-1).indices  # (N, maxk)
    hits = top == labels[:, None]
    for k in ks:
        out[k] = int(hits[:, : min(k, maxk)].any(dim=-1).sum())
    return out


class RunLog:
    """Appends one JSON object per event to ``metrics.jsonl`` (and TensorBoard if available)."""

    def __init__(
        self,
        folder: Path,
        tensorboard: bool = True,
        enabled: bool = True,
        purge_step: int | None = None,
    ) -> None:
        """``purge_step``: a resumed run's first step; TensorBoard hides what earlier sessions
        logged from that step on (the part of a stopped run that the resume trains again)."""
        self.path = folder / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                extra = {} if purge_step is None else {"purge_step": purge_step}
                self.tb = SummaryWriter(str(folder / "tensorboard"), **extra)
            except ImportError:
                log.info("TensorBoard logging is off: the tensorboard package is not installed")
            except Exception as err:  # a folder it cannot write, a broken install
                log.warning("TensorBoard logging is off: %s", err)

    def write(self, record: dict[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None and step is not None:
            kind = record.get("kind", "")
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def process_resources() -> dict[str, int]:
    """Open file descriptors, resident memory (kB), threads and live child processes of this
    process: cheap reads of /proc, so a long run can show that nothing grows epoch after epoch.

    Linux gives all four; elsewhere only what is available (children from ``multiprocessing``).
    """
    out: dict[str, int] = {}
    for fd_dir in ("/proc/self/fd", "/dev/fd"):
        try:
            out["fds"] = len(os.listdir(fd_dir)) - 1  # less the descriptor listdir itself held
            break
        except OSError:
            continue
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "VmRSS":
                    out["rss_kb"] = int(value.split()[0])
                elif key == "Threads":
                    out["threads"] = int(value)
    except (OSError, ValueError):
        pass
    # Every thread's children: DataLoader workers are forked from the main thread, but a leak
    # could come from anywhere.  Needs CONFIG_PROC_CHILDREN (all common kernels).
    if os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
        pids: set[str] = set()
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/children") as f:
                    pids.update(f.read().split())
            except OSError:  # the thread ended meanwhile
                continue
        out["children"] = len(pids)
    else:
        out["children"] = len(multiprocessing.active_children())
    return out


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; a line a killed run left half-written is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def trim_log(path: Path, step: int, epoch: int) -> None:
    """Keep only the records of ``metrics.jsonl`` up to optimizer step ``step`` and epoch
    ``epoch``: a resumed run trains again what its predecessor logged after its checkpoint, and
    would otherwise log those steps twice. Rewritten atomically; nothing to do without a file."""
    from timesformer.checkpoints.io import write_text

    if not path.is_file():
        return
    kept = [
        r
        for r in read_log(path)
        if not (r.get("kind") == "step" and r.get("step", 0) > step)
        and not (r.get("kind") == "epoch" and r.get("epoch", 0) > epoch)
    ]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def plot_curves(records: list[dict[str, Any]], out: Path, title: str = "") -> Path | None:
    """Loss (per optimizer step and per epoch) and accuracy per epoch, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not epochs:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if steps:
        ax1.plot(
            [r["step"] for r in steps],
            [r["loss"] for r in steps],
            lw=0.8,
            alpha=0.5,
            label="train (step)",
        )
    spe = max(1, epochs[0]["step"] // max(1, epochs[0]["epoch"]))
    ax1.plot([r["step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label="train")
    if "val_loss" in epochs[0]:
        ax1.plot([r["step"] for r in epochs], [r["val_loss"] for r in epochs], "s-", label="val")
    ax1.set_xlabel(f"optimizer step ({spe} per epoch)")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(
        [r["epoch"] for r in epochs], [100 * r["train_acc"] for r in epochs], "o-", label="train"
    )
    if "val_top1" in epochs[0]:
        ax2.plot(
            [r["epoch"] for r in epochs],
            [100 * r["val_top1"] for r in epochs],
            "s-",
            label="val top-1",
        )
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    ax2.legend()
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_confusion(matrix: list[list[int]], names: list[str], out: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class per row) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = torch.tensor(matrix, dtype=torch.float64)
    norm = m / m.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(names)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j] > 0:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
