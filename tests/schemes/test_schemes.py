"""Every attention scheme: shapes, gradients, fused vs plain, checkpointing, other sizes."""

from __future__ import annotations

import pytest
import torch

import timesformer
from helpers import clip, randomize, tiny
from timesformer.errors import ConfigError
from timesformer.schemes import SCHEMES, Grid


def test_registry_lists_the_five_schemes_of_the_paper():
    assert timesformer.ATTENTION_SCHEMES == ("space", "joint", "divided", "local_global", "axial")
    assert set(SCHEMES) == set(timesformer.ATTENTION_SCHEMES)


def test_output_shape_and_finite(scheme):
    model = tiny(scheme, num_classes=7)
    out = model(clip(b=3))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


def test_every_parameter_receives_a_gradient(scheme):
    model = randomize(tiny(scheme)).train()
    model(clip()).logsumexp(-1).sum().backward()
    no_grad = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert no_grad == []


def test_reference_init_zeroes_time_embedding_and_extra_step_linears(scheme):
    model = tiny(scheme)
    if model.time_embed is not None:
        assert torch.count_nonzero(model.time_embed) == 0
    for block in model.blocks:
        for _, _, _, fc in block.extra_step_modules():
            assert torch.count_nonzero(fc.weight) == 0 and torch.count_nonzero(fc.bias) == 0


def test_normal_extra_step_init_gives_the_extra_steps_gradient_at_the_first_step(scheme):
    # From zero, an extra step's attention gets no gradient until its linear has moved.
    model = tiny(scheme, extra_step_init="normal").train()
    model(clip()).logsumexp(-1).sum().backward()
    for block in model.blocks:
        for _, _, attn, fc in block.extra_step_modules():
            assert fc.weight.std() > 0.01
            assert attn.qkv.weight.grad.abs().sum() > 0
    zero = tiny(scheme).train()
    zero(clip()).logsumexp(-1).sum().backward()
    for block in zero.blocks:
        for _, _, attn, _ in block.extra_step_modules():
            assert attn.qkv.weight.grad.abs().sum() == 0


def test_fused_and_plain_attention_agree(scheme):
    model = randomize(tiny(scheme))
    x = clip()
    with torch.no_grad():
        fused = model(x)
        model.set_fused_attention(False)
        plain = model(x)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_keeps_output_and_gradients(scheme):
    x = clip()
    grads = []
    outs = []
    for ckpt in (False, True):
        model = randomize(tiny(scheme)).train()
        model.set_grad_checkpointing(ckpt)
        out = model(x)
        out.sum().backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


@pytest.mark.parametrize(("t", "h", "w"), [(2, 16, 16), (6, 16, 16), (4, 24, 32), (8, 8, 8)])
def test_other_frame_counts_and_sizes(scheme, t, h, w):
    model = randomize(tiny(scheme))
    with torch.no_grad():
        out = model(clip(b=2, t=t, h=h, w=w))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def test_runtime_resize_equals_a_model_built_for_that_size(scheme):
    """Resizing at run time and resizing at load time are the same operation."""
    small = randomize(tiny(scheme))
    big = tiny(scheme, num_frames=8, img_size=32)
    timesformer.checkpoints.load.load_into(
        timesformer.checkpoints.load.Source("timesformer", small.state_dict()), big, "mem"
    )
    x = clip(b=1, t=8, h=32, w=32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), big(x))


def test_drop_path_only_in_training(scheme):
    model = randomize(tiny(scheme, drop_path_rate=0.5))
    x = clip()
    with torch.no_grad():
        a, b = model(x), model(x)
        torch.testing.assert_close(a, b)
        model.train()
        torch.manual_seed(0)
        c = model(x)
        torch.manual_seed(1)
        d = model(x)
    assert not torch.allclose(c, d)


def test_space_scheme_ignores_frame_order():
    model = randomize(tiny("space"))
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(2)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scheme_name", ["joint", "divided", "local_global", "axial"])
def test_schemes_with_time_see_frame_order(scheme_name):
    model = randomize(tiny(scheme_name))
    x = clip()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x.flip(2)), atol=1e-4)


