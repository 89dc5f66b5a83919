"""Arguments and checks shared by the inference commands (predict, extract)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_clip_arguments(p: argparse.ArgumentParser) -> None:
    """--clips, --crops, --sampling-rate: the test protocol, by default from the checkpoint."""
    c = p.add_argument_group("clip settings (default: from the checkpoint)")
    c.add_argument("--clips", type=int, default=None, help="temporal clips per video (K)")
    c.add_argument("--crops", type=int, choices=(1, 3), default=None, help="spatial crops")
    c.add_argument("--sampling-rate", type=int, default=None, help="frame step at target fps")


def add_running_arguments(p: argparse.ArgumentParser, device_help: str) -> argparse._ArgumentGroup:
    """--device, --precision, --workers, --no-progress; returns the group for more options."""
    r = p.add_argument_group("running")
    r.add_argument("--device", default=None, help=device_help)
    r.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "int8"),
        default="fp32",
        help="fp32 (default); bf16: bf16 weights (predict) or autocast (extract), fastest "
        "exact-enough choice on a CPU with bf16 instructions; fp16: autocast, for GPUs; int8: "
        "int8 linear products, CPU only, faster still at a small accuracy cost (see the README)",
    )
    r.add_argument("--workers", type=int, default=0, help="decoding processes (0: in this one)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return r


def check_clip_options(args: argparse.Namespace) -> None:
    """--clips, --sampling-rate, --stride and --workers, before any file is read."""
    from timesformer.errors import ConfigError

    for option, value in (("--clips", args.clips), ("--sampling-rate", args.sampling_rate)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")
    if args.stride is not None and not args.stride > 0:
        raise ConfigError(f"--stride must be a positive number of seconds, got {args.stride}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {args.workers}")


def clip_from_args(model: Any, args: argparse.Namespace):
    """The model's test clip settings with the command line's overrides."""
    from timesformer.inference.predictor import default_clip_config

    return default_clip_config(
        model,
        num_clips=args.clips,
        num_crops=args.crops,
        sampling_rate=args.sampling_rate,
        # A sampling rate asks for windows of frames, also from a segment-sampling (SSv2) model.
        sampling="window" if args.sampling_rate is not None else None,
    )


def check_output_file(path: str | None, option: str) -> None:
    """An output file's path must not be a folder nor lie under a file."""
    from timesformer.errors import ConfigError

    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{option} {path}: {blocker} is a file, not a folder")
