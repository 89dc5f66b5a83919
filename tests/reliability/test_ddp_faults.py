"""DDP (torchrun, 2 Gloo CPU processes) with a process that dies or hangs mid-epoch: the whole
run stops within a bounded time with a message naming the failed rank, and a restart resumes
from the last checkpoint to the same weights as a run that never failed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reliability.faulty_train import (
    assert_same_tensors,
    check_run_folder,
    make_tiny_set,
    overrides,
    run_train,
)
from timesformer.engine.distributed import DistInfo, DistributedFailure, comm_failures

# 16 training videos, 2 per batch and process, global batch 4: 4 steps (4 batches per process)
# an epoch; batch 6 of a process is the 2nd step of epoch 2.
DDP = {"data.batch_size": 2, "optim.global_batch": 4}
FAULT_AT = "1:6"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return make_tiny_set(tmp_path_factory.mktemp("ddp_set"))


def fail_then_resume(root: Path, out: Path, fault: dict, extra: dict, limit_s: float) -> str:
    """A run with ``fault`` that must stop by itself within ``limit_s`` with a non-zero status,
    leaving epoch 1's checkpoint; then the same command without the fault finishes."""
    args = overrides(root, out, **DDP, **extra)
    failed, took = run_train(args, nproc=2, timeout=limit_s + 60, **fault)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output[-3000:]
    assert took < limit_s, f"took {took:.0f} s to stop"
    print(f"the faulty run stopped after {took:.1f} s")  # docs/reliability.md's figure (pytest -s)
    assert check_run_folder(out)[0] == [1], output[-3000:]
    resumed, _ = run_train(args, nproc=2)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "resumed from" in resumed.stderr and "epoch_001" in resumed.stderr
    return output


LOST = r"lost contact with the other processes \(.+\): one of them died or hung .*"
# torchrun's SIGTERM to the survivors can come before the survivor has read the broken
# connection (it looks at its workers every monitor interval, at a moment of its own).
STOPPED = r"stopped by SIGTERM \(torchrun stops every process of a run when one of them fails .+\)"


def the_error_line(output: str) -> str:
    """The surviving rank's one-line error, either reason; no backend traceback from it."""
    assert "[rank0]: Traceback" not in output, output[-3000:]
    lines = [ln for ln in output.splitlines() if ln.startswith("timesformer train: error:")]
    assert len(lines) == 1, output[-3000:]
    assert re.fullmatch(
        rf"timesformer train: error: rank 0 of 2 (?:{LOST}|{STOPPED}); start the same command "
        r"again to resume from the newest checkpoint in \S+checkpoints",
        lines[0],
    ), lines[0]
    return lines[0]


# ~20 s each: slow. Their faster siblings in the default run are tests/engine/test_train.py's
# one-line checks of a lost connection and of SIGTERM in a child process, and its two-process
# Gloo run that matches one process.
@pytest.mark.slow
def test_a_dead_rank_stops_the_run_and_resume_matches(tiny_set, tmp_path):
    output = fail_then_resume(
        tiny_set, tmp_path / "faulty", {"TS_FAULT_DIE_AT": FAULT_AT}, {}, limit_s=90
    )
    line = the_error_line(output)
    print("the survivor's line:", line)
    assert "Connection" in line or "stopped by SIGTERM" in line  # reset by peer / closed
    # torchrun's report names the killed rank and the signal that ended it (as the root cause or
    # among the failures, depending on which exit torchrun saw first).
    killed = r"rank\s*: 1 \(local_rank: 1\)\s*\n\s*exitcode\s*: -9 .*\(SIGKILL\)"
    assert re.search(killed, output), output[-3000:]
    assert "Signal 9 (SIGKILL)" in output
    straight, _ = run_train(overrides(tiny_set, tmp_path / "straight", **DDP), nproc=2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    final = "checkpoints/epoch_003.safetensors"
    assert_same_tensors(tmp_path / "straight" / final, tmp_path / "faulty" / final)


@pytest.mark.slow
def test_a_survivor_that_torchrun_stops_first_says_so(tiny_set, tmp_path):
    # Rank 0 is busy (asleep in Python) when rank 1 dies, so torchrun's SIGTERM reaches it
    # before any broken connection could: its one line says it was stopped, and why. With a
    # DataLoader worker per process, which the signal to the process group reaches too.
    output = fail_then_resume(
        tiny_set,
        tmp_path / "paused",
        {"TS_FAULT_DIE_AT": FAULT_AT, "TS_FAULT_PAUSE_AT": "0:" + FAULT_AT.split(":")[1]},
        {"data.workers": 1},
        limit_s=90,
    )
    assert "stopped by SIGTERM" in the_error_line(output)
    # torchrun's report: rank 1 killed, rank 0 ended with SIGTERM's status (128 + 15).
    assert "Signal 9 (SIGKILL)" in output
    assert re.search(r"rank\s*: 0 \(local_rank: 0\)\s*\n\s*exitcode\s*: 143", output), output[
        -3000:
    ]


@pytest.mark.slow
def test_a_hung_rank_stops_the_run_after_dist_timeout(tiny_set, tmp_path):
    # SIGSTOP: the process lives on, so only the collective's timeout (run.dist_timeout) ends
    # the wait; torchrun then needs its 30 s grace to kill the stopped process.
    output = fail_then_resume(
        tiny_set,
        tmp_path / "hung",
        {"TS_FAULT_HANG_AT": FAULT_AT},
        {"run.dist_timeout": 10},
        limit_s=120,
    )
    assert "Timed out waiting 10000ms" in the_error_line(output)


GLOO_RESET = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
    "[127.0.0.1]:33515: Connection reset by peer. This is typically caused by a remote worker "
    "hanging or bugs in the application."
)


def test_a_broken_collective_becomes_one_line_and_other_errors_pass():
    two = DistInfo(rank=1, world_size=2)
    with pytest.raises(DistributedFailure) as caught, comm_failures(two, "resume from X"):
        raise RuntimeError(GLOO_RESET)
    assert str(caught.value) == (
        "rank 1 of 2 lost contact with the other processes (Read error [127.0.0.1]:33515: "
        "Connection reset by peer): one of them died or hung (its own output, or torchrun's "
        "report, names it); resume from X"
    )
    # One process has no peers to lose; any other error is not about the connection.
    with pytest.raises(RuntimeError, match="Connection reset"), comm_failures(DistInfo(), "x"):
        raise RuntimeError(GLOO_RESET)
    with pytest.raises(RuntimeError, match="shape mismatch"), comm_failures(two, "x"):
        raise RuntimeError("shape mismatch")
    with pytest.raises(ValueError), comm_failures(two, "x"):
        raise ValueError("gloo")
