"""What a prediction returns: ``Prediction`` for a video, ``WindowPrediction`` for one window.

They live apart from ``predictor`` so that ``windows`` builds them without importing the
predictor (which imports ``windows``): the imports run one way, predictor -> windows -> results.
Both are re-exported by ``timesformer.inference.predictor``, their home before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Prediction", "WindowPrediction"]


@dataclass
class WindowPrediction:
    """The prediction for one window of a long video: frames [start, end) seconds."""

    start: float
    end: float
    top: list[tuple[str, float]]
    probs: torch.Tensor | None = field(default=None, repr=False)  # (C,), not serialised

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "top": [{"label": lab, "prob": round(p, 6)} for lab, p in self.top],
        }


@dataclass
class Prediction:
    """The top-k classes of one video (``error`` set instead when it failed)."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    num_views: int = 0
    error: str | None = None
    windows: list[WindowPrediction] | None = None
    probs: torch.Tensor | None = field(default=None, repr=False)  # (C,), not serialised

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.error is not None:
            out["error"] = self.error
            return out
        out["top"] = [{"label": lab, "prob": round(p, 6)} for lab, p in self.top]
        out["views"] = self.num_views
        if self.windows is not None:
            out["windows"] = [w.to_dict() for w in self.windows]
        return out
