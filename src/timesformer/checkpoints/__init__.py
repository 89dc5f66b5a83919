"""Checkpoints: the project's format, the reference ``.pyth``, Hugging Face, and image ViTs."""

from timesformer.checkpoints.hf import export_hf
from timesformer.checkpoints.load import LoadReport, load_checkpoint, read_checkpoint
from timesformer.checkpoints.save import save_checkpoint, unwrap

__all__ = [
    "LoadReport",
    "export_hf",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "unwrap",
]
