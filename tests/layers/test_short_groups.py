"""The Triton kernel for short groups (``timesformer.layers.short_groups``).

Its numbers are checked in Triton's interpreter, which runs the kernels on the CPU: that needs
``triton`` installed (``.venv/bin/pip install triton``; not a dependency, the CPU wheel of
torch does not bring it), else those tests skip. The interpreter is chosen when the kernels are
defined, so they run in a child process with ``TRITON_INTERPRET=1``. On a GPU the same kernels
are checked compiled by ``tests/gpu/test_cuda.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import timesformer.layers.attention as attention
from timesformer.layers import short_groups
from timesformer.layers.attention import Attention
from timesformer.layers.backend import set_backend


def test_short_group_attention_refuses_shapes_it_cannot_take():
    for shape in [(2, 17, 3, 2, 16), (2, 8, 3, 2, 24), (2, 8, 2, 2, 16), (2, 8, 48)]:
        assert not short_groups.applies(torch.zeros(shape))
        with pytest.raises(ValueError, match=r"short_group_attention takes \(G, L <= 16"):
            short_groups.short_group_attention(torch.zeros(shape), 0.25)


def test_the_switch_changes_nothing_on_the_cpu(monkeypatch, backend):
    # The kernel is for CUDA devices only: on the CPU the switch changes nothing, so both runs
    # take the very same path, same shapes and settings.
    torch.manual_seed(0)
    layer = Attention(32, 2).train()
    x = torch.randn(5, 8, 32, requires_grad=True)
    outs = []
    for on in (False, True):
        backend(short_group_kernel=on)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        (grad,) = torch.autograd.grad(out.float().square().sum(), x)
        outs.append((out, grad))
    # Exact: one code path run twice on the same input (the switch is not read on the CPU).
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])


def test_a_kernel_that_cannot_run_falls_back_with_a_warning(monkeypatch, backend):
    """On by default, the kernel must not stop a model on a card where it cannot be built: the
    layer warns once and takes its own path (here the CPU stands in for such a card)."""
    backend(short_group_kernel=True)
    monkeypatch.setattr(attention, "_kernel_device", lambda qkv: True)
    monkeypatch.setattr(short_groups, "applies", lambda qkv: True)
    monkeypatch.setattr(
        short_groups, "unavailable", lambda *key: "CompilationError: out of resources"
    )

    def not_to_be_called(*args):
        raise AssertionError("the kernel ran although its probe failed")

    monkeypatch.setattr(short_groups, "short_group_attention", not_to_be_called)
    torch.manual_seed(0)
    layer = Attention(32, 2).train().to(torch.bfloat16)
    x = torch.randn(5, 8, 32, dtype=torch.bfloat16)
    with pytest.warns(RuntimeWarning, match=r"kernel does not run here \(CompilationError: out"):
        got = layer(x)
    backend(short_group_kernel=False)
    assert torch.equal(got, layer(x))  # exact: the fallback is the path without the kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_layer_hands_the_kernel_half_precision_only(dtype, monkeypatch, backend):
    """fp32 keeps the exact path: on a GPU the kernel's 16-token products came out at about TF32
    precision (the backend's ``short_group_dtypes``). Half precision, under autocast too,
    takes the kernel (here a stand-in, on the CPU standing in for a CUDA device)."""
    backend(short_group_kernel=True)
    monkeypatch.setattr(attention, "_kernel_device", lambda qkv: True)
    monkeypatch.setattr(short_groups, "applies", lambda qkv: True)
    monkeypatch.setattr(short_groups, "unavailable", lambda *key: None)
    seen = []

    def stand_in(qkv, scale):
        seen.append(qkv.dtype)
        return qkv[:, :, 2].clone()  # v: the shape the kernel returns

    monkeypatch.setattr(short_groups, "short_group_attention", stand_in)
    torch.manual_seed(0)
    layer = Attention(32, 2)
    x = torch.randn(5, 16, 32)
    layer.to(dtype)(x.to(dtype))
    assert seen == ([] if dtype == torch.float32 else [dtype])
    if dtype == torch.bfloat16:  # an fp32 layer under bf16 autocast makes bf16 q, k and v
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer.float()(x)
        assert seen == [torch.bfloat16]


@pytest.mark.parametrize("why", [None, "CompilationError: out of resources"])
def test_compiled_graphs_ask_the_probe_and_fall_back_too(why, monkeypatch, backend):
    """Under torch.compile the probe runs while the graph is traced (its answer a constant of
    the graph), so a card that cannot build the kernel falls back there as in eager mode."""
    backend(short_group_kernel=True)
    backend(short_group_kernel_compiled=True)
    monkeypatch.setattr(attention, "_kernel_device", lambda qkv: True)
    monkeypatch.setattr(short_groups, "applies", lambda qkv: True)
    asked = []

    def probe(device, dtype, head_dim):
        asked.append((device, dtype, head_dim))
        return why

    def stand_in(qkv, scale):  # v doubled: the shape the kernel returns, and a visible mark
        return qkv[:, :, 2] * 2

    monkeypatch.setattr(short_groups, "unavailable", probe)
    monkeypatch.setattr(short_groups, "short_group_attention", stand_in)
    torch.manual_seed(0)
    layer = Attention(32, 2).to(torch.bfloat16)
    x = torch.randn(5, 8, 32, dtype=torch.bfloat16)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = compiled(x)
        traced = len(asked)  # dynamo may analyse the frame more than once while tracing
        again = compiled(x)  # the same graph, no new trace: the probe is not asked again
    assert traced and set(asked) == {(torch.device("cpu"), torch.bfloat16, 16)}
    assert len(asked) == traced
    assert torch.equal(got, again)  # exact: the same compiled graph run twice
    warned = [w for w in caught if "kernel does not run here" in str(w.message)]
    assert bool(warned) == bool(why)
    # The graph gives eager's output with the stand-in where the probe passed, without it
    # where it failed (and the two differ). To bf16 rounding, not bit for bit: the graph and
    # eager mode are different paths (eager splits the heads with SplitHeads, the graph with
    # a permute and a product on strided views).
    monkeypatch.setattr(short_groups, "unavailable", lambda *key: None)
    kernel = layer(x)
    backend(short_group_kernel=False)
    plain = layer(x)
    assert not torch.allclose(kernel, plain, rtol=0.1, atol=0.1)
    torch.testing.assert_close(got, kernel if why is None else plain, rtol=1.6e-2, atol=1e-2)


def test_the_probe_reports_a_kernel_that_cannot_run(monkeypatch):
    """Outside the interpreter Triton cannot run on CPU tensors: the probe says so in one line,
    and keeps the answer rather than trying again."""
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("the interpreter runs the kernels on CPU tensors")
    monkeypatch.setattr(short_groups, "_PROBED", {})
    key = (torch.device("cpu"), torch.float32, 16)
    why = short_groups.unavailable(*key)
    assert why and "\n" not in why
    monkeypatch.setattr(short_groups, "_attention", None)  # a second probe would fail on this
    assert short_groups.unavailable(*key) == why


def test_forward_and_backward_trace_as_two_operators():
    """What ``torch.compile`` sees: the kernels as ``timesformer`` operators, traced with fake
    tensors (no kernel runs, so no GPU is needed)."""
    pytest.importorskip("triton")
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    def step(qkv):
        out = short_groups.short_group_attention(qkv, 0.125)
        return out, torch.autograd.grad(out.float().square().sum(), qkv)[0]

    with FakeTensorMode():
        qkv = torch.empty(4, 8, 3, 2, 64, dtype=torch.bfloat16, requires_grad=True)
        graph = make_fx(step, tracing_mode="fake")(qkv)
    ops = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert "timesformer.short_group_attention.default" in ops
    assert "timesformer.short_group_attention_backward.default" in ops


def _interpreted(*args: str) -> dict:
    """Run this file's ``__main__`` in a child process under the interpreter."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, __file__, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("length", [1, 5, 8, 16])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kernel_gives_the_layers_output_and_gradients_in_the_interpreter(dtype, length):
    pytest.importorskip("triton")
    got = _interpreted(dtype, str(length))
    tol = {"float32": 1e-5, "bfloat16": 2e-2}[dtype]
    # Differences to the layer's plain path, in fp32, relative to the largest value compared.
    for name, diff in got.items():
        assert diff < tol, (name, diff)


@pytest.mark.parametrize("scheme", ["divided", "axial"])
def test_a_models_training_step_with_the_kernel_in_the_interpreter(scheme):
    pytest.importorskip("triton")
    got = _interpreted("model", scheme)
    # The tiny model's temporal groups take the kernel (axial's rows and columns too), except
    # in the last block's cls-only step: 2 calls for divided, 5 for axial.
    assert got["calls"] == {"divided": 2, "axial": 5}[scheme]
    # Each group length the kernel met was probed once, and the kernels ran for it.
    assert got["probed"] and set(got["probed"]) == {"None"}
    assert got["loss_diff"] < 5e-3
    assert got["min_grad_cosine"] > 0.999


def test_a_compiled_graph_runs_the_kernel_in_the_interpreter():
    pytest.importorskip("triton")
    got = _interpreted("compiled")
    # The operators are opaque to torch.compile: the graph launches the kernels themselves.
    assert got["launches"] == {"forward": 1, "backward": 1}
    assert got["output"] < 1e-5
    assert got["grad"] < 1e-5


def test_a_compiled_layer_probes_the_kernel_while_traced_in_the_interpreter():
    pytest.importorskip("triton")
    got = _interpreted("compiled_layer")
    # The probe ran for the layer's one key (at lengths 8 and 16: 2 launches of the forward),
    # then the compiled graph launched the kernel for its 5 groups.
    assert got["probed"] == {"(device(type='cpu'), torch.bfloat16, 16)": None}
    assert got["launches"] == len(short_groups.PROBE_LENGTHS) + 1
    assert got["output"] < 2e-2


def _count_launches() -> dict[str, int]:
    """Both kernels replaced by wrappers that count their launches (``kernel[grid]``), by
    pass: the returned dict fills as they run."""
    launches: dict[str, int] = {}

    class Counted:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            launches[self.name] = launches.get(self.name, 0) + 1
            return self.kernel[grid]

    short_groups._forward_kernel = Counted("forward", short_groups._forward_kernel)
    short_groups._backward_kernel = Counted("backward", short_groups._backward_kernel)
    return launches


def _compiled() -> dict:
    """A function calling the kernel, compiled as one graph, against the plain softmax
    attention in eager mode: output and gradient differences, and the kernels' launches."""
    launches = _count_launches()

    def kernel(qkv):
        return short_groups.short_group_attention(qkv * 1.5, 0.125).transpose(1, 2)

    def plain(qkv):
        q, k, v = (qkv * 1.5).permute(2, 0, 3, 1, 4).unbind(0)
        return (q * 0.125 @ k.transpose(-2, -1)).softmax(-1) @ v

    torch.manual_seed(0)
    qkv = torch.randn(6, 8, 3, 2, 16, requires_grad=True)
    upstream = torch.randn(6, 2, 8, 16)
    results = []
    for fn in (plain, torch.compile(kernel, fullgraph=True)):
        out = fn(qkv)
        results.append((out, torch.autograd.grad(out, qkv, upstream)[0]))
    (want, want_grad), (got, grad) = results
    return {
        "launches": launches,
        "output": (got - want).abs().max().item(),
        "grad": (grad - want_grad).abs().max().item(),
    }


def _compiled_layer() -> dict:
    """A bf16 attention layer compiled as one graph, its device check replaced by one that
    takes any: the real probe runs while the graph is traced, then the graph launches the
    kernels. Returns the probe's answers, the launches and the output's difference from the
    layer without the kernel."""
    launches = _count_launches()
    attention._kernel_device = lambda qkv: True
    torch.manual_seed(0)
    layer = Attention(32, 2).to(torch.bfloat16)
    x = torch.randn(5, 8, 32, dtype=torch.bfloat16)
    got = torch.compile(layer, fullgraph=True)(x)
    set_backend(short_group_kernel=False)
    want = layer(x)
    return {
        "probed": {str(key): why for key, why in short_groups._PROBED.items()},
        "launches": launches.get("forward", 0),
        "output": (got.float() - want.float()).abs().max().item(),
    }


def _model_step(scheme: str) -> dict:
    """A bf16 training step of the tiny model with the kernel off and on. The layer takes the
    kernel on CUDA devices only, so its device check is replaced by one that takes any."""
    import torch.nn.functional as F

    from helpers import bf16_step, clip, randomize, tiny

    attention._kernel_device = lambda qkv: True
    calls = []
    kernel = short_groups.short_group_attention
    short_groups.short_group_attention = lambda *a: calls.append(1) or kernel(*a)
    model = randomize(tiny(scheme), seed=9).train()
    x, label = clip(b=3), torch.tensor([1, 2, 0])
    steps = []
    for on in (False, True):
        set_backend(short_group_kernel=on)
        steps.append(bf16_step(model, model, x, label))
    (loss_off, want), (loss_on, got) = steps
    cosines = [
        F.cosine_similarity(got[n].flatten().float(), want[n].flatten().float(), dim=0).item()
        for n in want
    ]
    return {
        "calls": len(calls),
        "probed": sorted(str(why) for why in short_groups._PROBED.values()),
        "loss_diff": abs(loss_on - loss_off),
        "min_grad_cosine": min(cosines),
    }


def _compare(dtype: torch.dtype, length: int) -> dict[str, float]:
    """The layer's plain path against the kernel on the same fused-qkv output: the attention
    output and the gradients of the layer's input and qkv weight, for 6 groups of 4 heads of
    64 with q, k, v read through a strided view (rows padded, as a sliced tensor would be)."""
    torch.manual_seed(length)
    layer = Attention(256, 4).to(dtype).train()
    layer.fused = False
    padded = torch.randn(6, length, 256 + 8, dtype=dtype)
    x = padded[..., :256].detach().requires_grad_(True)
    assert not x.is_contiguous()
    g, l, d = x.shape
    want = layer(x, project=False)
    qkv = layer.qkv(x).reshape(g, l, 3, 4, 64)
    got = short_groups.short_group_attention(qkv, layer.scale).reshape(g, l, d)
    upstream = torch.randn(g, l, d, dtype=dtype)
    grads = []
    for out in (want, got):
        grads.append(torch.autograd.grad(out, (x, layer.qkv.weight), upstream))

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()

    return {
        "output": rel(got, want),
        "grad_input": rel(grads[1][0], grads[0][0]),
        "grad_qkv_weight": rel(grads[1][1], grads[0][1]),
    }


if __name__ == "__main__":
    if sys.argv[1] == "model":
        print(json.dumps(_model_step(sys.argv[2])))
    elif sys.argv[1] == "compiled":
        print(json.dumps(_compiled()))
    elif sys.argv[1] == "compiled_layer":
        print(json.dumps(_compiled_layer()))
    else:
        print(json.dumps(_compare(getattr(torch, sys.argv[1]), int(sys.argv[2]))))
