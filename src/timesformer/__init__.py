"""timesformer: video transformers with space-time attention (Bertasius et al., ICML 2021).

Quick start::

    import torch, timesformer
    model = timesformer.create_model("timesformer_base", attention="divided", num_classes=400)
    logits = model(torch.randn(1, 3, 8, 224, 224))   # (B, 3, T, H, W) -> (B, 400)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# Each public name and the module that defines it: imported on first use, so that the command
# line (``timesformer --help``) starts without loading torch.
_EXPORTS = {
    "ATTENTION_SCHEMES": "timesformer.schemes",
    "CheckpointError": "timesformer.errors",
    "ConfigError": "timesformer.errors",
    "ModelConfig": "timesformer.config",
    "TimeSformer": "timesformer.model",
    "TimesformerError": "timesformer.errors",
    "count_macs": "timesformer.flops",
    "count_params": "timesformer.flops",
    "create_model": "timesformer.variants",
    "export_hf": "timesformer.checkpoints",
    "list_models": "timesformer.variants",
    "load_checkpoint": "timesformer.checkpoints",
    "save_checkpoint": "timesformer.checkpoints",
}

__all__ = [
    "ATTENTION_SCHEMES",
    "CheckpointError",
    "ConfigError",
    "ModelConfig",
    "TimeSformer",
    "TimesformerError",
    "__version__",
    "count_macs",
    "count_params",
    "create_model",
    "export_hf",
    "list_models",
    "load_checkpoint",
    "save_checkpoint",
]

if TYPE_CHECKING:
    from timesformer.checkpoints import export_hf, load_checkpoint, save_checkpoint
    from timesformer.config import ModelConfig
    from timesformer.errors import CheckpointError, ConfigError, TimesformerError
    from timesformer.flops import count_macs, count_params
    from timesformer.model import TimeSformer
    from timesformer.schemes import ATTENTION_SCHEMES
    from timesformer.variants import create_model, list_models


def __getattr__(name: str) -> Any:
    # Not cached: ``ATTENTION_SCHEMES`` also lists schemes registered after the first access.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if not name.startswith("__"):
        # A sub-package used as an attribute (``timesformer.data``), as when all were imported.
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
