"""``model.pos_embed``: which position embeddings a model adds (the paper's Table 4)."""

from __future__ import annotations

import pytest
import torch

import timesformer
from helpers import clip, randomize, tiny
from timesformer.errors import ConfigError

TIME_SCHEMES = ["divided", "joint", "local_global", "axial"]


@pytest.mark.parametrize("attention", TIME_SCHEMES)
def test_without_a_time_embedding_a_model_is_blind_to_frame_order(attention):
    """Temporal attention is permutation-equivariant and the cls token pools over positions, so
    reversed frames give the same logits (to rounding: the sums run in another order), while
    the same weights with a time embedding tell the two apart."""
    blind = randomize(tiny(attention, pos_embed="space"), seed=1)
    assert blind.time_embed is None and "time_embed" not in blind.state_dict()
    x = clip(b=3, seed=4)
    reversed_x = x.flip(2)
    with torch.no_grad():
        torch.testing.assert_close(blind(reversed_x), blind(x), atol=1e-5, rtol=1e-5)
        seeing = randomize(tiny(attention), seed=1)
        assert not torch.allclose(seeing(reversed_x), seeing(x), atol=1e-3)


def test_none_leaves_out_both_embeddings_and_space_time_is_the_default():
    assert tiny().config.pos_embed == "space_time"
    none = tiny(pos_embed="none")
    assert none.pos_embed is None and none.time_embed is None
    assert {"pos_embed", "time_embed"}.isdisjoint(none.state_dict())
    with torch.no_grad():
        assert none(clip()).shape == (2, 5)
    with pytest.raises(ConfigError, match="pos_embed must be one of space_time, space, none"):
        tiny(pos_embed="time")


@pytest.mark.parametrize("pos_embed", ["space", "none"])
def test_saved_and_loaded_with_its_embeddings(tmp_path, pos_embed):
    model = randomize(tiny(pos_embed=pos_embed), seed=2)
    timesformer.save_checkpoint(model, tmp_path / "m.safetensors")
    again = timesformer.load_checkpoint(tmp_path / "m.safetensors").eval()
    assert again.config.pos_embed == pos_embed
    x = clip()
    with torch.no_grad():
        # Exact: the same weights and the same code path, run twice.
        assert torch.equal(again(x), model(x))


def test_a_checkpoint_with_both_embeddings_starts_a_model_without_them(tmp_path):
    """Fine-tuning a space_time checkpoint with ``pos_embed=space`` leaves its time embedding
    out, and says so, rather than refusing the file."""
    model = randomize(tiny(), seed=3)
    timesformer.save_checkpoint(model, tmp_path / "m.safetensors")
    blind = timesformer.load_checkpoint(tmp_path / "m.safetensors", pos_embed="space")
    report = blind.load_report
    assert blind.time_embed is None and report.dropped == ["time_embed"]
    assert "left out by model.pos_embed: time_embed" in report.summary()
    torch.testing.assert_close(blind.pos_embed, model.pos_embed, rtol=0, atol=0)  # exact: a copy


def test_sincos_time_embed_tells_early_from_late_along_one_direction():
    from timesformer.layers import sincos_time_embed

    for frames, dim in ((8, 24), (32, 96), (96, 96)):
        table = sincos_time_embed(frames, dim)
        assert table.shape == (frames, dim)
        assert abs(table.pow(2).mean().item() - 1.0) < 0.1  # unit variance per entry
        slowest_cos = table[:, dim - 1]  # about half a cycle over the clip
        assert (slowest_cos[: int(0.4 * frames)] > 0).all() and (
            slowest_cos[frames // 2 :] < 0
        ).all()
        # Neighbouring frames start closer than frames far apart.
        near = (table[1:] - table[:-1]).norm(dim=1).mean()
        far = (table[frames // 2 :] - table[: frames - frames // 2]).norm(dim=1).mean()
        assert near < far
    assert sincos_time_embed(4, 7)[:, 6].eq(0).all()  # an odd last column stays zero


def test_time_embed_init_sincos_starts_the_table_at_its_std():
    from timesformer.layers import sincos_time_embed

    model = tiny(time_embed_std=0.5, time_embed_init="sincos")
    t, d = model.time_embed.shape[1:]
    torch.testing.assert_close(model.time_embed.detach()[0], 0.5 * sincos_time_embed(t, d))
    assert tiny(time_embed_std=0.5).config.time_embed_init == "normal"
    assert tiny(time_embed_init="sincos").time_embed.detach().eq(0).all()  # std 0: zeros
    with pytest.raises(ConfigError, match="time_embed_init must be one of normal, sincos"):
        tiny(time_embed_init="smooth")