def test_forward_features_is_the_pooled_embedding(scheme):
    model = randomize(tiny(scheme))
    x = clip()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 32)
        torch.testing.assert_close(model.forward_head(feats), model(x))


def test_local_global_needs_even_grid():
    model = tiny("local_global")
    with pytest.raises(ConfigError, match="even"):
        model(clip(t=3))


def test_bad_input_shapes_are_clear_errors():
    model = tiny()
    with pytest.raises(ConfigError, match="not divisible by the patch size"):
        model(clip(h=18))
    with pytest.raises(ConfigError, match=r"\(B, C, T, H, W\)"):
        model(torch.zeros(3, 4, 16, 16))


def test_inference_fold_of_proj_and_fc_equals_the_two_linears(scheme):
    model = randomize(tiny(scheme))
    x = clip()
    unfolded = model(x)  # grad enabled: the fold is computed in the graph, never cached
    with torch.no_grad():
        folded = model(x)
        assert torch.allclose(folded, unfolded, atol=1e-5), (folded - unfolded).abs().max()
        # Changed weights (an optimizer step, a load) are seen: the fold is recomputed.
        for name, p in model.named_parameters():
            if name.endswith("_fc.weight") or name.endswith("attn.proj.weight"):
                p.mul_(0.5)
        again = model(x)
    assert torch.allclose(again, model(x), atol=1e-5)
    if SCHEMES[scheme].extra_steps:
        assert not torch.allclose(again, folded, atol=1e-3)
    # Replaced weights (new storage of the same shape) are seen too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_fc.weight"):
                p.data = torch.randn_like(p) * 0.1
        replaced = model(x)
    assert torch.allclose(replaced, model(x), atol=1e-5)
    unfolded = model(x)
    assert torch.allclose(replaced, unfolded, atol=1e-5)


@pytest.mark.parametrize("rate", [0.9, 0.0])
def test_drop_path_scales_the_folded_training_product_as_it_scaled_proj(rate):
    """Training folds fc(drop_path(proj(y))) into one product: drop_path must still scale proj's
    part and not fc's bias (without drop_path, fc's bias joins the product's). Checked against
    the two linears, with the same random draws: the outputs and every gradient."""
    model = randomize(tiny("divided", drop_path_rate=rate)).train()
    block = model.blocks[1]

    grid = Grid(4, 4, 4)
    x = torch.randn(2, 65, 32, generator=torch.Generator().manual_seed(2), requires_grad=True)

    def two_linears(x):
        cls_tok, p = x[:, :1], x[:, 1:]
        seqs = block.group("temporal", p, grid)
        res = block.drop_path(block.temporal_attn(block.temporal_norm1(seqs)))
        p = p + block.temporal_fc(block.ungroup("temporal", res, grid, 2))
        seqs = block.group("last", p, grid)
        cls_copies = cls_tok.expand(2, 4, 32).reshape(8, 1, 32)
        res = block.drop_path(block.attn(block.norm1(torch.cat((cls_copies, seqs), dim=1))))
        cls_res = res[:, 0].reshape(2, 4, 32).mean(dim=1, keepdim=True)
        x = torch.cat((cls_tok + cls_res, p + block.ungroup("last", res[:, 1:], grid, 2)), dim=1)
        return x + block.drop_path(block.mlp(block.norm2(x)))

    def grads(out):
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
        params = [x, *block.parameters()]
        return torch.autograd.grad((out * weights).sum(), params)

    for seed in range(3):
        torch.manual_seed(seed)
        fast = block(x, grid)
        torch.manual_seed(seed)
        slow = two_linears(x)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
        for a, b in zip(grads(fast), grads(slow), strict=True):
            # drop_path's 1 / (1 - p) = 10 scales the rounding in the gradients too.
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _logits(model, x, cls_only: bool):
    tokens, grid = model.forward_tokens(x, cls_only=cls_only)
    assert (tokens.shape[1] == 1) == cls_only
    return model.forward_head(model.norm(model.scheme.pool(tokens, grid)))


