"""Each scheme's block equals a dense masked-attention reference written here independently.

The reference never regroups tokens: it runs attention over the whole (1 + N*T)-token clip and
forbids, with a boolean mask, every pair of tokens that the scheme keeps apart.  The cls token
joins the last step of each block once per group of that step (its copies' outputs averaged),
so its row is computed once per group with that group's mask.
"""

from __future__ import annotations

import pytest
import torch

from helpers import randomize, tiny
from timesformer.schemes import Grid

# Which tokens share a group in each step, as a function of a patch's (t, h, w).
GROUPS = {
    "divided": {"temporal": lambda t, h, w, g: (h, w), "last": lambda t, h, w, g: (t,)},
    "joint": {"last": lambda t, h, w, g: ()},
    "local_global": {
        "local": lambda t, h, w, g: (h // (g.h // 2), w // (g.w // 2)),
        "last": lambda t, h, w, g: (t % 2, h % 2, w % 2),
    },
    "axial": {
        "temporal": lambda t, h, w, g: (h, w),
        "width": lambda t, h, w, g: (h, t),
        "last": lambda t, h, w, g: (w, t),
    },
}


def coords(grid: Grid) -> list[tuple[int, int, int]]:
    """(t, h, w) of each patch token, in the reference token order (h, w, t)."""
    return [(t, h, w) for h in range(grid.h) for w in range(grid.w) for t in range(grid.t)]


def dense_attention(attn, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Multi-head attention over all tokens of x (B, L, D) with an (L, L) boolean mask."""
    b, l, d = x.shape
    heads = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, l, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-2, -1)) * (d // heads) ** -0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, l, d)
    return attn.proj(out)


def dense_block(block, x: torch.Tensor, grid: Grid, groups: dict) -> torch.Tensor:
    cs = coords(grid)
    n = len(cs)
    cls_tok, p = x[:, :1], x[:, 1:]
    for step in block.extra_steps:
        key = [groups[step](*c, grid) for c in cs]
        allowed = torch.tensor([[key[i] == key[j] for j in range(n)] for i in range(n)])
        norm, attn, fc = (getattr(block, f"{step}_{s}") for s in ("norm1", "attn", "fc"))
        p = p + fc(dense_attention(attn, norm(p), allowed))

    key = [groups["last"](*c, grid) for c in cs]
    tokens = torch.cat((cls_tok, p), dim=1)
    normed = block.norm1(tokens)
    # Patch rows: the cls token plus the patches of the same group.
    allowed = torch.ones(n + 1, n + 1, dtype=torch.bool)
    allowed[1:, 1:] = torch.tensor([[key[i] == key[j] for j in range(n)] for i in range(n)])
    res = dense_attention(block.attn, normed, allowed)
    # The cls row: once per group, averaged.
    cls_rows = []
    for g in sorted(set(key)):
        row = torch.ones(n + 1, n + 1, dtype=torch.bool)
        row[0, 1:] = torch.tensor([k == g for k in key])
        cls_rows.append(dense_attention(block.attn, normed, row)[:, :1])
    cls_res = torch.stack(cls_rows).mean(0)
    out = torch.cat((cls_tok + cls_res, p + res[:, 1:]), dim=1)
    return out + block.mlp(block.norm2(out))


@pytest.mark.parametrize("scheme_name", ["local_global", "axial", "divided", "joint"])
@pytest.mark.parametrize(("t", "h", "w"), [(4, 4, 4), (2, 4, 6)])
def test_block_equals_dense_masked_reference(scheme_name, t, h, w):
    model = randomize(tiny(scheme_name))
    block = model.blocks[0]
    grid = Grid(t, h, w)
    x = torch.randn(2, 1 + t * h * w, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        fast = block(x, grid)
        dense = dense_block(block, x, grid, GROUPS[scheme_name])
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=1e-5)


def test_local_global_groups_are_quadrants_and_stride_two():
    """The grouping itself: 4 local windows of T*H/2*W/2 tokens, 8 global groups."""
    block = tiny("local_global").blocks[0]
    grid = Grid(4, 4, 4)
    ids = torch.arange(grid.n * grid.t, dtype=torch.float32).reshape(1, -1, 1)
    local = block.group("local", ids, grid).squeeze(-1)
    glob = block.group("last", ids, grid).squeeze(-1)
    assert local.shape == (4, 16) and glob.shape == (8, 8)
    cs = coords(grid)
    for row in local.long().tolist():
        assert len({(cs[i][1] // 2, cs[i][2] // 2) for i in row}) == 1
    for row in glob.long().tolist():
        assert len({(cs[i][0] % 2, cs[i][1] % 2, cs[i][2] % 2) for i in row}) == 1
    # ungroup is the exact inverse
    torch.testing.assert_close(
        block.ungroup("local", block.group("local", ids, grid), grid, 1), ids
    )
    torch.testing.assert_close(block.ungroup("last", block.group("last", ids, grid), grid, 1), ids)


@pytest.mark.parametrize("scheme_name", ["local_global", "axial", "divided", "joint"])
def test_training_block_and_gradients_equal_dense_reference(scheme_name):
    """In training the extra steps' proj and fc run folded into one linear inside the graph; the
    output and every gradient equal the reference's two linears."""
    model = randomize(tiny(scheme_name)).train()
    block = model.blocks[0]
    grid = Grid(4, 4, 4)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1 + 64, 32, generator=gen)
    weights = torch.randn(2, 1 + 64, 32, generator=gen)
    results = []
    for run in (
        lambda x: block(x, grid),
        lambda x: dense_block(block, x, grid, GROUPS[scheme_name]),
    ):
        block.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        out = run(xi)
        (out * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in block.named_parameters()}
        results.append((out.detach(), xi.grad, grads))
    (fast, fast_dx, fast_grads), (dense, dense_dx, dense_grads) = results
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_dx, dense_dx, atol=1e-4, rtol=1e-4)
    assert fast_grads.keys() == dense_grads.keys()
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], dense_grads[name], atol=1e-4, rtol=1e-4)
    fc_grads = [n for n in fast_grads if n.endswith("_fc.weight")]
    assert len(fc_grads) == len(block.extra_steps)
    assert all(fast_grads[n].abs().sum() > 0 for n in fc_grads)


@pytest.mark.parametrize("scheme_name", ["local_global", "axial", "divided", "joint"])
def test_cls_only_block_equals_the_cls_row_of_the_dense_reference(scheme_name):
    model = randomize(tiny(scheme_name))
    block = model.blocks[-1]
    grid = Grid(4, 4, 4)
    x = torch.randn(2, 1 + 64, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        cls = block(x, grid, cls_only=True)
        dense = dense_block(block, x, grid, GROUPS[scheme_name])
    assert cls.shape == (2, 1, 32)
    torch.testing.assert_close(cls, dense[:, :1], atol=1e-5, rtol=1e-5)
