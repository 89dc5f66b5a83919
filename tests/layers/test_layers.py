"""The shared layers: attention paths, drop path, embedding resizing."""

from __future__ import annotations

import pytest
import torch

from timesformer.layers import Attention, DropPath, resize_pos_embed, resize_time_embed


def test_attention_fused_equals_plain_and_keeps_weights():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(6, 9, 32)
    fused = attn(x)
    attn.keep_attention = True
    plain = attn(x)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    assert attn.last_attention.shape == (6, 4, 9, 9)
    torch.testing.assert_close(attn.last_attention.sum(-1), torch.ones(6, 4, 9))


def test_drop_path_keeps_expectation_and_is_identity_in_eval():
    torch.manual_seed(0)
    dp = DropPath(0.3)
    x = torch.ones(20000, 3)
    dp.eval()
    assert torch.equal(dp(x), x)  # exact: in eval mode drop path hands its input back untouched
    dp.train()
    y = dp(x)
    kept = (y[:, 0] > 0).float().mean().item()
    assert abs(kept - 0.7) < 0.02
    assert abs(y.mean().item() - 1.0) < 0.03


def test_pos_embed_resize_on_the_2d_grid():
    # Each grid cell holds its (row, col): a 2-D resize keeps rows and columns apart.
    rows, cols = torch.meshgrid(torch.arange(2.0), torch.arange(2.0), indexing="ij")
    grid = torch.stack((rows, cols), -1).reshape(1, 4, 2)
    pos = torch.cat((torch.full((1, 1, 2), 7.0), grid), 1)
    out = resize_pos_embed(pos, (4, 4), (2, 2), mode="nearest")
    assert out.shape == (1, 17, 2)
    # Exact: nearest resizing only copies values.
    assert out[0, 0].tolist() == [7.0, 7.0]
    cells = out[0, 1:].reshape(4, 4, 2)
    assert cells[..., 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert cells[..., 1].tolist() == [[0, 0, 1, 1]] * 4
    # rectangular targets work too
    assert resize_pos_embed(pos, (3, 5), mode="bicubic").shape == (1, 16, 2)


def test_time_embed_resize_in_1d():
    te = torch.arange(4.0).reshape(1, 4, 1)  # exact below: nearest resizing only copies values
    assert resize_time_embed(te, 8)[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert resize_time_embed(te, 2)[0, :, 0].tolist() == [0, 2]
    assert resize_time_embed(te, 4) is te


@pytest.mark.parametrize(
    ("dtype", "length", "plain"),
    [
        (torch.bfloat16, 8, True),
        (torch.bfloat16, 197, True),
        (torch.bfloat16, 1569, False),  # joint: the flash kernel, no L x L matrix
        (torch.float32, 8, False),
    ],
)
def test_cpu_kernel_choice_and_agreement(dtype, length, plain):
    from timesformer.layers.attention import plain_is_faster

    attn = Attention(64, 4).to(dtype).eval()
    x = torch.randn(3, length, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    q = torch.empty(3, length, 4, 16, dtype=dtype)  # (G, L, heads, head_dim)
    assert plain_is_faster(q) is plain
    with torch.no_grad():
        auto = attn(x)
        attn.fused = False
        reference = attn(x)
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-5
    assert torch.allclose(auto.float(), reference.float(), atol=tol)


@pytest.mark.parametrize("grad", [False, True])
def test_attention_with_fewer_queries_equals_the_first_rows(grad):
    """``queries=Q``: every token stays a key and value, only the first Q rows are computed (on
    the prepacked path under no_grad, with q and kv split out of the fused weight)."""
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(6, 9, 32)
    with torch.set_grad_enabled(grad):
        full = attn(x)
        few = attn(x, queries=2)
        assert few.shape == (6, 2, 32)
        torch.testing.assert_close(few, full[:, :2], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attn(x, queries=9), full)
        # A weight changed in place is seen by the split q and kv weights too.
        with torch.no_grad():
            attn.qkv.weight[40:].mul_(-1.0)
        changed = attn(x, queries=2)
        assert not torch.allclose(changed, few, atol=1e-3)
        torch.testing.assert_close(changed, attn(x)[:, :2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("length", [8, 13])
def test_split_heads_gives_autograds_values_and_gradients(monkeypatch, autocast, length):
    """The plain path with ``SplitHeads`` (CPU, gradients wanted) against the permute, unbind
    and scale it replaces: the same output and gradients to rounding, in fp32 and under bf16
    autocast. Not bit for bit: the products read contiguous copies on one path and strided
    views on the other, and oneDNN may pick other kernels for them (on an AMD Zen 4 the fp32
    outputs differed by 9e-8)."""
    from timesformer.layers import attention

    torch.manual_seed(0)
    attn = Attention(32, 4)
    attn.fused = False
    x = torch.randn(6, length, 32)
    weights = torch.randn(6, length, 32)
    calls = []
    apply = attention.SplitHeads.apply
    monkeypatch.setattr(
        attention.SplitHeads, "apply", lambda *a: calls.append(1) or apply(*a), raising=True
    )

    def run():
        inp = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = attn(inp)
        params = [inp, attn.qkv.weight, attn.qkv.bias]
        return (out, *torch.autograd.grad((out.float() * weights).sum(), params))

    split = run()
    assert calls, "the plain path with gradients did not take SplitHeads"
    # In a traced graph the plain path splits with permute, unbind and scale.
    monkeypatch.setattr(attention, "in_graph", lambda: True)
    calls.clear()
    reference = run()
    assert not calls
    # bf16 autocast: the output is bf16, the gradients fp32 but through bf16 products.
    tol = 1.6e-2 if autocast else 1e-5
    for a, b in zip(split, reference, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_split_heads_gradient_is_the_numerical_one():
    from timesformer.layers.attention import SplitHeads

    qkv = torch.randn(3, 5, 3, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: SplitHeads.apply(t, 0.3), (qkv,))
    q, k, v = SplitHeads.apply(qkv, 0.3)
    assert all(t.shape == (3, 2, 5, 4) and t.is_contiguous() for t in (q, k, v))
    torch.testing.assert_close(q, qkv[:, :, 0].transpose(1, 2) * 0.3)
    torch.testing.assert_close(v, qkv[:, :, 2].transpose(1, 2))


def test_split_heads_takes_the_packed_projection_in_eager_mode_only(monkeypatch):
    """SplitHeads needs q, k and v as views of one (G, L, 3, heads, head_dim) projection: not
    there for the queries-only projection, and graphs take the plain ops."""
    from timesformer.layers import attention

    attn = Attention(8, 2)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        qkv = attn.project_qkv(x)
        assert qkv.packed is not None and attn.project_qkv(x, queries=1).packed is None
        q, k, v = attention.split_heads(qkv, 0.5)
        assert all(t.shape == (2, 2, 3, 4) and t.is_contiguous() for t in (q, k, v))
        monkeypatch.setattr(attention, "in_graph", lambda: True)
        q2, k2, v2 = attention.split_heads(qkv, 0.5)
    assert not k2.is_contiguous()  # the views, not SplitHeads' copies
    for a, b in zip((q, k, v), (q2, k2, v2), strict=True):
        torch.testing.assert_close(a, b)
