"""The prepacked CPU linear: the same products as F.linear, taken only at inference, and a cache
that follows every change of the weight."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import timesformer.layers.linear as linear_mod
from helpers import clip, randomize, tiny
from timesformer.layers import Linear, Mlp, quantize_int8
from timesformer.layers.backend import INT8_ROUTES

needs_kernels = pytest.mark.skipif(
    not (linear_mod._HAS_KERNELS and torch.backends.mkldnn.is_available()),
    reason="this torch build has no oneDNN linear kernels",
)
TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2}


def layer(dtype: torch.dtype, bias: bool = True) -> Linear:
    torch.manual_seed(0)
    return Linear(48, 80, bias=bias).to(dtype)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 48), (3, 5, 48)])
def test_prepacked_product_equals_f_linear(dtype, bias, shape):
    lin = layer(dtype, bias)
    x = torch.randn(shape).to(dtype)
    with torch.no_grad():
        got = lin(x)
    assert ("weight", dtype) in linear_mod.packed_weights(lin)  # the packed path was taken
    want = F.linear(x, lin.weight, lin.bias)
    assert got.shape == want.shape == (*shape[:-1], 80)
    torch.testing.assert_close(got, want, rtol=TOL[dtype], atol=TOL[dtype])


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_gelu_equals_linear_then_exact_gelu(dtype):
    mlp = Mlp(48, 96).to(dtype)
    x = torch.randn(2, 9, 48).to(dtype)
    with torch.no_grad():
        got = mlp(x)
        want = mlp.fc2(F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias)))
    torch.testing.assert_close(got, want, rtol=TOL[dtype], atol=TOL[dtype])


def test_training_and_autograd_use_f_linear():
    lin = layer(torch.float32)
    x = torch.randn(4, 48, requires_grad=True)
    lin(x).sum().backward()  # grad enabled: the plain path, differentiable
    assert not linear_mod.packed_weights(lin)
    assert x.grad is not None and lin.weight.grad is not None


def test_switch_turns_the_packed_path_off(backend):
    backend(pack_cpu_linears=False)
    lin = layer(torch.float32)
    with torch.no_grad():
        lin(torch.randn(4, 48))
    assert not linear_mod.packed_weights(lin)


@needs_kernels
def test_a_weight_changed_in_place_or_replaced_is_packed_again():
    lin = layer(torch.float32)
    x = torch.randn(6, 48)
    with torch.no_grad():
        first = lin(x)
        lin.weight.mul_(2.0)  # in place: an optimizer step, load_state_dict
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(lin(x), first)
        # Replaced storage of the same shape and dtype, and the old one freed: even if the new
        # one were given the old address, the cached alias keeps that address taken.
        for _ in range(3):
            lin.weight.data = torch.randn(80, 48)
            torch.testing.assert_close(
                lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5
            )
        lin.to(torch.bfloat16)  # a new dtype
        xb = x.to(torch.bfloat16)
        torch.testing.assert_close(
            lin(xb), F.linear(xb, lin.weight, lin.bias), rtol=2e-2, atol=2e-2
        )


@needs_kernels
def test_whole_model_logits_do_not_depend_on_the_packed_path(scheme, backend):
    model = randomize(tiny(scheme), seed=2)
    x = clip(b=3)
    with torch.no_grad():
        packed = model(x)
        backend(pack_cpu_linears=False)
        plain = model(x)
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)


@needs_kernels
def test_bf16_autocast_computes_in_bf16_like_f_linear():
    lin = layer(torch.float32)
    x = torch.randn(4, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = lin(x)
        want = F.linear(x, lin.weight, lin.bias)
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    assert ("weight", torch.bfloat16) in linear_mod.packed_weights(lin)
    with torch.no_grad():  # outside autocast: fp32 again, from its own packed copy
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)


def test_fp16_autocast_keeps_f_linear():
    lin = layer(torch.float32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        out = lin(torch.randn(4, 48))
    assert out.dtype == torch.float16
    assert not linear_mod.packed_weights(lin)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_a_graph_traced_without_grad_keeps_f_linear():
    model = randomize(tiny(), seed=3)
    x = clip(b=2)
    with torch.no_grad():
        traced = torch.jit.trace(model, (x,), check_trace=False)
        assert "mkldnn" not in str(traced.inlined_graph)  # portable: no oneDNN packed weights
        torch.testing.assert_close(traced(x), model(x), rtol=1e-5, atol=1e-5)


def test_an_exported_graph_keeps_f_linear():
    model = randomize(tiny(), seed=3)
    with torch.no_grad():
        program = torch.export.export(model, (clip(b=2),), strict=False)
    assert "mkldnn" not in str(program.graph)


@needs_kernels
def test_a_model_that_has_run_can_still_be_copied_and_saved(tmp_path):
    model = randomize(tiny(), seed=4)
    x = clip(b=2)
    with torch.no_grad():
        want = model(x)
    assert linear_mod.packed_weights(model.blocks[0].mlp.fc1)
    twin = copy.deepcopy(model)  # the opaque packed tensors are not part of the module
    torch.save(model, tmp_path / "model.pt")
    with torch.no_grad():
        torch.testing.assert_close(twin(x), want)


# ----------------------------------------------------------------------------- int8 products
needs_int8 = pytest.mark.skipif(
    not any(INT8_ROUTES.values()), reason="this torch build has no oneDNN int8 linear kernels"
)


ROUTES = [r for r, ok in INT8_ROUTES.items() if ok]


@pytest.fixture(params=ROUTES or ["none"])
def route(request, backend) -> str:
    """Each int8 test runs on each set of int8 kernels this build has."""
    backend(int8_route=request.param)
    return request.param


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


def _int8_keys(module: torch.nn.Module) -> list:
    return [k for k in linear_mod.packed_weights(module) if k[1] == "int8"]


@needs_int8
@pytest.mark.parametrize("bias", [True, False])
def test_int8_product_is_close_to_f_linear_and_really_quantised(bias, route):
    lin = layer(torch.float32, bias)
    quantize_int8(lin)
    x = torch.randn(3, 7, 48)
    with torch.no_grad():
        got = lin(x)
    want = F.linear(x, lin.weight, lin.bias)
    assert _int8_keys(lin) == [("weight", "int8", route)]
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _cos(got, want) > 0.999
    assert not torch.allclose(got, want, atol=1e-5)  # an int8 result, not the fp32 one
    # int8 has 255 levels: the error stays within a few percent of the output's range.
    assert (got - want).abs().max() < 0.05 * want.abs().max()


@needs_int8
def test_int8_follows_weight_and_bias_changes_and_can_be_undone(route):
    lin = layer(torch.float32)
    quantize_int8(lin)
    x = torch.randn(6, 48)
    with torch.no_grad():
        first = lin(x)
        lin.weight.mul_(2.0)
        assert _cos(lin(x), F.linear(x, lin.weight, lin.bias)) > 0.999
        lin.bias.add_(10.0)  # the packed int8 weight holds the bias: it must be packed again
        torch.testing.assert_close(
            lin(x).mean(), F.linear(x, lin.weight, lin.bias).mean(), rtol=0.01, atol=0.01
        )
        assert not torch.allclose(lin(x), first)
        quantize_int8(lin, enabled=False)  # the packed fp32 product again
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)


@needs_int8
def test_int8_keeps_the_float_path_for_training_autocast_and_bf16(route):
    lin = layer(torch.float32)
    quantize_int8(lin)
    x = torch.randn(4, 48, requires_grad=True)
    out = lin(x)  # grad enabled: exact and differentiable
    torch.testing.assert_close(out, F.linear(x, lin.weight, lin.bias))
    out.sum().backward()
    assert x.grad is not None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert lin(x).dtype == torch.bfloat16
    lin.to(torch.bfloat16)
    with torch.no_grad():
        assert lin(x.detach().bfloat16()).dtype == torch.bfloat16
    assert not _int8_keys(lin)


@needs_int8
def test_int8_gelu_mlp_matches_the_float_mlp(route):
    mlp = Mlp(48, 96)
    quantize_int8(mlp)
    x = torch.randn(2, 9, 48)
    with torch.no_grad():
        got = mlp(x)
    want = mlp.fc2(F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias)))
    assert _cos(got, want) > 0.999


@needs_int8
def test_int8_whole_model_keeps_the_ranking(scheme, route):
    model = randomize(tiny(scheme), seed=2, std=0.05)
    x = clip(b=3)
    with torch.no_grad():
        want = model(x)
        quantize_int8(model)
        got = model(x)
    # Every linear of every block ran in int8, the folded and cls-only products included.
    blocks = [m for m in model.blocks.modules() if linear_mod.packed_weights(m)]
    assert blocks and all(k[2] == route for m in blocks for k in _int8_keys(m))
    assert all(_int8_keys(m) for m in blocks)
    assert _cos(got, want) > 0.999
    assert (got - want).abs().max() < 0.03  # 0.003-0.008 on an AMD Zen 4
    # The top class is kept wherever fp32's lead over the second is clear of the int8 error.
    # Only there: some random clips' top two logits lie closer than int8's rounding (0.0003
    # apart for one space clip), and which way those go depends on the CPU's kernels. Every
    # scheme has a clip with a clear lead (the largest 0.09-0.41).
    top2 = want.topk(2, dim=-1).values
    clear = top2[:, 0] - top2[:, 1] > 0.06  # twice the error allowed above
    assert clear.any()
    assert torch.equal(got.argmax(-1)[clear], want.argmax(-1)[clear])


def test_int8_without_the_kernels_is_refused(backend):
    backend(int8_route=None)
    with pytest.raises(RuntimeError, match="no oneDNN int8"):
        quantize_int8(layer(torch.float32))


@needs_int8
def test_int8_input_quantisation_round_trips_and_non_finite_inputs_take_the_float_path(route):
    x = torch.randn(50, 48) * 3 + 1
    q, scale, zero = linear_mod.quantize_rows(x)
    assert q.dtype == torch.uint8 and 0 <= zero <= 255
    assert ((q.float() - zero) * scale - x).abs().max() <= scale / 2 + 1e-6
    assert linear_mod.quantize_rows(torch.zeros(3, 4))[1:] == (1.0, 0)  # no range: no division by 0
    assert linear_mod.quantize_rows(torch.tensor([1.0, float("inf")])) is None
    lin = layer(torch.float32)
    quantize_int8(lin)
    x = torch.randn(6, 48)
    x[2, 5] = float("nan")
    with torch.no_grad():
        got = lin(x)
    want = F.linear(x, lin.weight, lin.bias)
    finite = [0, 1, 3, 4, 5]
    assert _cos(got[finite], want[finite]) > 0.999
    # The pointwise route quantises the input itself and hands a NaN to F.linear; the dynamic
    # kernel quantises inside and gives finite numbers for it (what the docstring says).
    assert got[2].isnan().all() == (route == "pointwise")
