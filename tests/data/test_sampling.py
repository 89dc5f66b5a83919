"""Temporal sampling against the reference (PySlowFast / TimeSformer decoder.py) formulas."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from timesformer.data import sampling


def reference_temporal_sampling(n: int, start: float, end: float, num: int) -> list[int]:
    """decoder.temporal_sampling of the reference, in float64 (its float32 linspace can move a
    frame across a truncation boundary in about 1 case in 1,500)."""
    index = torch.linspace(start, end, num, dtype=torch.float64)
    return torch.clamp(index, 0, n - 1).long().tolist()


def reference_seq_frames(n: int, num_frames: int, train: bool) -> list[int] | list[tuple]:
    """ssv2.get_seq_frames of the reference; in training, the (start, end) of each segment."""
    seg_size = float(n - 1) / num_frames
    seq = []
    for i in range(num_frames):
        start = int(np.round(seg_size * i))
        end = int(np.round(seg_size * (i + 1)))
        seq.append((start, end) if train else (start + end) // 2)
    return seq


def test_clip_window():
    assert sampling.clip_window(8, 32) == 256
    assert sampling.clip_window(8, 32, video_fps=25) == pytest.approx(8 * 32 * 25 / 30)
    with pytest.raises(ValueError):
        sampling.clip_window(0, 32)
    with pytest.raises(ValueError):
        sampling.clip_window(8, 32, video_fps=0)


@pytest.mark.parametrize("seed", range(5))
def test_train_indices_match_reference(seed):
    """Same start, same frames; the start is uniform in [0, n - window]."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 600))
        T = int(rng.choice([4, 8, 16]))
        rate = int(rng.choice([1, 2, 4, 8, 32]))
        fps = float(rng.choice([24.0, 25.0, 29.97, 30.0, 60.0]))
        state = rng.bit_generator.state
        got = sampling.train_indices(n, T, rate, rng, fps, 30.0)
        replay = np.random.default_rng()
        replay.bit_generator.state = state
        window = T * rate / 30.0 * fps
        delta = max(n - window, 0)
        start = replay.uniform(0, delta) if delta > 0 else 0.0
        assert got.dtype == np.int64 and got.shape == (T,)
        # Equal indices from two float computations: safe, a random start puts no position
        # within rounding of an integer (and the tests below use integer starts and steps).
        assert got.tolist() == reference_temporal_sampling(n, start, start + window - 1, T)


def test_train_window_spans_sampling_rate_times_frames():
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(500):
        idx = sampling.train_indices(300, 8, 32, rng, 30.0, 30.0)
        assert idx[-1] - idx[0] in (254, 255)  # 256-frame window, truncated ends
        assert np.all(np.diff(idx) >= 31) and np.all(np.diff(idx) <= 37)
        starts.append(idx[0])
    # Starts cover [0, 300 - 256] uniformly.
    assert min(starts) <= 2 and max(starts) >= 41
    assert abs(np.mean(starts) - 22) < 3


def test_target_fps_resamples_the_window():
    """At 60 fps the same clip spans twice as many frames as at 30 fps."""
    rng = np.random.default_rng(0)
    at60 = sampling.train_indices(1000, 8, 4, rng, video_fps=60.0, target_fps=30.0)
    assert (at60[-1] - at60[0]) in (62, 63)
    assert sampling.test_indices(1000, 8, 4, 0, 1, 60.0, 30.0).tolist() == list(range(468, 532, 9))


def test_short_video_is_padded_by_repetition():
    """A 10-frame video and a 32-frame window: the clip clamps to the last frame."""
    rng = np.random.default_rng(0)
    idx = sampling.train_indices(10, 8, 4, rng)
    assert idx.tolist() == [0, 4, 8, 9, 9, 9, 9, 9]
    assert sampling.test_indices(10, 8, 4, 0, 1).tolist() == [0, 4, 8, 9, 9, 9, 9, 9]
    assert sampling.segment_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert sampling.train_indices(1, 8, 4, rng).tolist() == [0] * 8


def test_test_indices_spread_uniformly():
    n, T, rate, K = 500, 8, 8, 5
    window = T * rate
    clips = [sampling.test_indices(n, T, rate, k, K) for k in range(K)]
    delta = n - window
    for k, idx in enumerate(clips):
        start = delta * k / (K - 1)  # an integer, and a step of 9 frames: exact in floats
        assert idx.tolist() == reference_temporal_sampling(n, start, start + window - 1, T)
    assert clips[0][0] == 0 and clips[-1][-1] == n - 1
    # One clip: the centre of the video.
    centre = sampling.test_indices(n, T, rate, 0, 1)
    assert centre.tolist() == reference_temporal_sampling(n, delta / 2, delta / 2 + window - 1, T)


def test_test_indices_reference_spread():
    n, T, rate, K = 500, 8, 8, 4
    delta = n - T * rate
    for k in range(K):
        start = delta * k / K
        got = sampling.test_indices(n, T, rate, k, K, spread="reference")
        assert got.tolist() == reference_temporal_sampling(n, start, start + T * rate - 1, T)
    with pytest.raises(ValueError):
        sampling.test_indices(n, T, rate, K, K)
    with pytest.raises(ValueError):
        sampling.test_indices(n, T, rate, 0, K, spread="centre")


@pytest.mark.parametrize("n", [1, 7, 8, 9, 50, 123])
def test_segment_indices_match_reference(n):
    T = 8
    assert sampling.segment_indices(n, T).tolist() == reference_seq_frames(n, T, train=False)
    bounds = reference_seq_frames(n, T, train=True)
    rng = np.random.default_rng(n)
    seen = [set() for _ in range(T)]
    for _ in range(200):
        idx = sampling.segment_indices(n, T, rng)
        for i, (lo, hi) in enumerate(bounds):
            assert lo <= idx[i] <= hi  # random.randint(start, end) of the reference: inclusive
            seen[i].add(int(idx[i]))
    for i, (lo, hi) in enumerate(bounds):
        assert seen[i] == set(range(lo, hi + 1))


def test_sampling_is_reproducible_from_the_generator():
    a = sampling.train_indices(400, 8, 8, np.random.default_rng(5))
    b = sampling.train_indices(400, 8, 8, np.random.default_rng(5))
    assert a.tolist() == b.tolist()
    random.seed(0)  # the functions never touch the global generators
    assert sampling.train_indices(400, 8, 8, np.random.default_rng(5)).tolist() == a.tolist()
