"""The clip rollout explains (``timesformer explain`` and the server's ``/v1/explain``): which
frames, and the model's input beside the frames as the model sees them."""

from __future__ import annotations

import numpy as np
import torch

from timesformer.data.transforms import val_transform
from timesformer.inference.rollout_clip import clip_indices, prepare_clip


class FakeReader:
    """What ``clip_indices`` reads of a ``VideoReader``: a 300-frame constant-rate video."""

    num_frames, fps = 300, 30.0

    def retime(self, pos):
        return np.asarray(pos, dtype=np.int64)


def test_default_sampling_rates():
    # 8 frames: the Kinetics recipe, 8 x 32 frames centred in the video.
    idx, rate = clip_indices(FakeReader(), 8, None, {})
    assert rate == 32 and idx[0] == 22 and idx[-1] == 277
    # Another clip length: the clip spans the whole video.
    idx, rate = clip_indices(FakeReader(), 4, None, {})
    assert rate == 75 and idx[0] == 0 and idx[-1] == 299
    # What the checkpoint says wins over both, and --sampling-rate over that.
    assert clip_indices(FakeReader(), 8, None, {"sampling_rate": 4})[1] == 4
    assert clip_indices(FakeReader(), 8, 2, {"sampling_rate": 4})[1] == 2
    # Something-Something models: one frame per segment.
    idx, rate = clip_indices(FakeReader(), 4, None, {"sampling": "segment"})
    assert rate == 0 and len(idx) == 4 and idx[0] < 75 <= idx[1]


def _frames(t: int = 4, h: int = 16, w: int = 24) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8))


def test_prepare_clip_is_the_validation_crop_and_its_pixels():
    frames = _frames()
    clip, shown = prepare_clip(frames, {}, 16)  # no stored settings: the model's image size
    assert torch.equal(clip, val_transform(frames, 16))
    assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.float32
    assert shown.shape == (4, 16, 16, 3) and shown.dtype == torch.uint8
    # The short side is already the crop size: the pixels shown are the centre crop's own.
    assert torch.equal(shown, frames[:, :, 4:20])


def test_prepare_clip_takes_the_stored_settings():
    frames = _frames()
    pre = {"crop_size": 8, "test_scale": 12, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    clip, shown = prepare_clip(frames, pre, 16)
    expected = val_transform(frames, 8, 12, pre["mean"], pre["std"])
    assert torch.equal(clip, expected)
    assert shown.shape == (4, 8, 8, 3)
    pixels = (expected * 0.25 + 0.5).mul(255).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(shown, pixels.permute(1, 2, 3, 0))