def test_forward_skips_the_last_blocks_patch_tokens_in_inference_and_training(scheme):
    model = randomize(tiny(scheme))
    x = clip()
    calls = []
    hook = model.blocks[-1].mlp.register_forward_hook(lambda m, i, out: calls.append(out.shape[1]))
    with torch.no_grad():
        full = _logits(model, x, cls_only=False)
        torch.testing.assert_close(model(x), full, atol=1e-5, rtol=1e-5)
    # With gradients too: the same logits, and the gradients reach every parameter.
    logits = model(x)
    logits.logsumexp(-1).sum().backward()
    hook.remove()
    assert calls[0] > 1 and calls[1] == calls[2] == 1
    torch.testing.assert_close(logits.detach(), full, atol=1e-5, rtol=1e-5)
    assert all(p.grad is not None for p in model.parameters())


def test_cls_only_tokens_give_the_same_logits_and_gradients(scheme):
    model = randomize(tiny(scheme)).train()
    x = clip()
    grads = []
    for cls_only in (True, False):
        model.zero_grad(set_to_none=True)
        logits = _logits(model, x, cls_only)
        logits.logsumexp(-1).sum().backward()
        grads.append((logits.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (fast, fast_grads), (full, full_grads) = grads
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    for name, g in full_grads.items():
        torch.testing.assert_close(fast_grads[name], g, atol=1e-5, rtol=1e-5, msg=name)


def test_forward_tokens_keeps_every_tokens_attention_and_forward_the_cls_row(scheme):
    """Attention rollout reads ``forward_tokens``' maps, every token's row; ``forward`` computes
    the last block's cls row alone, kept weights or not."""
    model = randomize(tiny(scheme))
    attn = model.blocks[-1].attn
    attn.keep_attention = True
    with torch.no_grad():
        model.forward_tokens(clip())
        assert attn.last_attention.shape[-2] == attn.last_attention.shape[-1]
        model(clip())
        assert attn.last_attention.shape[-2] == 1


@pytest.mark.parametrize("train", [False, True])
def test_fast_blocks_give_the_plain_blocks_outputs_and_gradients(scheme, train):
    """``fast_block``'s folded linears and in-place joins against the blocks that read as the
    paper: the same keys, the same logits and gradients up to rounding (fp32), in inference
    (cached folds, prepacked products) and in training (the fold in the graph)."""
    from timesformer.model import TimeSformer
    from timesformer.schemes import fast_block, plain_block

    fast = randomize(tiny(scheme), seed=3)
    plain = TimeSformer(fast.config, fast=False)
    plain.load_state_dict(fast.state_dict())
    assert fast.state_dict().keys() == plain.state_dict().keys()
    assert type(plain.blocks[0]) is SCHEMES[scheme]
    assert type(fast.blocks[0]) is fast_block(SCHEMES[scheme])
    assert plain_block(type(fast.blocks[0])) is SCHEMES[scheme]
    x = clip(b=2)
    results = []
    for model in (fast, plain):
        model.train(train)
        with torch.set_grad_enabled(train):
            logits = model(x)
            tokens, _ = model.forward_tokens(x)
        grads = {}
        if train:
            loss = logits.logsumexp(-1).sum() + tokens.square().mean()
            names = [n for n, p in model.named_parameters() if p.requires_grad]
            params = [p for _, p in model.named_parameters() if p.requires_grad]
            grads = dict(zip(names, torch.autograd.grad(loss, params), strict=True))
        results.append((logits, tokens, grads))
    (f_logits, f_tokens, f_grads), (p_logits, p_tokens, p_grads) = results
    torch.testing.assert_close(f_logits, p_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f_tokens, p_tokens, atol=1e-5, rtol=1e-5)
    for name, g in p_grads.items():
        torch.testing.assert_close(f_grads[name], g, atol=1e-5, rtol=1e-5, msg=name)


def test_a_model_with_fast_blocks_pickles(scheme, tmp_path):
    """The fast classes are made at run time; pickle still finds them by name."""
    import copy
    import pickle

    model = randomize(tiny(scheme))
    again = pickle.loads(pickle.dumps(model))
    assert type(again.blocks[0]) is type(model.blocks[0])
    assert type(copy.deepcopy(model).blocks[0]) is type(model.blocks[0])


def test_ungrouped_views_and_adds_are_the_copied_ungroup(scheme):
    """``ungroup_view`` is a view of y whose middle axes flatten to token order, and the fast
    block's add through that view sums exactly what ``p + ungroup`` sums."""
    from timesformer.schemes.fast import _add_view

    if scheme == "space":
        pytest.skip("space attention is one step over each frame: it never regroups")
    block = tiny(scheme).blocks[0]
    grid = Grid(4, 4, 4)
    b, d = 2, 3
    p = torch.randn(b, grid.n * grid.t, d)
    for step in (*block.extra_steps, "last"):
        seqs = block.group(step, p, grid)
        y = torch.randn(seqs.shape)
        view = block.ungroup_view(step, y, grid, b)
        assert view.data_ptr() == y.data_ptr()
        assert view.shape[0] == b and view.shape[-1] == d
        copied = block.ungroup(step, y, grid, b)
        # Exact: a view and a copy of the same elements.
        torch.testing.assert_close(view.reshape(copied.shape), copied, rtol=0, atol=0)
        # Exact: one IEEE add of the same two numbers per element, whatever the layout.
        torch.testing.assert_close(_add_view(p, view), p + copied, rtol=0, atol=0)
        # group's inverse; exact: both only move elements
        torch.testing.assert_close(block.ungroup(step, seqs, grid, b), p, rtol=0, atol=0)


@pytest.mark.parametrize(
    "dtypes", [(torch.float32, torch.float32), (torch.float32, torch.bfloat16)]
)
def test_join_tokens_is_the_sum_and_cat(dtypes):
    """JoinTokens against ``cat((cls, p + view))``: values (the residual in bf16 too, as under
    autocast) and gradients, the residual a permuted view as the blocks give it."""
    from timesformer.schemes.fast import JoinTokens

    stream, residual = dtypes
    gen = torch.Generator().manual_seed(0)
    cls_tok = torch.randn(2, 1, 5, generator=gen).to(stream).requires_grad_()
    p = torch.randn(2, 12, 5, generator=gen).to(stream).requires_grad_()
    y = torch.randn(6, 4, 5, generator=gen).to(residual).requires_grad_()  # (B*T, N, D)
    inputs = (cls_tok, p, y)

    def joined(fast):
        view = y.reshape(2, 3, 4, 5).transpose(1, 2)  # (B, N, T, D) in token order
        if fast:
            return JoinTokens.apply(cls_tok, p, view)
        return torch.cat((cls_tok, p + view.reshape(2, 12, 5)), dim=1)

    weights = torch.randn(2, 13, 5, generator=gen)
    fast, slow = joined(True), joined(False)
    # Exact: each element is a copy or one IEEE add of the same two numbers (bf16 widens to
    # fp32 exactly first), and the gradients are views, copies and casts of the same one.
    assert fast.dtype == slow.dtype == stream and torch.equal(fast, slow)
    for a, b in zip(
        torch.autograd.grad((fast * weights).sum(), inputs),
        torch.autograd.grad((slow * weights).sum(), inputs),
        strict=True,
    ):
        assert a.dtype == b.dtype and torch.equal(a, b)
    double = [t.detach().double().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(
        lambda c, q, z: JoinTokens.apply(c, q, z.reshape(2, 3, 4, 5).transpose(1, 2)),
        double,
    )


def test_plain_blocks_calls_every_attention_layer_as_a_module_for_a_while():
    """The fast block runs an extra step's attention without ``__call__`` (its proj folded);
    ``plain_blocks`` runs the plain classes, so forward hooks fire, and puts the fast ones back."""
    from timesformer.schemes.fast import plain_blocks

    model = randomize(tiny("divided")).eval()
    fast_type = type(model.blocks[0])
    calls = []
    model.blocks[0].temporal_attn.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        fast = model(clip())
        assert not calls
        with plain_blocks(model):
            assert type(model.blocks[0]) is SCHEMES["divided"]
            plain = model(clip())
        assert calls and type(model.blocks[0]) is fast_type
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
