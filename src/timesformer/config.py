"""The frozen model configuration, stored inside every checkpoint the project writes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from timesformer.errors import ConfigError
from timesformer.names import PAPER_SCHEMES

_INTERP_MODES = ("nearest", "bilinear", "bicubic")
#: ``ModelConfig.pos_embed``: which position embeddings the model adds (the paper's Table 4).
POS_EMBEDS = ("space_time", "space", "none")
EXTRA_STEP_INITS = ("zeros", "normal")
#: ``ModelConfig.time_embed_init``: how the time embedding starts (at ``time_embed_std``).
TIME_EMBED_INITS = ("normal", "sincos")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a TimeSformer; defaults are TimeSformer-Base (8 x 224).

    ``num_frames`` and ``img_size`` are the sizes the embeddings are stored at; the model runs at
    any other frame count and resolution by resizing them (``pos_interp``).
    ``pos_embed_std`` (0.02) and ``time_embed_std`` (0: zeros) are the reference's starts; a run
    from scratch learns order much sooner with both near 1, where the embeddings are as large as
    the patch content and positions in space and time are told apart from the first step.
    ``pos_embed`` chooses the embeddings, as in the paper's Table 4: ``space_time`` (both),
    ``space`` (no time embedding: a scheme's temporal attention is then blind to frame order)
    or ``none``.
    ``extra_step_init``: ``zeros`` (the reference) starts each block's extra-step linear
    (``temporal_fc``) at zero, so that a model built on image weights is the image model at step
    0; from scratch that also starves the extra steps of gradient for the first hundreds of
    steps, and ``normal`` starts them like every other linear (truncated normal, std 0.02).
    ``time_embed_init``: ``normal`` draws each frame's time embedding at random; ``sincos``
    starts it as sines and cosines of the frame's place in the clip (``sincos_time_embed``), so
    that neighbouring frames start alike and "early against late" is one direction from the
    first step. Both at ``time_embed_std`` (0: zeros).
    """

    attention: str = "divided"
    num_classes: int = 400
    num_frames: int = 8
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.1
    attn_drop_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    pos_interp: str = "nearest"
    pos_embed_std: float = 0.02
    time_embed_std: float = 0.0
    pos_embed: str = "space_time"
    extra_step_init: str = "zeros"
    time_embed_init: str = "normal"
    name: str = ""

    def __post_init__(self) -> None:
        # The paper's schemes are known without the registry, which loads torch: a config, and
        # the variants built from one, can then be read by ``timesformer --help``.
        if self.attention not in PAPER_SCHEMES:
            from timesformer.schemes import ATTENTION_SCHEMES

            if self.attention not in ATTENTION_SCHEMES:
                raise ConfigError(
                    f"unknown attention scheme {self.attention!r}; choose one of "
                    f"{', '.join(ATTENTION_SCHEMES)}"
                )
        for key in (
            "num_classes",
            "num_frames",
            "img_size",
            "patch_size",
            "in_chans",
            "embed_dim",
            "depth",
            "num_heads",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}"
            )
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.pos_interp not in _INTERP_MODES:
            raise ConfigError(f"pos_interp must be one of {_INTERP_MODES}, got {self.pos_interp!r}")
        if self.pos_embed not in POS_EMBEDS:
            raise ConfigError(
                f"pos_embed must be one of {', '.join(POS_EMBEDS)}, got {self.pos_embed!r}"
            )
        if self.extra_step_init not in EXTRA_STEP_INITS:
            raise ConfigError(
                f"extra_step_init must be one of {', '.join(EXTRA_STEP_INITS)}, "
                f"got {self.extra_step_init!r}"
            )
        if self.time_embed_init not in TIME_EMBED_INITS:
            raise ConfigError(
                f"time_embed_init must be one of {', '.join(TIME_EMBED_INITS)}, "
                f"got {self.time_embed_init!r}"
            )
        if self.mlp_ratio <= 0:
            raise ConfigError(f"mlp_ratio must be positive, got {self.mlp_ratio}")

    @property
    def grid_size(self) -> int:
        """Patches per side of a frame at ``img_size``."""
        return self.img_size // self.patch_size

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; an unknown key or a value of the wrong type is a ``ConfigError``."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown model config key(s): {', '.join(unknown)}")
        clean: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(cls, key)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ConfigError(
                    f"model config key {key!r} expects {type(default).__name__}, got {value!r}"
                )
            clean[key] = value
        return cls(**clean)
