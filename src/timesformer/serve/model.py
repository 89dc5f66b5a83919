"""The served model: loaded once as ``timesformer predict`` loads it, and what requests need of it.

``load_model`` builds the predictor with ``load_predictor``, as ``timesformer predict`` does, from
the same options (checkpoint, labels, clips, crops, sampling rate, device, precision), so that the
server's numbers are the command's. ``ServedModel.logits`` is the predictor's forward pass on a
batch of views (``Predictor.logits``); each request reduces its own views' logits with
``probabilities_from_logits``: together they compute exactly what ``Predictor.probabilities``
does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from timesformer.inference.predictor import Predictor, load_predictor
from timesformer.serve.settings import ServeSettings

__all__ = ["ServedModel", "load_model"]

log = logging.getLogger("timesformer.serve")


@dataclass
class ServedModel:
    """A predictor and what the server says about it.

    Attributes:
        predictor: runs the model (its own inference copy, at the server's precision).
        name: the checkpoint as given (a path, a Hub id, reference:NAME).
        preprocess: the clip settings the checkpoint stored (explain reads them).
        attention: the model's attention scheme.
        explain_rate: ``--sampling-rate`` as given, for the rollout's clip (None: the stored one).
    """

    predictor: Predictor
    name: str
    preprocess: dict[str, Any]
    attention: str
    explain_rate: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.predictor.labels)

    def logits(self, views: torch.Tensor) -> torch.Tensor:
        """Views (N, 3, T, H, W) -> logits (N, C), float32 on the CPU (``Predictor.logits``)."""
        return self.predictor.logits(views)

    def info(self) -> dict[str, Any]:
        """What ``/healthz`` reports beyond the status."""
        clip = self.predictor.clip
        return {
            "model": self.name,
            "classes": self.num_classes,
            "attention": self.attention,
            "precision": self.predictor.precision,
            "device": str(self.predictor.device),
            "clip": {
                "frames": clip.num_frames,
                "sampling": clip.sampling,
                "sampling_rate": clip.sampling_rate,
                "target_fps": clip.target_fps,
                "crop_size": clip.crop_size,
                "clips": clip.num_clips,
                "crops": clip.num_crops,
                # How long one window lasts, for clients deciding whether a video is long.
                "seconds": round(clip.num_frames * clip.sampling_rate / clip.target_fps, 3),
            },
        }


def load_model(settings: ServeSettings) -> ServedModel:
    """Load the checkpoint and build its predictor as ``timesformer predict`` does."""
    predictor = load_predictor(
        settings.checkpoint,
        labels=settings.labels,
        clips=settings.clips,
        crops=settings.crops,
        sampling_rate=settings.sampling_rate,
        device=settings.device,
        precision=settings.precision,
    )
    model = predictor.model  # the predictor's copy: the checkpoint's config and preprocess
    served = ServedModel(
        predictor,
        name=settings.checkpoint,
        preprocess=dict(getattr(model, "preprocess", None) or {}),
        attention=model.config.attention,
        explain_rate=settings.sampling_rate,
    )
    log.info(
        "loaded %s: %s attention, %d classes, %s on %s",
        settings.checkpoint,
        served.attention,
        served.num_classes,
        settings.precision,
        predictor.device,
    )
    return served
