"""timesformer: video transformers with space-time attention (Bertasius et al., ICML 2021).

Quick start::

    import torch, timesformer
    model = timesformer.create_model("timesformer_base", attention="divided", num_classes=400)
    logits = model(torch.randn(1, 3, 8, 224, 224))   # (B, 3, T, H, W) -> (B, 400)
"""

from timesformer.checkpoints import export_hf, load_checkpoint, save_checkpoint
from timesformer.config import ModelConfig
from timesformer.errors import CheckpointError, ConfigError, TimesformerError
from timesformer.flops import count_macs, count_params
from timesformer.model import TimeSformer
from timesformer.schemes import ATTENTION_SCHEMES
from timesformer.variants import create_model, list_models

__version__ = "0.2.0"

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
