"""The transformer MLP."""

from __future__ import annotations

from torch import Tensor, nn

from timesformer.layers.linear import Linear, linear


class Mlp(nn.Module):
    """Linear(D, hidden) -> GELU (exact) -> Linear(hidden, D), names as in the reference (fc1,
    fc2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        # The exact GELU, fused into fc1's product where that runs prepacked (CPU inference).
        h = linear(x, self.fc1.weight, self.fc1.bias, self.fc1, gelu=True)
        return self.fc2(h)
