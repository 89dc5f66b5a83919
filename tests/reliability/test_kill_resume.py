"""A training run killed with SIGKILL at random moments, and inside checkpoint writes, always
resumes from a complete checkpoint and ends with the same weights as a run never killed."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from reliability.faulty_train import (
    assert_same_tensors,
    check_run_folder,
    env,
    make_tiny_set,
    overrides,
    run_train,
    train_cmd,
)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return make_tiny_set(tmp_path_factory.mktemp("kill_set"))


def wait_for(popen: subprocess.Popen, path: Path, since: float) -> None:
    """Poll until ``path`` is written (mtime >= ``since``) or the process ends."""
    while popen.poll() is None:
        if path.exists() and path.stat().st_mtime >= since:
            return
        time.sleep(0.005)


def start_and_wait_for_init(args: list[str], out: Path) -> subprocess.Popen:
    """Start a run; return once its trainer is built (it writes config.yaml: imports, data set
    scan and model are done) or the process ended."""
    wall = time.time()
    popen = subprocess.Popen(
        train_cmd(args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_for(popen, out / "config.yaml", wall)
    return popen


def kill_and_resume(
    root: Path, out: Path, plan: list[tuple[str, float]], extra: dict, timing: tuple[float, float]
) -> list:
    """Run once per item of ``plan`` (("write", N): die inside this process's N-th epoch-checkpoint
    write; ("kill", F): SIGKILL after the fraction F of the time its epochs take, by ``timing``:
    the first epoch's start-up and one epoch's seconds in the reference run), checking the folder after each, then once more without faults.
    Returns (fault, exit code, complete epochs, temp files) per attempt."""
    args = overrides(root, out, **extra)
    epochs = int(extra.get("optim.epochs", 3))
    seen: list[tuple[str, int, list[int], int]] = []
    for kind, value in [*plan, ("none", 0)]:
        resumed_at = (seen[-1][2] or [0])[-1] if seen else 0
        if kind == "write":
            proc, _ = run_train(args, TS_FAULT_KILL_IN_WRITE=str(int(value)))
            rc = proc.returncode
        elif kind == "none":
            proc, _ = run_train(args)
            assert proc.returncode == 0, proc.stderr[-2000:]
            rc = 0
        else:
            # A moment inside the training part of this run: after the first epoch's start-up,
            # the fraction ``value`` of the time the reference took for the epochs left.
            popen = start_and_wait_for_init(args, out)
            overhead_s, epoch_s = timing
            try:
                popen.wait(timeout=overhead_s + value * epoch_s * (epochs - resumed_at))
            except subprocess.TimeoutExpired:
                popen.send_signal(signal.SIGKILL)
            _, err = popen.communicate()
            rc = popen.returncode
            assert rc in (0, -signal.SIGKILL), err.decode()[-2000:]
        complete, temps = check_run_folder(out)
        if kind == "write":
            # The kill hit the write window of epoch resumed_at + N: its half-written temp file
            # is there, the checkpoint of that epoch is not, the one before it is complete.
            assert rc == -signal.SIGKILL, proc.stderr[-2000:]
            cut = resumed_at + int(value)
            assert any(t.name.startswith(f".epoch_{cut:03d}.safetensors.") for t in temps)
            assert cut not in complete and (cut == 1 or complete[-1] == cut - 1)
        seen.append((f"{kind} {value}", rc, complete, len(temps)))
    return seen


def run_kill_test(
    root: Path, tmp_path: Path, extra: dict, writes: tuple[int, ...], kills: int, seed: int
) -> list:
    # The reference run, timed from the trainer's start to its last checkpoint: the window in
    # which the random kills below fall (steps, validation, checkpoint writes).
    epochs = int(extra.get("optim.epochs", 3))
    ref_out = tmp_path / "ref"
    ref = start_and_wait_for_init(overrides(root, ref_out, **extra), ref_out)
    start = time.monotonic()
    wait_for(ref, ref_out / "checkpoints/epoch_001.safetensors", 0)
    first_s = time.monotonic() - start
    wait_for(ref, ref_out / f"checkpoints/epoch_{epochs:03d}.safetensors", 0)
    epoch_s = (time.monotonic() - start - first_s) / (epochs - 1)
    # (start-up of the first epoch after a (re)start: worker processes, first batches)
    timing = (max(first_s - epoch_s, 0.0), epoch_s)
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err.decode()[-2000:]
    rng = random.Random(seed)
    # Certain hits inside checkpoint writes (("write", 1): the first one, nothing complete yet;
    # ("write", 2): the second epoch's, with the first complete beside it), then kills at random
    # moments of the training part: steps, validation, checkpoint writes.
    plan: list[tuple[str, float]] = [("write", n) for n in writes]
    plan += [("kill", round(rng.uniform(0.05, 0.9), 3)) for _ in range(kills)]
    seen = kill_and_resume(root, tmp_path / "killed", plan, extra, timing)
    print(f"first epoch overhead, epoch: {timing[0]:.2f}, {timing[1]:.2f} s; attempts:", seen)
    final = f"checkpoints/epoch_{epochs:03d}.safetensors"
    assert_same_tensors(tmp_path / "ref" / final, tmp_path / "killed" / final)
    assert_same_tensors(tmp_path / "ref/best.safetensors", tmp_path / "killed/best.safetensors")
    # The last resume removed the temp files the kills inside writes had left behind.
    assert seen[-1][1:] == (0, [epochs - 1, epochs], 0), seen
    return seen


def test_sigkill_anywhere_resumes_to_bitwise_identical_weights(tiny_set, tmp_path):
    seen = run_kill_test(tiny_set, tmp_path, {}, writes=(2,), kills=1, seed=7)
    assert seen[0][1] == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_many_sigkills_with_workers_resume_to_bitwise_identical_weights(tiny_set, tmp_path, seed):
    extra = {"optim.epochs": 5, "data.workers": 1}
    seen = run_kill_test(tiny_set, tmp_path, extra, writes=(1, 2), kills=8, seed=seed)
    assert sum(rc == -signal.SIGKILL for _, rc, _, _ in seen) >= 6


def test_stale_temp_files_are_removed_and_never_resumed_from(tiny_set, tmp_path):
    from timesformer.engine import Trainer, load_config

    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    ckpts.mkdir(parents=True)
    # What a kill inside writes leaves: half a checkpoint under the temp name of each writer.
    for name in (".epoch_001.safetensors.ab12cd.tmp", ".best.safetensors.x9y8.tmp"):
        folder = ckpts if name.startswith(".epoch") else out
        (folder / name).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{" + b"\x00" * 40)
    # ... and, since checkpoints are written inside a temp folder, the folder a kill leaves,
    # with safetensors' own temporary file in it.
    left = ckpts / ".epoch_002.safetensors.q1w2e3.tmp"
    left.mkdir()
    (left / ".epoch_002.safetensors.q1w2e3.tmp").write_bytes(b"\x10" + b"\x00" * 20)
    (left / ".tmp9z8y7x").write_bytes(b"\x00" * 40)
    keep = out / "notes.tmp"  # not ours: left alone
    keep.write_text("x")
    trainer = Trainer(load_config(overrides=overrides(tiny_set, out, **{"optim.epochs": 1})))
    assert trainer.resumed_from is None and trainer.state.epoch == 0
    assert sorted(p.name for p in out.rglob("*.tmp")) == ["notes.tmp"]
    assert not left.exists()
    assert check_run_folder(out) == ([], [])


def test_resume_with_persistent_workers_and_drop_path_is_exact(tiny_set, tmp_path):
    # A fresh DataLoader iterator draws its base seed from the global torch generator, a
    # persistent one only in the first epoch of a process: the draw must not shift the model's
    # random stream (drop path) in the first epoch after a resume.
    from safetensors.torch import load_file

    from timesformer.engine import Trainer, load_config

    extra = {"data.workers": 1, "model.drop_path_rate": 0.3, "optim.epochs": 2}
    Trainer(load_config(overrides=overrides(tiny_set, tmp_path / "a", **extra))).fit()
    Trainer(load_config(overrides=overrides(tiny_set, tmp_path / "b", **extra))).fit(stop_after=1)
    resumed = Trainer(load_config(overrides=overrides(tiny_set, tmp_path / "b", **extra)))
    assert resumed.state.epoch == 1
    resumed.fit()
    final = "checkpoints/epoch_002.safetensors"
    a, b = load_file(tmp_path / "a" / final), load_file(tmp_path / "b" / final)
    # Exact: the same run twice in this process (one stopped and resumed), same shapes and
    # thread count.
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
