"""Training and evaluation: configs, the loop, DDP, checkpoints with resume, metrics."""

from timesformer.engine.config import TrainConfig, load_config, packaged_config, to_yaml
from timesformer.engine.evaluate import EvalResult, evaluate
from timesformer.engine.trainer import Trainer, TrainingDiverged, final_evaluation

__all__ = [
    "EvalResult",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "final_evaluation",
    "load_config",
    "packaged_config",
    "to_yaml",
]
