"""``timesformer eval``: score a checkpoint with the multi-view test protocol."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timesformer.cli.train import add_config_arguments, resolve_config_files

if TYPE_CHECKING:
    from timesformer.model import TimeSformer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint (K clips x 3 crops per video)",
        description=(
            "Evaluate --checkpoint on the val split of the data in the config (by default the "
            "config.yaml of the run folder the checkpoint belongs to; for a checkpoint outside a "
            "run folder, its own clip settings and the data named by data.root=DIR and, where "
            "needed, data.format/data.val/data.classes), with the reference test "
            "protocol: data.test_clips temporal clips x data.test_crops spatial crops per video, "
            "views combined by run.eval_reduce (sum of logits, or mean softmax). Prints clip- "
            "and video-level top-1/top-5 and per-class accuracy and writes a JSON result file. "
            "Videos that fail to decode are listed, not fatal."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint load_checkpoint reads")
    add_config_arguments(
        p,
        "YAML config or shipped config name (default: the run's config.yaml, else the "
        "checkpoint's own clip settings)",
    )
    p.add_argument("--out", default=None, help="result JSON (default: beside the checkpoint)")
    p.set_defaults(func=run)


def checkpoint_sections(model: TimeSformer, checkpoint: Path) -> dict[str, Any]:
    """The config a checkpoint implies when no config file describes it: the clip settings it
    was trained with (stored by ``timesformer train``; else the reference protocol at its frame
    count and size), and its architecture, which the checkpoint itself builds."""
    from timesformer.engine.builders import data_fields
    from timesformer.inference.predictor import default_clip_config

    data = data_fields(default_clip_config(model))
    # model.init marks the architecture as the checkpoint's: the config's check of the model
    # section (patch size against crop size) is then left to the checkpoint, which built it.
    return {"model": {"init": str(checkpoint)}, "data": data}


def find_run_config(checkpoint: Path) -> Path | None:
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def run(args: argparse.Namespace) -> int:
    from timesformer.checkpoints import load_checkpoint
    from timesformer.checkpoints.io import write_text
    from timesformer.cli.common import OutputError, check_output, writing
    from timesformer.data import DatasetError
    from timesformer.engine.builders import build_dataset
    from timesformer.engine.config import load_config, validate
    from timesformer.engine.distributed import init_distributed, shutdown
    from timesformer.engine.evaluate import evaluate
    from timesformer.errors import ConfigError

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    ckpt = Path(args.checkpoint)
    # Beside a local checkpoint; a Hub id or zoo name has no folder here: the current one.
    beside = ckpt if ckpt.exists() else Path(ckpt.name.replace(":", "_"))
    out = Path(args.out) if args.out else beside.with_name(f"eval_{beside.stem}.json")
    # Before the evaluation, not after it; the default beside the checkpoint is named as a path.
    option = "--out" if args.out else None
    try:
        check_output(out, option)
    except OutputError as err:
        if args.out:
            raise
        raise OutputError(f"{err}; name another result file with --out FILE") from None
    files = resolve_config_files(args.config)
    found = None if files else find_run_config(ckpt)
    model = None
    if files or found:
        cfg = load_config(files or [found], args.overrides)
    else:
        # No config describes this checkpoint: its own settings, and the data from the overrides.
        model = load_checkpoint(ckpt)
        cfg = load_config(None, args.overrides, check=False, base=checkpoint_sections(model, ckpt))
        if not cfg.data.root:
            raise ConfigError(
                f"{ckpt}: no config.yaml in its run folder; name the data with data.root=DIR "
                "(and data.format, data.val, data.classes where needed) or pass --config"
            )
        validate(cfg)
    info = init_distributed(cfg.run.device)
    try:
        model = (model if model is not None else load_checkpoint(ckpt)).to(info.device)
        dataset = build_dataset(cfg, "val", "test")
        names = getattr(model, "class_names", None)
        if names is not None and dataset.class_names != list(names):
            # The logits are in the checkpoint's class order; the data numbers its classes its
            # own way (its folders, or data.classes): matched by name where the names agree.
            try:
                dataset.relabel(names)
            except DatasetError as err:
                logging.warning(
                    "%s: not the checkpoint's classes (%s); the labels are taken as the data "
                    "numbers them",
                    cfg.data.root,
                    err,
                )
        if model.config.num_classes != dataset.num_classes:
            raise ConfigError(
                f"{ckpt}: the model has {model.config.num_classes} classes, the data "
                f"{dataset.num_classes}"
            )
        result = evaluate(
            model,
            dataset,
            batch_size=max(1, cfg.data.batch_size // 2),
            workers=cfg.data.workers,
            device=info.device,
            precision=cfg.run.precision,
            reduce=cfg.run.eval_reduce,
            info=info,
            progress=cfg.run.progress,
        )
    finally:
        shutdown(info)
    if not info.is_main:
        return 0
    with writing(out, option):
        write_text(out, json.dumps(result.to_dict(), indent=1))
    print(f"{result.num_videos} videos x {result.num_views} views ({len(result.failed)} failed)")
    print(
        f"video top-1 {100 * result.video_top1:.2f}%  top-5 {100 * result.video_top5:.2f}%  "
        f"clip top-1 {100 * result.clip_top1:.2f}%"
    )
    for name, acc in result.per_class.items():
        print(f"  {name:<24} {100 * acc:6.1f}%")
    for f in result.failed:
        print(f"failed: {f['path']}: {f['error']}")
    print(f"results: {out}")
    return 0
