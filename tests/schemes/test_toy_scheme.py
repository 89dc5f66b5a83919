"""A sixth scheme defined here, in the test, and nowhere in the package: it must build, train,
save and load, proving that adding a scheme is one new module and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

import timesformer
from helpers import clip
from timesformer.checkpoints.keys import infer_attention
from timesformer.inference.rollout import attention_rollout, rollout_support
from timesformer.schemes import SCHEMES, Grid, SchemeBlock, register_scheme


class TimeOnlyBlock(SchemeBlock):
    """Attention over the T frames of each patch position (a cls copy in front of each), no
    spatial step: patches never see another position."""

    name = "time_only"
    description = "attention over the frames of each patch position, then MLP"

    def group(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        # (B, N*T, D), space-major and time-minor -> (B*N, T, D) without a copy.
        return p.reshape(-1, grid.t, p.shape[-1])

    def ungroup_view(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        # (B*N, T, D) -> (B, N*T, D): the groups are already in token order.
        return y.reshape(batch, grid.n * grid.t, y.shape[-1])


@pytest.fixture
def time_only() -> Iterator[type[SchemeBlock]]:
    """The toy scheme, registered for one test and removed after it whatever happens."""
    paper = timesformer.ATTENTION_SCHEMES
    register_scheme(TimeOnlyBlock)
    try:
        yield TimeOnlyBlock
    finally:
        del SCHEMES[TimeOnlyBlock.name]
    assert paper == timesformer.ATTENTION_SCHEMES


def test_a_scheme_defined_outside_the_package_trains_saves_and_loads(
    time_only: type[SchemeBlock], tmp_path: Path
) -> None:
    # Every list of schemes is read from the registry: the toy comes after the paper's five.
    paper = ("space", "joint", "divided", "local_global", "axial")
    assert (*paper, "time_only") == timesformer.ATTENTION_SCHEMES

    torch.manual_seed(0)
    model = timesformer.create_model(
        "timesformer_tiny", attention="time_only", num_classes=5, drop_path_rate=0.0
    )
    assert isinstance(model.blocks[0], TimeOnlyBlock)
    x, label = clip(2), torch.tensor([1, 3])

    # One optimizer step changes the weights and lowers nothing to NaN.
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(x), label)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "blocks.0.attn.qkv.weight" in changed and "head.weight" in changed

    # Saved and loaded through the public API, it gives the same logits bit for bit.
    model.eval()
    with torch.no_grad():
        logits = model(x)
    path = timesformer.save_checkpoint(model, tmp_path / "toy.safetensors")
    loaded = timesformer.load_checkpoint(path).eval()
    assert loaded.config.attention == "time_only"
    assert isinstance(loaded.blocks[0], TimeOnlyBlock)
    with torch.no_grad():
        assert torch.equal(loaded(x), logits)

    # Rollout reads it through the shared forward; its keys are joint's, so a checkpoint that
    # does not name its scheme is read as the paper's joint attention.
    assert rollout_support(loaded) == "tokens"
    relevance = attention_rollout(loaded, x[:1])
    assert relevance.shape == (4, 4, 4)
    assert infer_attention(set(loaded.state_dict())) == "joint"


def test_the_toy_scheme_is_gone_after_its_test() -> None:
    assert "time_only" not in SCHEMES
    assert timesformer.ATTENTION_SCHEMES == ("space", "joint", "divided", "local_global", "axial")
