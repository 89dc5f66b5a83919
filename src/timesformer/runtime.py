"""Running a model: the device, the precision, the copy an inference tool runs.

What training (``timesformer.engine``) and inference (``timesformer.inference``) share sits
here, below both, so that neither imports the other:

- ``pick_device``: a device setting ("auto", "cpu", "cuda:1", ...) to a ``torch.device``.
- ``PRECISIONS``, ``check_precision``, ``autocast_context``, ``use_int8``: the four precisions
  (fp32, bf16, fp16, int8) and how each runs.
- ``inference_copy``, ``inference_model``: the eval-mode copy of a model that a tool converts
  and moves without touching the caller's model.
- ``EvalItems``: the test views of each video of a data set, a failure reported not replaced.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from typing import Any

import torch
from torch.utils.data import Dataset

from timesformer.data import VideoClipDataset, VideoDecodeError
from timesformer.errors import ConfigError
from timesformer.layers.linear import quantize_int8

__all__ = [
    "PRECISIONS",
    "EvalItems",
    "autocast_context",
    "check_precision",
    "inference_copy",
    "inference_model",
    "pick_device",
    "use_int8",
]

# The precisions a model runs in; training takes all but int8 (``engine.trainer`` says so).
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def pick_device(pref: str, local_rank: int = 0, option: str = "run.device") -> torch.device:
    """The torch device of ``pref`` (auto, cpu, cuda, cuda:N, ...); ``option`` names the setting
    in the ``ConfigError`` for an unknown or unavailable device."""
    if pref == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{option} {pref}: no CUDA device is available")
    if pref == "cuda":
        return torch.device(f"cuda:{local_rank}")
    try:
        return torch.device(pref)
    except RuntimeError:
        raise ConfigError(f"{option}: unknown device {pref!r}") from None


def check_precision(precision: str) -> None:
    """A ``ConfigError`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be fp32, bf16, fp16 or int8, got {precision!r}")


def autocast_context(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[Any]:
    """bf16 or fp16 autocast for ``precision``; nothing for fp32 and int8 (see ``use_int8``)."""
    if precision in ("fp32", "int8"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_int8(model: torch.nn.Module, device: torch.device) -> None:
    """Precision "int8": the model's linear products in int8 at inference, on the CPU only
    (``timesformer.layers.quantize_int8``); a ``ConfigError`` elsewhere or without the kernels."""
    if device.type != "cpu":
        raise ConfigError(
            f"precision int8 runs on the CPU only (oneDNN's int8 kernels), not on {device}; "
            "use bf16 or fp16 there"
        )
    try:
        quantize_int8(model)
    except RuntimeError as e:
        raise ConfigError(f"precision int8: {e}") from None


def inference_copy(model: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A copy of ``model`` in eval mode that an inference tool may convert, mark for int8 and
    move without touching the caller's model: new module objects whose parameters and buffers
    share the model's memory, or, with ``dtype``, are converted copies of the floating ones
    (bf16 weights take half the fp32 memory beside the model). Moving the copy to another
    device replaces its own tensors, not the model's."""
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        new = t.detach()
        if dtype is not None and t.is_floating_point():
            new = new.to(dtype)
        # deepcopy takes what the memo holds for an object id instead of copying it
        memo[id(t)] = torch.nn.Parameter(new, False) if isinstance(t, torch.nn.Parameter) else new
    return copy.deepcopy(model, memo).eval()


def inference_model(
    model: torch.nn.Module, device: torch.device, precision: str, *, bf16_weights: bool = False
) -> torch.nn.Module:
    """The model an inference tool runs: ``inference_copy(model)`` (with bf16 weights where
    ``bf16_weights``), marked for int8 where ``precision`` is "int8" (refused off the CPU before
    anything moves), on ``device``. ``model`` itself is left as it was."""
    net = inference_copy(model, torch.bfloat16 if bf16_weights else None)
    if precision == "int8":
        use_int8(net, device)
    return net.to(device)


class EvalItems(Dataset):
    """The test views of each video of a ``VideoClipDataset``, without replacing failures."""

    def __init__(self, dataset: VideoClipDataset, indices: list[int] | None = None) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = self.indices[k]
        item: dict[str, Any] = {
            "index": i,
            "label": self.dataset.labels[i],
            "path": str(self.dataset.paths[i]),
            "video": None,
            "error": None,
        }
        try:
            item["video"] = self.dataset.load_clip(i)
        except VideoDecodeError as err:
            item["error"] = str(err)
        return item
