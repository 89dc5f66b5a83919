"""The clip that attention rollout explains: one centred clip of a video, read as
``timesformer explain`` and the server's ``/v1/explain`` both read it.

- ``clip_indices``: which frames of the video (``--sampling-rate``, else the checkpoint's
  sampling, else the Kinetics recipe for an 8-frame model, else a clip spanning the video).
- ``prepare_clip``: those frames centre-cropped and normalised as in validation, and the same
  frames as the model saw them (the normalisation undone), for the pictures.

Nothing heavy is imported until a function runs, so that ``timesformer explain --help``, which
names ``KINETICS_RATE``, does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["KINETICS_RATE", "clip_indices", "prepare_clip"]

# How many frames of the video the default clip spans for the Kinetics recipe (8 frames x 32).
KINETICS_RATE = 32


def clip_indices(
    reader: Any, num_frames: int, sampling_rate: int | None, preprocess: dict
) -> tuple[np.ndarray, int]:
    """Frame indices (num_frames,) of the centred clip of ``reader`` (a ``VideoReader``), and
    the sampling rate used (0: one frame per segment)."""
    import numpy as np

    from timesformer.data.sampling import segment_indices, test_indices
    from timesformer.errors import ConfigError

    n, fps = reader.num_frames, reader.fps
    target_fps = float(preprocess.get("target_fps", 30.0))
    if sampling_rate is None and preprocess.get("sampling") == "segment":
        # Something-Something models see one frame from each of num_frames equal segments.
        return segment_indices(n, num_frames), 0
    if sampling_rate is None:
        sampling_rate = preprocess.get("sampling_rate")
    if sampling_rate is None:
        if num_frames == 8:
            sampling_rate = KINETICS_RATE
        else:
            # A window of num_frames * rate frames at target_fps covers the video's n frames.
            sampling_rate = max(1, int(n * target_fps / fps / num_frames))
    if int(sampling_rate) < 1:
        raise ConfigError(f"the sampling rate must be >= 1, got {sampling_rate}")
    pos = test_indices(n, num_frames, int(sampling_rate), 0, 1, fps, target_fps)
    return np.asarray(reader.retime(pos)), int(sampling_rate)


def prepare_clip(
    frames: torch.Tensor, preprocess: dict, img_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames (T, H, W, 3) -> the model's input, normalised float (3, T, crop, crop), and
    the frames as the model sees them, uint8 (T, crop, crop, 3), for the pictures.

    The crop size, test scale, mean and std come from ``preprocess`` (the checkpoint's stored
    clip settings); without a stored crop size the crop is ``img_size``, the model's.
    """
    import torch

    from timesformer.data.transforms import MEAN, STD, val_transform

    crop = int(preprocess.get("crop_size", img_size))
    mean = tuple(preprocess.get("mean", MEAN))
    std = tuple(preprocess.get("std", STD))
    clip = val_transform(frames, crop, preprocess.get("test_scale"), mean, std)
    # Undo the normalisation: what the model saw, as pixels.
    m = torch.tensor(mean).view(3, 1, 1, 1)
    s = torch.tensor(std).view(3, 1, 1, 1)
    shown = (clip * s + m).mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0)
    return clip, shown
