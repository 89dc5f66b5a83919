"""ImageNet initialisation from an image ViT in timm naming (SPEC section 2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import timesformer
from helpers import randomize, tiny


def image_vit_state(num_classes: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random ViT (timm names) shaped like the tiny variant: width 32, 2 blocks, 4x4 patches."""
    m = randomize(tiny("space", num_classes=num_classes), seed=seed)
    return {k: v.clone() for k, v in m.state_dict().items()}


def image_vit_logits(state: dict, img: torch.Tensor, heads: int = 2) -> torch.Tensor:
    """A plain ViT forward written from the state dict: img (B, 3, H, W) -> logits."""
    x = F.conv2d(img, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=4)
    x = x.flatten(2).transpose(1, 2)
    b, n, d = x.shape
    x = torch.cat((state["cls_token"].expand(b, 1, d), x), 1) + state["pos_embed"]

    def ln(v, name):
        return F.layer_norm(v, (d,), state[f"{name}.weight"], state[f"{name}.bias"], 1e-6)

    def lin(v, name):
        return F.linear(v, state[f"{name}.weight"], state[f"{name}.bias"])

    for i in range(2):
        p = f"blocks.{i}."
        q, k, v = (
            lin(ln(x, p + "norm1"), p + "attn.qkv")
            .reshape(b, n + 1, 3, heads, d // heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1) @ v
        x = x + lin(a.transpose(1, 2).reshape(b, n + 1, d), p + "attn.proj")
        x = x + lin(F.gelu(lin(ln(x, p + "norm2"), p + "mlp.fc1")), p + "mlp.fc2")
    return lin(ln(x, "norm")[:, 0], "head")


def test_image_vit_initialises_divided_model_equal_to_image_model(tmp_path):
    state = image_vit_state()
    torch.save(state, tmp_path / "vit.pth")
    model = timesformer.load_checkpoint(tmp_path / "vit.pth", num_frames=4, num_heads=2).eval()
    assert model.config.attention == "divided"
    assert model.load_report.source == "vit"
    for block in model.blocks:
        assert torch.count_nonzero(block.temporal_fc.weight) == 0
        torch.testing.assert_close(block.temporal_attn.qkv.weight, block.attn.qkv.weight)
        torch.testing.assert_close(block.temporal_norm1.weight, block.norm1.weight)
    assert torch.count_nonzero(model.time_embed) == 0

    img = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    static_clip = img.unsqueeze(2).expand(2, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            model(static_clip), image_vit_logits(state, img), atol=1e-5, rtol=1e-5
        )
        # One frame: the divided model computes the image model's function for any image
        # (equal to rounding: two implementations of it).
        torch.testing.assert_close(
            model(img.unsqueeze(2)), image_vit_logits(state, img), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("attention", timesformer.ATTENTION_SCHEMES)
def test_image_vit_initialises_every_scheme(tmp_path, attention):
    torch.save({"model": image_vit_state(num_classes=1000)}, tmp_path / "deit_style.pth")
    model = timesformer.load_checkpoint(
        tmp_path / "deit_style.pth", attention=attention, num_classes=7, num_heads=2, num_frames=4
    )
    report = model.load_report
    assert report.missing == [] and report.unexpected == []
    assert any(r.startswith("head.weight") for r in report.initialised)
    assert model.head.weight.shape == (7, 32)
    steps = type(model.blocks[0]).extra_steps
    assert len(report.copied) == 2 * 6 * len(steps)  # blocks x (norm, qkv, proj) x (w, b) x steps
    out = model.eval()(torch.randn(1, 3, 4, 16, 16))
    assert torch.isfinite(out).all()
