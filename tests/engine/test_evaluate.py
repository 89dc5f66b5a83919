"""``evaluate`` in int8: the fp32 predictions, and the model as it was afterwards; the copy
that inference tools run (``inference_copy``)."""

from __future__ import annotations

import pytest
import torch

import timesformer.layers.linear as linear_mod
from helpers import HAS_INT8, randomize, tiny
from timesformer.data import ClipConfig, VideoClipDataset
from timesformer.engine.evaluate import evaluate, inference_copy
from timesformer.errors import ConfigError


@pytest.mark.skipif(not HAS_INT8, reason="no oneDNN int8 kernels in this build")
def test_int8_evaluation_predicts_what_fp32_does_and_leaves_the_model_float(synth_root):
    clip = ClipConfig(num_frames=4, sampling_rate=2, crop_size=16)
    data = VideoClipDataset.from_folder(synth_root / "val", mode="test", config=clip)
    model = randomize(tiny(num_classes=data.num_classes, num_frames=4, img_size=16), seed=5)
    fp32 = evaluate(model, data, progress=False)
    int8 = evaluate(model, data, precision="int8", progress=False)
    assert int8.num_videos == fp32.num_videos == len(data)
    # int8's rounding, not fp32's: 0.043 at most on an AMD Zen 4; other CPUs' int8 kernels
    # may round otherwise.
    torch.testing.assert_close(int8.scores, fp32.scores, rtol=0.05, atol=0.1)
    assert not torch.equal(int8.scores, fp32.scores)  # the products did run in int8
    # Safe to compare exactly: every video's top two scores lie at least 2.5 apart in fp32,
    # far more than twice what int8 may move a score.
    assert torch.equal(int8.scores.argmax(-1), fp32.scores.argmax(-1))
    assert not getattr(model.blocks[0].mlp.fc1, linear_mod.INT8_ATTR)  # float again
    with pytest.raises(ConfigError, match="CPU only"):
        evaluate(model, data, precision="int8", device=torch.device("cuda"), progress=False)


def test_inference_copy_shares_or_converts_and_never_touches_the_model():
    model = randomize(tiny(), seed=3).train()
    x = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        expected = model.eval()(x)
    model.train()
    shared = inference_copy(model)
    assert not shared.training and model.training
    ours = dict(shared.named_parameters())
    for name, p in model.named_parameters():
        assert ours[name] is not p and ours[name].data_ptr() == p.data_ptr()
    with torch.no_grad():
        # Exact: the same weights through the same eval path, same input and settings.
        assert torch.equal(shared(x), expected)
    shared.to(torch.float64)  # moving the copy replaces its own tensors only
    assert all(p.dtype == torch.float32 for p in model.parameters())
    bf16 = inference_copy(model, torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(bf16(x.bfloat16()).float(), expected, rtol=0.05, atol=0.05)
