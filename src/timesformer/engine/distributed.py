"""PyTorch DDP through torchrun's environment: NCCL on GPU, Gloo on CPU."""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from timesformer.errors import TimesformerError
from timesformer.runtime import pick_device  # re-exported: its home before timesformer.runtime


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run (a single process has rank 0 of world 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_pref: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group that torchrun describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend, timeout=datetime.timedelta(seconds=timeout_s), rank=rank, world_size=world
        )
    return DistInfo(rank, world, local_rank, device)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over all processes (a no-op for one process)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


class DistributedFailure(TimesformerError):
    """A collective failed: another process of the run died, hung past ``run.dist_timeout``, or
    its connection broke."""


# How a broken collective reads when it surfaces as a plain RuntimeError (through DDP's reducer
# in backward, for one): Gloo's and NCCL's messages name their source file or the library.
_COMM_ERROR = re.compile(r"gloo|nccl|connection (reset|closed|refused)|timed out", re.IGNORECASE)


def is_comm_failure(err: BaseException) -> bool:
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and bool(_COMM_ERROR.search(str(err)))
    )


@contextlib.contextmanager
def comm_failures(info: DistInfo, resume_hint: str) -> Iterator[None]:
    """Turn a failed collective of a multi-process run into one ``DistributedFailure`` line
    (instead of a C++ backend traceback) that says what happened and how to go on."""
    try:
        yield
    except RuntimeError as err:
        if not (info.enabled and is_comm_failure(err)):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        detail = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]  # less the source path
        raise DistributedFailure(
            f"rank {info.rank} of {info.world_size} lost contact with the other processes "
            f"({detail}): one of them died or hung (its own output, or torchrun's report, "
            f"names it); {resume_hint}"
        ) from None
