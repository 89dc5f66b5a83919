"""Attention rollout: uniform attention gives a uniform map, a hand-made model puts the relevance
where it attends, and the fast row-vector rollout equals the product of full token matrices."""

from __future__ import annotations

import types

import pytest
import torch

from helpers import SCHEMES, clip, randomize, tiny
from timesformer.errors import ConfigError
from timesformer.inference.rollout import (
    _back_through_step,
    _collect,
    _group_index,
    _step_attentions,
    attention_rollout,
    explain_clip,
    rollout_support,
)
from timesformer.layers import Attention
from timesformer.schemes import Grid, SchemeBlock


def uniform_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Zero every qkv projection: q . k = 0 everywhere, so every softmax row is uniform."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Attention):
                m.qkv.weight.zero_()
                m.qkv.bias.zero_()
    return model


@pytest.mark.parametrize("attention", SCHEMES)
def test_uniform_attention_gives_a_uniform_map(attention):
    model = uniform_attention(randomize(tiny(attention)))
    rel = attention_rollout(model, clip(1)[0])
    assert rel.shape == (4, 4, 4)  # (T, H', W') of the tiny model's 4 frames of 4x4 patches
    torch.testing.assert_close(rel, torch.full_like(rel, 1 / 64), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("attention", SCHEMES)
@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_map_shape_sum_and_logits(attention, fusion):
    model = randomize(tiny(attention, num_frames=2, img_size=24))
    x = clip(1, t=2, h=24, w=24)
    res = explain_clip(model, x, head_fusion=fusion, discard_ratio=0.25)
    assert res.relevance.shape == (2, 6, 6)
    assert float(res.relevance.min()) >= 0
    assert float(res.relevance.sum()) == pytest.approx(1.0, abs=1e-5)
    assert 0 < res.cls_share < 1
    # The forward pass that was read is the model's own: same logits as the fused path.
    torch.testing.assert_close(res.logits, model(x)[0], rtol=1e-4, atol=1e-5)


def test_model_is_left_as_it_was():
    model = randomize(tiny("divided")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attention_rollout(model, clip(1))
    assert model.training
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    assert all(m.fused and not m.keep_attention and m.last_attention is None for m in layers)
    # Exact: untouched weights are the very values copied before.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def attend_to_one_patch(model: torch.nn.Module, h0: int, w0: int, channel: int = 5):
    """Every query attends (in effect) only to the patch at (h0, w0): that position's embedding
    carries a huge value in ``channel``, keys read only that channel, queries are constant."""
    d = model.config.embed_dim
    with torch.no_grad():
        model.pos_embed[0, 1 + h0 * model.config.grid_size + w0, channel] = 100.0
        for m in model.modules():
            if isinstance(m, Attention):
                m.qkv.weight[: 2 * d].zero_()
                m.qkv.bias[: 2 * d].zero_()
                m.qkv.bias[:d] = 1.0  # q: constant
                m.qkv.weight[d : 2 * d, channel] = 20.0  # k: the marked channel, scaled
    return model


# Schemes in whose last step every group holds a token of the marked position, so that every
# cls copy reads it.  In local_global and axial some groups do not contain it, their queries
# attend among tokens of random keys, and the result depends on the initialisation: those
# schemes are checked against the dense product below instead.
@pytest.mark.parametrize("attention", ["space", "joint", "divided"])
def test_relevance_goes_to_the_attended_patch(attention):
    h0, w0 = 2, 1
    torch.manual_seed(0)  # the tiny model's initialisation, whatever ran before
    model = attend_to_one_patch(tiny(attention), h0, w0)
    rel = attention_rollout(model, clip(1))
    # By hand: every step's row of every token is 0.5 (itself) + 0.5 (the marked patch of its
    # group), so the cls row reaches no patch but the marked ones: all the mass is there.
    assert float(rel[:, h0, w0].sum()) == pytest.approx(1.0, abs=1e-4)
    if attention == "space":
        # Frames are separate images averaged at the end: 1/T each, exactly.
        torch.testing.assert_close(rel[:, h0, w0], torch.full((4,), 0.25))


def test_one_step_by_hand():
    # 2 groups of 2 patches, patch tokens 1..4; last step with a cls copy in front of each group.
    idx = torch.tensor([[0, 2], [1, 3]])
    a = torch.zeros(2, 3, 3)
    a[0] = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    a[1] = torch.tensor([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])  # the cls output
    out = _back_through_step(r, a, idx, with_cls=True)
    # cls = mean of the two copies: 0.5 cls + 0.25 patch idx 0 (token 1) + 0.25 idx 3 (token 4).
    torch.testing.assert_close(out, torch.tensor([0.5, 0.25, 0.0, 0.0, 0.25]))
    # A patch-only step keeps the cls share and moves patch relevance along each group's row.
    b = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    out2 = _back_through_step(out, b, idx, with_cls=False)
    torch.testing.assert_close(out2, torch.tensor([0.5, 0.0, 0.0, 0.25, 0.25]))


def test_divided_groups_are_the_papers():
    block = tiny("divided").blocks[0]
    grid = Grid(3, 2, 2)
    temporal = _group_index(block, "temporal", grid, torch.device("cpu"))
    spatial = _group_index(block, "last", grid, torch.device("cpu"))
    # Patch index (h*W' + w)*T + t: a temporal group is one position over the frames, a
    # spatial group one frame over the positions.
    for n in range(4):
        assert temporal[n].tolist() == [n * 3 + t for t in range(3)]
    for t in range(3):
        assert spatial[t].tolist() == [n * 3 + t for n in range(4)]


def dense_step(a: torch.Tensor, idx: torch.Tensor, with_cls: bool, m: int) -> torch.Tensor:
    """The step's full (M, M) token matrix (rows: outputs, columns: inputs), built entry by
    entry: the construction the fast rollout must reproduce."""
    full = torch.zeros(m, m, dtype=torch.float64)
    g, length = idx.shape
    if not with_cls:
        full[0, 0] = 1.0
    for gi in range(g):
        off = 1 if with_cls else 0
        tok = [1 + int(i) for i in idx[gi]]
        for i in range(length):
            for j in range(length):
                full[tok[i], tok[j]] = a[gi, off + i, off + j]
        if with_cls:
            full[0, 0] += a[gi, 0, 0] / g
            for j in range(length):
                full[0, tok[j]] += a[gi, 0, 1 + j] / g
                full[tok[j], 0] = a[gi, 1 + j, 0]
    return full


@pytest.mark.parametrize("attention", ["joint", "divided", "local_global", "axial"])
def test_fast_rollout_equals_the_product_of_token_matrices(attention):
    model = randomize(tiny(attention, num_frames=2, img_size=8))  # 2 frames of 2x2 patches
    x = clip(1, t=2, h=8, w=8)
    _, grid, fused = _collect(model, x, "mean", 0.0)
    m = 1 + grid.n * grid.t
    product = torch.eye(m, dtype=torch.float64)
    for block in model.blocks:  # R = A_K ... A_1, multiplied in order
        for step, attn in _step_attentions(block):
            idx = _group_index(block, step, grid, torch.device("cpu"))
            product = dense_step(fused[id(attn)].double(), idx, step == "last", m) @ product
    # Rows of fp32 softmaxes: each sums to 1 to fp32 rounding (1.4e-7 off here, and the exp
    # kernels differ between CPUs), not to float64's.
    torch.testing.assert_close(
        product.sum(dim=1), torch.ones(m, dtype=torch.float64), rtol=0, atol=1e-5
    )
    row = product[0, 1:].reshape(grid.h, grid.w, grid.t).permute(2, 0, 1)
    expected = (row / row.sum()).float()
    torch.testing.assert_close(attention_rollout(model, x), expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_config_errors():
    model = tiny("divided")
    with pytest.raises(ConfigError, match="head fusion"):
        attention_rollout(model, clip(1), head_fusion="median")
    with pytest.raises(ConfigError, match="discard ratio"):
        attention_rollout(model, clip(1), discard_ratio=1.0)
    with pytest.raises(ConfigError, match="one clip"):
        attention_rollout(model, clip(2))


def test_discarding_sharpens_the_map():
    model = randomize(tiny("divided"))
    plain = attention_rollout(model, clip(1))
    sharp = attention_rollout(model, clip(1), discard_ratio=0.9)
    assert float(sharp.max()) > float(plain.max())


def test_a_scheme_with_its_own_forward_is_refused():
    class Custom(SchemeBlock):  # not registered: a scheme someone else might write
        name = "custom"

        def forward(self, x, grid):
            return x

    fake = types.SimpleNamespace(scheme=Custom)
    with pytest.raises(ConfigError, match="not defined for the 'custom'"):
        rollout_support(fake)
    assert rollout_support(tiny("space")) == "frames"
    assert {rollout_support(tiny(s)) for s in SCHEMES if s != "space"} == {"tokens"}
