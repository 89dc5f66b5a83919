"""The model, training, inference and export on a CUDA device, checked against the CPU.

Skipped where no CUDA device is present (CI has none); run on a GPU machine with
``.venv/bin/python -m pytest tests/gpu``. ``TIMESFORMER_TEST_DEVICE=cpu`` runs the same checks
on the CPU, to try the tests themselves on a machine without a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import timesformer
from helpers import bf16_step, clip, randomize, tiny, tiny_overrides
from timesformer.checkpoints import load_checkpoint
from timesformer.engine import Trainer, load_config
from timesformer.engine.state import epoch_checkpoints
from timesformer.inference.predictor import Predictor
from timesformer.layers.attention import set_fused_attention

CUDA = torch.device(os.environ.get("TIMESFORMER_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(
    CUDA.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
)


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 on the GPU without TF32 (cuDNN's convolutions use it by default), so that fp32
    results can be held to the CPU's within rounding."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        yield
        torch.backends.cuda.matmul.allow_tf32 = old


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0).item()


def test_every_scheme_gives_the_cpu_logits_on_cuda(scheme):
    model = randomize(tiny(scheme), seed=3)
    x = clip(b=3)
    with torch.no_grad():
        want = model(x)
        got = model.to(CUDA)(x.to(CUDA)).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_every_scheme_keeps_its_logits_in_bf16_on_cuda(scheme):
    model = randomize(tiny(scheme), seed=4).to(CUDA)
    x = clip(b=4).to(CUDA)
    with torch.no_grad():
        fp32 = model(x)
        auto = model.eval()
        with torch.autocast(CUDA.type, dtype=torch.bfloat16):
            mixed = auto(x)
        weights16 = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert cosine(mixed, fp32) > 0.999
    assert cosine(weights16, fp32) > 0.999


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fused_and_plain_attention_agree_on_cuda_forward_and_backward(
    scheme, dtype, monkeypatch, backend
):
    # SDPA for every group, the short ones too (the library takes the plain path for those).
    backend(cuda_plain_max_len=0)
    model = randomize(tiny(scheme), seed=5).to(CUDA, dtype).train()
    x = clip(b=2).to(CUDA, dtype)
    grads = []
    outs = []
    for fused in (True, False):
        set_fused_attention(model, fused)
        model.zero_grad(set_to_none=True)
        out = model(x)
        out.float().square().sum().backward()
        outs.append(out.float())
        grads.append(torch.cat([p.grad.flatten().float() for p in model.parameters()]))
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(outs[0], outs[1], rtol=tol, atol=tol)
    assert cosine(grads[0], grads[1]) > (0.99999 if dtype == torch.float32 else 0.999)


def test_base_model_matches_the_transformers_model_on_cuda(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = timesformer.create_model("timesformer_base", num_classes=10, num_frames=4)
    randomize(ours, seed=6, std=0.02)
    timesformer.export_hf(ours, tmp_path / "hf")
    peer = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path / "hf")
    ours, peer = ours.eval().to(CUDA), peer.eval().to(CUDA)
    x = clip(b=2, t=4, h=224, w=224).to(CUDA)
    with torch.no_grad():
        a = ours(x)
        b = peer(pixel_values=x.transpose(1, 2)).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda_learns_and_saves_weights_the_cpu_reads(synth_root, tmp_path, precision):
    if precision == "fp16" and CUDA.type != "cuda":
        pytest.skip("fp16 training needs CUDA")
    overrides = tiny_overrides(
        synth_root,
        tmp_path / "run",
        **{"run.device": str(CUDA), "run.precision": precision, "optim.epochs": 20},
    )
    trainer = Trainer(load_config(overrides=overrides))
    assert trainer.device.type == CUDA.type
    trainer.fit()
    history = trainer.state.history
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.2
    # The last checkpoint is a plain file: on the CPU it gives the trained model's logits.
    _, last = epoch_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    loaded = load_checkpoint(last).eval()
    x = clip(b=2, t=4)
    with torch.no_grad():
        on_cpu = loaded(x)
        on_gpu = trainer.model.eval()(x.to(CUDA)).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_predictor_on_cuda_ranks_as_on_the_cpu(checkpoint, videos, precision):
    cpu = Predictor.from_checkpoint(checkpoint, device="cpu")
    gpu = Predictor.from_checkpoint(checkpoint, device=CUDA, precision=precision)
    for want, got in zip(
        cpu.predict_many(videos, progress=False),
        gpu.predict_many(videos, progress=False),
        strict=True,
    ):
        assert got.ok and want.ok
        tol = 1e-4 if precision == "fp32" else 2e-2
        torch.testing.assert_close(got.probs, want.probs, rtol=tol, atol=tol)


def test_compiled_model_on_cuda_gives_the_eager_logits():
    model = randomize(tiny("divided"), seed=7).to(CUDA)
    x = clip(b=2).to(CUDA)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_compiled_training_step_on_cuda_gives_the_eager_gradients():
    """A bf16 training step under torch.compile (the trainer's ``run.compile``): the loss and
    every gradient stay those of eager."""
    model = randomize(tiny("divided"), seed=8).to(CUDA).train()
    x = clip(b=2).to(CUDA)
    label = torch.tensor([1, 2], device=CUDA)
    torch._dynamo.reset()
    loss_c, got = bf16_step(model, torch.compile(model), x, label)
    loss_e, want = bf16_step(model, model, x, label)
    assert abs(loss_c - loss_e) < 1e-2
    assert got.keys() == want.keys()
    for name in want:
        assert cosine(got[name], want[name]) > 0.99, name


@pytest.mark.parametrize("scheme_name", ["divided", "axial"])
def test_short_group_kernel_gives_the_library_paths_training_step_on_cuda(
    scheme_name, monkeypatch, backend
):
    """The Triton kernel for short groups (``layers/short_groups.py``): a bf16 training step
    with it, eager and compiled, against the library's path without it. The tiny model's
    temporal groups (4 tokens; axial's rows and columns too) take the kernel, its spatial groups
    (17 tokens) do not. Compiled graphs take it unless told not to."""
    if CUDA.type != "cuda":
        pytest.skip("the kernel runs on CUDA devices only")
    pytest.importorskip("triton")
    from timesformer.layers import short_groups

    calls = []
    kernel = short_groups.short_group_attention
    monkeypatch.setattr(
        short_groups, "short_group_attention", lambda *a: calls.append(1) or kernel(*a)
    )
    model = randomize(tiny(scheme_name), seed=9).to(CUDA).train()
    x = clip(b=3).to(CUDA)
    label = torch.tensor([1, 2, 0], device=CUDA)

    def step(on: bool, compiled: bool = False, in_graphs: bool = True):
        backend(short_group_kernel=on)
        backend(short_group_kernel_compiled=in_graphs)
        torch._dynamo.reset()
        return bf16_step(model, torch.compile(model) if compiled else model, x, label)

    loss_off, want = step(False)
    assert not calls
    step(True, compiled=True, in_graphs=False)
    assert not calls, "a compiled graph took the kernel without short_group_kernel_compiled"
    loss_on, got = step(True)
    assert calls, "the kernel did not run"
    loss_compiled, got_compiled = step(True, compiled=True)
    for loss, grads in ((loss_on, got), (loss_compiled, got_compiled)):
        assert abs(loss - loss_off) < 1e-2
        for name in want:
            assert cosine(grads[name], want[name]) > 0.99, name
