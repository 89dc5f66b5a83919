"""The transformer MLP."""

from __future__ import annotations

from torch import Tensor, nn


class Mlp(nn.Module):
    """Linear(D, hidden) -> GELU -> Linear(hidden, D), names as in the reference (fc1, fc2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        return self.fc2(self.act(self.fc1(x)))
