"""Stochastic depth."""

from __future__ import annotations

from torch import Tensor, nn


class DropPath(nn.Module):
    """Drops the whole residual branch per sample with probability ``p`` (training only).

    Works on any tensor whose first axis is the sample (or group) axis; survivors are scaled by
    1 / (1 - p) so the expectation is unchanged.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    @property
    def active(self) -> bool:
        """Whether ``forward`` changes anything: training with p > 0."""
        return self.p != 0.0 and self.training

    def forward(self, x: Tensor) -> Tensor:
        if not self.active:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"
