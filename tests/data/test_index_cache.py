"""The frame-index cache is shared by threads (the server's decoding threads): lookups, inserts
and evictions from several threads at once never fail and never mix up the entries."""

from __future__ import annotations

import random
import sys
import threading

import numpy as np
import pytest

from timesformer.data import index_cache
from timesformer.data.index_cache import FrameIndex

THREADS = 8
ROUNDS = 60_000
KEYS = 3  # more than the cache holds below, so that most puts evict something


def _index(n: int, exact: bool) -> FrameIndex:
    """An index that says which key it was stored under: ``n`` frames."""
    empty = np.zeros(0, dtype=np.int64)
    return FrameIndex(None, np.zeros(n), empty, empty, exact)


@pytest.fixture
def small_cache(monkeypatch):
    """An empty cache of 2 entries, with thread switches as often as the interpreter allows
    (the race window between a lookup and its move to the end is a few bytecodes)."""
    monkeypatch.setattr(index_cache, "MAX_ENTRIES", 2)
    index_cache.clear()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)
    index_cache.clear()


def test_the_cache_survives_threads_that_evict_each_others_entries(small_cache):
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    entries = {(n, exact): _index(n, exact) for n in range(KEYS) for exact in (True, False)}

    def hammer(seed: int) -> None:
        rng = random.Random(seed)  # cheap draws: most of the time goes to the cache itself
        try:
            start.wait()
            for i in range(ROUNDS):
                n = rng.randrange(KEYS)
                key = ("video", n, 0)
                exact = rng.random() < 0.5
                if rng.random() < 0.5:
                    index_cache.put(key, entries[n, exact])
                else:
                    found = index_cache.get(key, exact)
                    # Never another key's entry, and an exact request only gets an exact one.
                    assert found is None or (found.num_frames == n and (found.exact or not exact))
                if i % 997 == seed:
                    index_cache.clear()
        except BaseException as err:  # any failure in a thread fails the test
            errors.append(err)

    threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, repr(errors[0])
    assert len(index_cache._CACHE) <= index_cache.MAX_ENTRIES


def test_get_prefers_and_put_evicts_as_before(small_cache):
    """One thread: an exact index serves both kinds of request, the oldest entry goes first."""
    index_cache.put(("a",), _index(1, False))
    assert index_cache.get(("a",), exact=True) is None
    assert index_cache.get(("a",), exact=False).num_frames == 1
    index_cache.put(("a",), _index(2, True))
    assert index_cache.get(("a",), exact=False).num_frames == 2
    for n in range(3, 7):
        index_cache.put((n,), _index(n, True))
    assert len(index_cache._CACHE) == index_cache.MAX_ENTRIES
    assert index_cache.get(("a",), exact=False) is None  # both of its entries evicted
    assert index_cache.get(None, exact=False) is None
