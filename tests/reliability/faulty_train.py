"""``timesformer train`` with faults injected, for the training-fault tests (kill, resume, DDP).

Run as a script (``python faulty_train.py train KEY=VALUE ...``, also under torchrun) it calls
the real command line, after patching two seams when these environment variables are set:

- ``TS_FAULT_KILL_IN_WRITE=N``: the N-th epoch-checkpoint write of this process writes its
  temporary file, cuts it to half its length and sends the process SIGKILL before the rename:
  exactly what a kill inside the write leaves on disk.
- ``TS_FAULT_DIE_AT=RANK:MICRO``: the process of that rank sends itself SIGKILL right after the
  forward pass of its MICRO-th batch (counted from 1 since this process started).
- ``TS_FAULT_HANG_AT=RANK:MICRO``: the same, but SIGSTOP: a process that hangs instead of dying.
- ``TS_FAULT_PAUSE_AT=RANK:MICRO``: the same, but a 20 s sleep in Python: a survivor still busy
  when torchrun, having seen another process die, stops it with SIGTERM.

The production code has no test hooks: the seams are ``timesformer.checkpoints.io.save_file``
(what every safetensors write calls) and ``Trainer._check_finite`` (called once per batch).
Imported as a module it gives the tests' shared helpers: the tiny data set, the overrides, the
subprocess runner and the checks of a run folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve()


# ---------------------------------------------------------------------- the fault injection
def _install_faults() -> None:
    import timesformer.checkpoints.io as io
    from timesformer.engine.trainer import Trainer

    kill_in_write = int(os.environ.get("TS_FAULT_KILL_IN_WRITE", "0"))
    if kill_in_write:
        real_save = io.save_file
        writes = [0]

        def save_then_die(tensors, filename, metadata=None):
            real_save(tensors, filename, metadata=metadata)
            if not Path(filename).name.startswith(".epoch_"):
                return
            writes[0] += 1
            if writes[0] == kill_in_write:
                size = os.path.getsize(filename)
                os.truncate(filename, size // 2)  # the bytes a kill mid-write leaves
                os.kill(os.getpid(), signal.SIGKILL)

        io.save_file = save_then_die

    faults = {}
    for var, fault in (
        ("TS_FAULT_DIE_AT", signal.SIGKILL),
        ("TS_FAULT_HANG_AT", signal.SIGSTOP),
        ("TS_FAULT_PAUSE_AT", "pause"),
    ):
        if os.environ.get(var):
            rank, micro = (int(x) for x in os.environ[var].split(":"))
            if rank == int(os.environ.get("RANK", "0")):
                faults[micro] = fault
    if faults:
        real_check = Trainer._check_finite
        count = [0]

        def check_then_fault(self, loss, epoch, step):
            real_check(self, loss, epoch, step)
            count[0] += 1
            fault = faults.get(count[0])
            if fault == "pause":
                time.sleep(20)
            elif fault is not None:
                os.kill(os.getpid(), fault)

        Trainer._check_finite = check_then_fault


# ---------------------------------------------------------------------- helpers for the tests
def make_tiny_set(folder: Path) -> Path:
    """4 classes of 8-frame 16 x 16 videos: 4 train and 1 val per class (16 + 4 videos)."""
    from timesformer.data import make_synthetic

    return make_synthetic(
        folder / "motion",
        seed=5,
        pairs=("horizontal", "depth"),
        train_per_class=4,
        val_per_class=1,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )


def overrides(root: Path, out: Path, **extra) -> list[str]:
    """A tiny CPU run: batch 4, 4 optimizer steps per epoch, 3 epochs, no plots of TensorBoard."""
    from helpers import tiny_overrides

    values = {"data.batch_size": 4, "optim.global_batch": 4, "optim.epochs": 3}
    values.update(extra)
    return tiny_overrides(root, out, **values)


def env(**faults: str) -> dict[str, str]:
    """The subprocess environment: one thread (the same arithmetic in every run), faults set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TS_FAULT_")}
    return {**base, "OMP_NUM_THREADS": "1", **faults}


def train_cmd(args: Sequence[str], nproc: int = 1, monitor_s: float = 0.1) -> list[str]:
    """The command line; ``monitor_s`` is how often torchrun looks at its workers (its default
    is 0.1 s)."""
    if nproc == 1:
        return [sys.executable, str(SCRIPT), "train", "--no-test", *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        f"--monitor-interval={monitor_s}",
        str(SCRIPT),
        "train",
        "--no-test",
        *args,
    ]


def run_train(
    args: Sequence[str], nproc: int = 1, timeout: float = 300, **faults: str
) -> tuple[subprocess.CompletedProcess, float]:
    """Run to the end (or to the injected fault): the finished process and its wall time."""
    # With a fault injected, torchrun looks at its workers every 2 s instead of every 0.1 s: it
    # kills the survivors as soon as it sees one process dead, and on a loaded machine that can
    # come before a survivor has read the broken connection and printed the one-line error that
    # the tests check. 2 s leaves that window on any machine and keeps the stop well bounded.
    monitor_s = 2.0 if faults else 0.1
    start = time.monotonic()
    proc = subprocess.run(
        train_cmd(args, nproc, monitor_s),
        capture_output=True,
        text=True,
        env=env(**faults),
        timeout=timeout,
    )
    return proc, time.monotonic() - start


def all_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


def assert_same_tensors(a: Path, b: Path, skip_rng: bool = False) -> None:
    """Every tensor of two safetensors files bitwise equal (weights, optimizer, RNG states).

    Only for two runs of the same command (one killed and resumed): the same steps on the same
    shapes, one thread each (``env``), so the same kernels and sums in the same order."""
    ta, tb = all_tensors(a), all_tensors(b)
    if skip_rng:
        ta = {k: v for k, v in ta.items() if not k.startswith("rng/")}
        tb = {k: v for k, v in tb.items() if not k.startswith("rng/")}
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def check_run_folder(out: Path) -> tuple[list[int], list[Path]]:
    """Every file that a resume could take for a checkpoint is complete and loads; returns the
    epochs of the epoch checkpoints and the leftover temporary files (never counted)."""
    from timesformer.checkpoints import load_checkpoint
    from timesformer.checkpoints.io import read_safetensors
    from timesformer.engine.state import EPOCH_RE, epoch_checkpoints

    folder = out / "checkpoints"
    temps: list[Path] = []
    complete: list[int] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if m := EPOCH_RE.match(path.name):
            _, meta = read_safetensors(path)  # raises on a truncated or corrupt file
            assert "train_state" in meta, path
            load_checkpoint(path)  # a full model loads from it
            complete.append(int(m.group(1)))
        else:
            assert path.name.startswith(".epoch_") and path.name.endswith(".tmp"), path
            temps.append(path)
    assert [e for e, _ in epoch_checkpoints(folder)] == complete
    if (out / "best.safetensors").exists():
        load_checkpoint(out / "best.safetensors")
    temps += sorted(out.glob(".*.tmp"))
    return complete, temps


if __name__ == "__main__":
    _install_faults()
    from timesformer.cli import main

    sys.exit(main(sys.argv[1:]))
