"""``timesformer train``: train a model from a YAML config plus ``key=value`` overrides."""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path

from timesformer.engine.config import load_config, packaged_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (one process, or many through torchrun)",
        description=(
            "Train with the settings of --config (a YAML file, or the name of a shipped config: "
            "k400_base, k400_hr, k400_large, ssv2_base, synthetic) and key=value overrides such "
            "as optim.lr=0.01 data.root=/videos run.out=runs/x. The merged config is written to "
            "the run folder, with checkpoints, metrics.jsonl and plots. A run restarted with the "
            "same run.out continues from its newest checkpoint. For several GPUs or processes: "
            "torchrun --nproc_per_node=N -m timesformer train ..."
        ),
    )
    add_config_arguments(p, "YAML config or shipped config name; repeat to layer several")
    p.add_argument(
        "--no-test",
        action="store_true",
        help="skip the final multi-view evaluation on the val split",
    )
    p.set_defaults(func=run)


def add_config_arguments(p: argparse.ArgumentParser, config_help: str) -> None:
    """``--config FILE`` (repeatable) and trailing ``KEY=VALUE`` overrides, for train and eval."""
    p.add_argument("--config", action="append", default=[], metavar="FILE", help=config_help)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def resolve_config_files(names: list[str]) -> list[Path]:
    files = []
    for name in names:
        path = Path(name)
        files.append(
            path if path.suffix in (".yaml", ".yml") or path.exists() else packaged_config(name)
        )
    return files


def run(args: argparse.Namespace) -> int:
    from timesformer.engine import Trainer, final_evaluation
    from timesformer.engine.distributed import shutdown

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(resolve_config_files(args.config), args.overrides)
    trainer = Trainer(cfg)
    info = trainer.info
    try:
        trainer.fit()
        if not args.no_test:
            result = final_evaluation(trainer)
            if trainer.info.is_main:
                print(
                    f"test ({result.num_views} views/video, {result.num_videos} videos): "
                    f"video top-1 {100 * result.video_top1:.1f}%, top-5 "
                    f"{100 * result.video_top5:.1f}%, clip top-1 {100 * result.clip_top1:.1f}%"
                    + (f", {len(result.failed)} failed" if result.failed else "")
                )
        if trainer.info.is_main:
            print(f"run folder: {trainer.out}")
    finally:
        # DDP's reducer holds the process group: dropped first, so that destroying the group
        # ends Gloo's threads while the interpreter is whole. Left to the interpreter's exit,
        # their teardown can abort the process ("terminate called without an active exception").
        del trainer
        gc.collect()
        shutdown(info)
    return 0
