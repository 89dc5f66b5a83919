"""Named variants and the model factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timesformer.config import ModelConfig
from timesformer.errors import ConfigError

if TYPE_CHECKING:  # the variant names are read without torch (``timesformer --help``)
    from timesformer.model import TimeSformer


@dataclass(frozen=True)
class Variant:
    """A named architecture plus the frame sampling rate of its clips: for the paper's three
    models, the rate of the authors' Kinetics configs (github.com/facebookresearch/TimeSformer,
    configs/Kinetics/TimeSformer_divST_8x32_224.yaml, _16x16_448.yaml and _96x4_224.yaml)."""

    config: ModelConfig
    sampling_rate: int
    description: str


_BASE = ModelConfig()
VARIANTS: dict[str, Variant] = {
    "timesformer_base": Variant(_BASE, 32, "TimeSformer, 8 frames x 224 (paper Table 5)"),
    "timesformer_hr": Variant(
        _BASE.replace(num_frames=16, img_size=448), 16, "TimeSformer-HR, 16 frames x 448"
    ),
    "timesformer_large": Variant(_BASE.replace(num_frames=96), 4, "TimeSformer-L, 96 frames x 224"),
    # Small widths for CPU training on the synthetic set, and tiny ones for tests.
    "timesformer_small": Variant(
        _BASE.replace(
            num_frames=8,
            img_size=32,
            patch_size=4,
            embed_dim=96,
            depth=4,
            num_heads=4,
            drop_path_rate=0.0,
        ),
        4,
        "a 4-block, width-96 model for 8 frames of 32x32 (CPU experiments)",
    ),
    "timesformer_tiny": Variant(
        _BASE.replace(
            num_frames=4,
            img_size=16,
            patch_size=4,
            embed_dim=32,
            depth=2,
            num_heads=2,
            drop_path_rate=0.0,
        ),
        2,
        "a 2-block, width-32 model for 4 frames of 16x16 (tests)",
    ),
}

_ARCH_KEYS = {"patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "drop_path_rate"}


def list_models() -> list[str]:
    """Names accepted by ``create_model``."""
    return list(VARIANTS)


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(VARIANTS)}") from None


def model_config(
    name: str,
    *,
    attention: str = "divided",
    num_classes: int = 400,
    num_frames: int | None = None,
    img_size: int | None = None,
    **arch: Any,
) -> ModelConfig:
    """The ``ModelConfig`` that ``create_model`` would build, without building it."""
    config = get_variant(name).config
    changes: dict[str, Any] = {"attention": attention, "num_classes": num_classes, "name": name}
    if num_frames is not None:
        changes["num_frames"] = num_frames
    if img_size is not None:
        changes["img_size"] = img_size
    for key, value in arch.items():
        if key not in ModelConfig.__dataclass_fields__:
            raise ConfigError(
                f"unknown architecture option {key!r}; expected one of "
                f"{', '.join(sorted(_ARCH_KEYS))} or another ModelConfig field"
            )
        changes[key] = value
    return ModelConfig.from_dict({**config.to_dict(), **changes})


def create_model(
    name: str,
    *,
    attention: str = "divided",
    num_classes: int = 400,
    num_frames: int | None = None,
    img_size: int | None = None,
    **arch: Any,
) -> TimeSformer:
    """Build a randomly initialised TimeSformer.

    Args:
        name: a variant from ``list_models()`` (e.g. ``"timesformer_base"``).
        attention: one of ``ATTENTION_SCHEMES``.
        num_classes: size of the classification head.
        num_frames, img_size: the sizes the embeddings are built for (default: the variant's).
        **arch: ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``,
            ``drop_path_rate`` (or any other ``ModelConfig`` field).
    """
    from timesformer.model import TimeSformer

    return TimeSformer(
        model_config(
            name,
            attention=attention,
            num_classes=num_classes,
            num_frames=num_frames,
            img_size=img_size,
            **arch,
        )
    )
