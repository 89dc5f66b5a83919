"""Running the model for many clients: a bounded admission gate and one batching thread.

``Gate`` admits at most ``limit`` requests at once (decoding, waiting or running); one more is
refused at once (``Busy``: 503 with Retry-After) before its upload is read, so memory stays
bounded whatever the load. It also keeps a running mean of how long requests take, from which
Retry-After is estimated.

``Batcher`` owns the model: one thread runs every forward pass, so a request thread never
touches the model and the event loop never waits on it. A request thread hands over its views
(V, 3, T, H, W) and blocks until their logits (V, C) come back. The thread takes the first job
in the queue, waits up to ``window`` seconds for others, and runs all the views it took in one
forward pass, up to ``max_batch`` views (a larger job runs alone, never split). It waits only
while more requests are in progress than the batch holds (``in_progress``, the gate's count):
a lone client pays no window. ``call`` runs
any other function on the model thread, alone (attention rollout hooks the model's layers, so
it must not overlap a batch).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from timesformer.serve.errors import Busy

__all__ = ["Batcher", "Gate"]

log = logging.getLogger("timesformer.serve")
T = TypeVar("T")


class Gate:
    """At most ``limit`` requests inside at once; ``enter`` raises ``Busy`` when full."""

    def __init__(self, limit: int, *, workers: int = 1) -> None:
        self.limit = limit
        self.workers = workers
        self.inside = 0
        self.mean_seconds = 1.0  # running mean of a request's time; a guess until one is done
        self._lock = threading.Lock()

    @contextmanager
    def enter(self) -> Iterator[None]:
        with self._lock:
            if self.inside >= self.limit:
                raise Busy(
                    f"the server is busy ({self.inside} requests in progress, the limit is "
                    f"{self.limit}); try again later",
                    self.retry_after(),
                )
            self.inside += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self.inside -= 1
                self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead, served ``workers`` at a time."""
        return max(1, math.ceil(self.mean_seconds * self.inside / max(1, self.workers)))


@dataclass
class _Job:
    """One hand-over to the model thread: views to score, or a function to run alone."""

    future: Future
    views: torch.Tensor | None = None
    fn: Callable[[], Any] | None = None

    @property
    def size(self) -> int:
        return 0 if self.views is None else len(self.views)


class Batcher:
    """The model thread. ``forward(views) -> logits`` and ``call(fn)`` block the calling thread
    until done; their exceptions are raised there.

    Args:
        forward: the model, (N, 3, T, H, W) -> (N, C) logits (float32, on the CPU).
        window: seconds the first job of a batch waits for more (0: only those already queued).
        max_batch: most views in one forward pass (1: every job alone, batching off).
        in_progress: how many requests could still send a job (default: always wait the window).
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        *,
        window: float,
        max_batch: int,
        in_progress: Callable[[], int] | None = None,
    ) -> None:
        self.forward_fn = forward
        self.window = window
        self.max_batch = max_batch
        self.in_progress = in_progress
        self.batches = 0  # forward passes run, and the jobs in them: for logs and tests
        self.jobs = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._held: _Job | None = None  # taken from the queue but left for the next batch
        self._thread = threading.Thread(target=self._loop, name="timesformer-model", daemon=True)
        self._thread.start()

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """Logits (V, C) of views (V, 3, T, H, W), run in a batch with other requests' views."""
        return self._submit(_Job(Future(), views=views))

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the model thread between batches."""
        return self._submit(_Job(Future(), fn=fn))

    def close(self) -> None:
        """Finish the jobs queued so far, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _submit(self, job: _Job) -> Any:
        if not self._thread.is_alive():
            raise RuntimeError("the model thread has stopped")
        self._queue.put(job)
        return job.future.result()

    # ------------------------------------------------------------------ the model thread
    def _next(self, timeout: float | None) -> _Job | None:
        """The held job, else the next in the queue (None at the end; ``queue.Empty`` when
        ``timeout`` passes)."""
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout is not None and timeout <= 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _loop(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                return
            if job.fn is not None:
                self._run_alone(job)
                continue
            batch, stop = self._gather(job)
            self._run_batch(batch)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The jobs of one batch, starting with ``first``; True when the queue has ended."""
        batch, size = [first], first.size
        deadline = time.perf_counter() + self.window
        while size < self.max_batch:
            # Nobody else can join: take only what is queued already, without waiting.
            alone = self.in_progress is not None and self.in_progress() <= len(batch)
            try:
                job = self._next(0.0 if alone else deadline - time.perf_counter())
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if job.fn is not None or size + job.size > self.max_batch:
                self._held = job  # first of the next batch
                break
            batch.append(job)
            size += job.size
        return batch, False

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            views = batch[0].views if len(batch) == 1 else torch.cat([j.views for j in batch])
            logits = self.forward_fn(views)
        except Exception as err:  # handed to every request of the batch
            for job in batch:
                job.future.set_exception(err)
            return
        self.batches += 1
        self.jobs += len(batch)
        start = 0
        for job in batch:
            job.future.set_result(logits[start : start + job.size])
            start += job.size
        if len(batch) > 1:
            log.debug("batch of %d requests, %d views", len(batch), start)

    def _run_alone(self, job: _Job) -> None:
        try:
            job.future.set_result(job.fn())
        except Exception as err:  # raised again in the waiting request's thread
            job.future.set_exception(err)
