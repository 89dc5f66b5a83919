"""Training checkpoints: weights plus the full training state in one safetensors file.

Weights keep their plain names, so an epoch checkpoint is also an ordinary model checkpoint for
``load_checkpoint``/``predict``/``eval``; optimizer tensors live under ``optim/``, RNG states
under ``rng/``, and everything scalar (epoch, step, param groups, Python and NumPy RNG states,
the run config) in the header as JSON.  One file, written to a temporary name and renamed: a run
killed at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from timesformer.checkpoints.io import (
    read_safetensors,
    read_safetensors_metadata,
    write_safetensors,
)
from timesformer.checkpoints.save import FORMAT_NAME, FORMAT_VERSION, preprocess_metadata, unwrap
from timesformer.errors import CheckpointError

EPOCH_RE = re.compile(r"^epoch_(\d+)\.safetensors$")


@dataclass
class TrainState:
    """Counters that, with the weights and optimizer, let a run continue exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # Whether epoch ``epoch``'s end-of-epoch work (evaluation, best checkpoint, log record) was
    # done when this state was saved: the checkpoint is written before it, so that a failure
    # there cannot lose the epoch, and a resume does what is missing.
    epoch_finished: bool = True


@dataclass
class RunRecord:
    """What a training checkpoint's header says about its run (read without the tensors)."""

    state: TrainState
    run_config: dict[str, Any]  # the run's TrainConfig as nested sections ({} when absent)
    model_config: dict[str, Any]  # the model's ModelConfig fields
    class_names: list[str] | None


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    scalars = {
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, scalars


def set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    if "numpy" in scalars:
        kind, keys, *rest = scalars["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    if "python" in scalars:
        version, internal, gauss = scalars["python"]
        random.setstate((version, tuple(internal), gauss))


def save_train_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    *,
    class_names: list[str] | None,
    run_config: str,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    model = unwrap(model)
    tensors = dict(model.state_dict())
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in opt["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{pid}/{name}"] = value
            else:
                opt_scalars.setdefault(str(pid), {})[name] = value
    rng_tensors, rng_scalars = rng_state()
    tensors.update(rng_tensors)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict()),
        "train_state": json.dumps(state.__dict__),
        "optim_param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(opt_scalars),
        "rng": json.dumps(rng_scalars),
        "run_config": run_config,
    }
    if class_names is not None:
        meta["class_names"] = json.dumps(list(class_names))
    meta.update(preprocess_metadata(model))
    if scaler is not None and scaler.is_enabled():
        meta["scaler"] = json.dumps(scaler.state_dict())
    write_safetensors(path, tensors, meta)
    return path


def read_train_state(path: Path) -> TrainState | None:
    """The counters of a training checkpoint, from its header alone; None for a model
    checkpoint or a file that is not safetensors."""
    meta = read_safetensors_metadata(path)
    if meta is None or "train_state" not in meta:
        return None
    return _train_state(meta, path)


def read_run_record(path: Path) -> RunRecord:
    """The run a training checkpoint belongs to, from its header alone; ``CheckpointError`` for
    a file that is not a readable training checkpoint."""
    meta = read_safetensors_metadata(path)
    if meta is None or "train_state" not in meta:
        raise CheckpointError(f"{path}: not a training checkpoint (no training state inside)")
    state = _train_state(meta, path)
    try:
        run_config = yaml.safe_load(meta.get("run_config") or "{}") or {}
        model_config = json.loads(meta["config"])
        names = json.loads(meta["class_names"]) if "class_names" in meta else None
    except (KeyError, TypeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise CheckpointError(f"{path}: damaged training state ({err})") from None
    if not isinstance(run_config, dict) or not isinstance(model_config, dict):
        raise CheckpointError(f"{path}: damaged training state (run or model config)")
    return RunRecord(state, run_config, model_config, names)


def _train_state(meta: dict[str, str], path: Path) -> TrainState:
    try:
        return TrainState(**json.loads(meta["train_state"]))
    except (TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: damaged training state ({err})") from None


def load_train_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> TrainState:
    """Restore weights, optimizer, RNG and counters from ``save_train_state``'s file."""
    tensors, meta = read_safetensors(path)
    if "train_state" not in meta:
        raise CheckpointError(f"{path}: not a training checkpoint (no training state inside)")
    state = _train_state(meta, path)
    try:
        groups = json.loads(meta["optim_param_groups"])
        opt_scalars = json.loads(meta["optim_scalars"])
        rng = json.loads(meta["rng"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: damaged training state ({err})") from None
    model = unwrap(model)
    weights = {k: v for k, v in tensors.items() if "/" not in k}
    target = model.state_dict()
    missing = sorted(set(target) - set(weights))
    unexpected = sorted(set(weights) - set(target))
    wrong = sorted(k for k in set(target) & set(weights) if target[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this run's model "
            f"(missing {missing[:4]}, unexpected {unexpected[:4]}, other shapes {wrong[:4]})"
        )
    model.load_state_dict(weights)
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, pid, name = key.split("/", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, entries in opt_scalars.items():
        opt_state.setdefault(int(pid), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: optimizer state does not fit this run ({err})") from None
    if scaler is not None and "scaler" in meta:
        scaler.load_state_dict(json.loads(meta["scaler"]))
    set_rng_state({k: v for k, v in tensors.items() if k.startswith("rng/")}, rng)
    return state


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the run's epoch checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := EPOCH_RE.match(p.name))]
    return sorted(found)


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` epoch checkpoints."""
    for _, path in epoch_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)
