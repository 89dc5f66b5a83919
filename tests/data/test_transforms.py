"""Spatial transforms: crop geometry, scale ranges, flips, normalisation, output layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timesformer.data import transforms as tf


def grid(c: int, t: int, h: int, w: int) -> torch.Tensor:
    """float (c, t, h, w) whose value at (y, x) is y * 1000 + x: crops reveal their offsets."""
    y = torch.arange(h, dtype=torch.float32)[:, None] * 1000
    x = torch.arange(w, dtype=torch.float32)[None, :]
    return (y + x).expand(c, t, h, w).clone()


def offset(crop: torch.Tensor) -> tuple[int, int]:
    value = int(crop[0, 0, 0, 0])
    return value // 1000, value % 1000


def test_to_float_layout_and_range():
    frames = torch.zeros(4, 6, 10, 3, dtype=torch.uint8)
    frames[2, 1, 3] = torch.tensor([255, 0, 51], dtype=torch.uint8)
    video = tf.to_float(frames)
    assert video.shape == (3, 4, 6, 10) and video.dtype == torch.float32
    assert video[:, 2, 1, 3].tolist() == pytest.approx([1.0, 0.0, 0.2])
    with pytest.raises(ValueError):
        tf.to_float(frames.float())


@pytest.mark.parametrize(
    ("h", "w", "size", "expected"),
    [(340, 604, 256, (256, 454)), (604, 340, 256, (454, 256)), (300, 300, 224, (224, 224))],
)
def test_short_side_resize_shapes(h, w, size, expected):
    out = tf.short_side_resize(torch.rand(3, 2, h, w), size)
    assert tuple(out.shape) == (3, 2, *expected)


def test_uint8_resize_matches_float_resize():
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 45, 80), np.uint8))
    small = tf.resize(frames, (27, 48))
    assert small.dtype == torch.uint8 and small.shape == (3, 3, 27, 48)
    reference = tf.resize(frames.float(), (27, 48))
    assert (small.float() - reference).abs().max().item() <= 1.0
    big = tf.resize(frames, (60, 107))  # enlarging: plain bilinear
    assert (big.float() - tf.resize(frames.float(), (60, 107))).abs().max().item() <= 1.0
    with pytest.raises(ValueError):
        tf.resize(frames[:, :2], (10, 10))


def test_resize_keeps_constant_images_and_means():
    flat = torch.full((3, 2, 90, 160), 0.3)
    torch.testing.assert_close(tf.short_side_resize(flat, 45), torch.full((3, 2, 45, 80), 0.3))
    noise = torch.rand(3, 2, 64, 64)
    small = tf.resize(noise, (16, 16))  # antialiased: a 4x4 box-like average, mean preserved
    assert small.mean().item() == pytest.approx(noise.mean().item(), abs=2e-3)
    assert small.std().item() < noise.std().item() / 2.5


def test_random_short_side_scale_range():
    rng = np.random.default_rng(0)
    shorts = set()
    for _ in range(200):
        out = tf.random_short_side_scale(torch.rand(3, 1, 34, 60), 20, 26, rng)
        shorts.add(min(out.shape[-2:]))
        assert out.shape[-1] == int(60 / 34 * min(out.shape[-2:]))
    assert shorts == set(range(20, 27))


def test_random_crop_positions_cover_every_offset():
    video = grid(3, 2, 12, 20)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(2000):
        crop = tf.random_crop(video, 8, rng)
        y, x = offset(crop)
        torch.testing.assert_close(crop, video[..., y : y + 8, x : x + 8])
        seen.add((y, x))
    assert seen == {(y, x) for y in range(5) for x in range(13)}
    with pytest.raises(ValueError):
        tf.random_crop(video, 13, rng)


@pytest.mark.parametrize(
    ("h", "w", "offsets"),
    [
        (10, 20, [(1, 0), (1, 6), (1, 12)]),  # landscape: left, centre, right
        (20, 10, [(0, 1), (6, 1), (12, 1)]),  # portrait: top, centre, bottom
        (8, 8, [(0, 0), (0, 0), (0, 0)]),
    ],
)
def test_uniform_crop_geometry(h, w, offsets):
    video = grid(3, 1, h, w)
    for idx, expected in enumerate(offsets):
        crop = tf.uniform_crop(video, 8, idx)
        assert crop.shape[-2:] == (8, 8)
        assert offset(crop) == expected
    with pytest.raises(ValueError):
        tf.uniform_crop(video, 8, 3)


def test_horizontal_flip():
    video = grid(3, 2, 4, 6)
    rng = np.random.default_rng(0)
    torch.testing.assert_close(tf.horizontal_flip(video, 0.0, rng), video)
    torch.testing.assert_close(tf.horizontal_flip(video, 1.0, rng), video.flip(-1))
    flips = sum(bool(tf.horizontal_flip(video, 0.5, rng)[0, 0, 0, 0] != 0) for _ in range(1000))
    assert 430 < flips < 570


def test_normalize_uses_0_45_and_0_225():
    video = torch.full((3, 2, 4, 4), 0.45)
    video[1] = 0.675
    out = tf.normalize(video)
    torch.testing.assert_close(out[0], torch.zeros(2, 4, 4))
    torch.testing.assert_close(out[1], torch.ones(2, 4, 4))
    views = tf.normalize(torch.full((5, 3, 2, 4, 4), 0.0))
    torch.testing.assert_close(views, torch.full((5, 3, 2, 4, 4), -2.0))


def _frames(t=8, h=68, w=120, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), np.uint8))


def test_train_transform_shape_and_reproducibility():
    frames = _frames()
    a = tf.train_transform(frames, np.random.default_rng(3), crop_size=32, scale=(36, 48))
    b = tf.train_transform(frames, np.random.default_rng(3), crop_size=32, scale=(36, 48))
    c = tf.train_transform(frames, np.random.default_rng(4), crop_size=32, scale=(36, 48))
    assert a.shape == (3, 8, 32, 32) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.is_contiguous()


def test_train_transform_without_flip_never_mirrors():
    """With flip off and no scaling, every output is an unflipped crop of the input."""
    frames = _frames(t=2, h=40, w=40)
    video = tf.normalize(tf.to_float(frames))
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = tf.train_transform(frames, rng, crop_size=32, scale=(40, 40), flip=False)
        found = any(
            torch.allclose(out, video[..., y : y + 32, x : x + 32])
            for y in range(9)
            for x in range(9)
        )
        assert found


def test_val_and_test_views():
    frames = _frames(h=68, w=120)
    val = tf.val_transform(frames, crop_size=32)
    assert val.shape == (3, 8, 32, 32)
    views = tf.test_views(frames, crop_size=32, num_crops=3)
    assert views.shape == (3, 3, 8, 32, 32)
    torch.testing.assert_close(views[1], val)  # the centre crop of the three is val's crop
    assert not torch.equal(views[0], views[2])
    # Same short-side resize (of the uint8 frames), then left and right crops of the long side.
    resized = tf.short_side_resize(frames.permute(0, 3, 1, 2), 32)  # uint8 (T, 3, 32, 56)
    assert resized.dtype == torch.uint8 and resized.shape[-2:] == (32, 56)
    resized = tf.normalize(resized.permute(1, 0, 2, 3).float() / 255)
    torch.testing.assert_close(views[0], resized[..., :, :32])
    torch.testing.assert_close(views[2], resized[..., :, -32:])
    # The float path differs by the uint8 kernel's rounding only: at most one level of 255
    # (0.91 at most here; that kernel computes in integers, the float path's own rounding is
    # some 1e-5 of a level, so the margin does not depend on the CPU).
    float_path = tf.normalize(tf.short_side_resize(tf.to_float(frames), 32))
    torch.testing.assert_close(views[1], float_path[..., :, 12:44], rtol=0, atol=1.01 / 255 / 0.225)
    assert tf.test_views(frames, crop_size=32, num_crops=1).shape == (1, 3, 8, 32, 32)
    with pytest.raises(ValueError):
        tf.test_views(frames, crop_size=32, num_crops=2)
