"""The model thread: requests that arrive together share a forward pass up to ``max_batch``
views, each gets its own rows back, errors reach every request of their batch, and ``call``
runs alone. The gate admits ``limit`` requests and refuses the next with a Retry-After."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from timesformer.serve.batching import Batcher, Gate
from timesformer.serve.errors import Busy


class Recorder:
    """A forward pass that records its batch sizes: row i of the logits is the view's id."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay = delay
        self.running = False
        self.overlapped = False

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        self.overlapped |= self.running
        self.running = True
        time.sleep(self.delay)
        self.sizes.append(len(views))
        self.running = False
        return views[:, :1].clone()  # (N, 1): each view's id


def views(ident: int, n: int) -> torch.Tensor:
    """(n, 1) views whose values are their request's id."""
    return torch.full((n, 1), float(ident))


def test_requests_in_the_window_share_one_pass_and_get_their_own_rows():
    forward = Recorder()
    batcher = Batcher(forward, window=0.5, max_batch=100)
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: batcher.forward(views(i, i + 1)), range(4)))
    finally:
        batcher.close()
    for i, logits in enumerate(results):
        assert logits.shape == (i + 1, 1) and bool((logits == i).all())
    assert sum(forward.sizes) == 10 and len(forward.sizes) < 4


def test_a_batch_never_passes_max_batch_and_a_big_job_runs_alone():
    forward = Recorder()
    batcher = Batcher(forward, window=0.3, max_batch=4)
    try:
        with ThreadPoolExecutor(5) as pool:
            results = list(pool.map(lambda n: batcher.forward(views(n, n)), [3, 3, 2, 6, 1]))
    finally:
        batcher.close()
    assert [len(r) for r in results] == [3, 3, 2, 6, 1]
    assert all(s <= 4 for s in forward.sizes if s != 6) and 6 in forward.sizes
    assert sum(forward.sizes) == 15


def test_a_lone_request_does_not_wait_the_window():
    batcher = Batcher(Recorder(), window=30.0, max_batch=100, in_progress=lambda: 1)
    try:
        start = time.perf_counter()
        assert batcher.forward(views(1, 3)).shape == (3, 1)
        assert time.perf_counter() - start < 5
    finally:
        batcher.close()


def test_max_batch_one_turns_batching_off():
    forward = Recorder()
    batcher = Batcher(forward, window=0.3, max_batch=1)
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda i: batcher.forward(views(i, 3)), range(3)))
    finally:
        batcher.close()
    assert forward.sizes == [3, 3, 3] and batcher.batches == batcher.jobs == 3


def test_an_error_reaches_every_request_of_its_batch_and_the_thread_goes_on():
    calls = []

    def forward(x):
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    batcher = Batcher(forward, window=0.3, max_batch=10)
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(batcher.forward, views(i, 1)) for i in range(2)]
            errors = [f.exception(10) for f in futures]
        assert all(isinstance(e, RuntimeError) for e in errors)
        assert batcher.forward(views(7, 2)).tolist() == [[7.0], [7.0]]
    finally:
        batcher.close()


def test_call_runs_on_the_model_thread_between_batches():
    forward = Recorder(delay=0.05)
    batcher = Batcher(forward, window=0.0, max_batch=8)
    seen = []

    def alone():
        seen.append((threading.current_thread().name, forward.running))
        return 42

    try:
        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(batcher.forward, views(i, 2)) for i in range(3)]
            assert batcher.call(alone) == 42
            [j.result(10) for j in jobs]
    finally:
        batcher.close()
    assert seen == [("timesformer-model", False)] and not forward.overlapped


def test_the_gate_admits_its_limit_then_says_when_to_retry():
    gate = Gate(2, workers=1)
    gate.mean_seconds = 2.5
    with gate.enter(), gate.enter():
        assert gate.inside == 2
        with pytest.raises(Busy) as busy, gate.enter():
            pass
        assert busy.value.status == 503
        assert busy.value.headers() == {"Retry-After": "5"}  # 2 ahead x 2.5 s, one at a time
    assert gate.inside == 0
    with gate.enter():  # a place is free again
        pass
