"""``timesformer train``: train a model from a YAML config plus ``key=value`` overrides."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timesformer.engine import Trainer
    from timesformer.engine.distributed import DistInfo


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (one process, or many through torchrun)",
        description=(
            "Train with the settings of --config (a YAML file, or the name of a shipped config: "
            "k400_base, k400_hr, k400_large, ssv2_base, synthetic) and key=value overrides such "
            "as optim.lr=0.01 data.root=/videos run.out=runs/x. Every setting is checked before "
            "anything is written. "
            "Class count: the training data's. A shipped config's model.num_classes (400 for "
            "k400_*) gives way to it, with a line saying so; a model.num_classes you set that "
            "the data does not have is an error. "
            "Run folder (run.out): the merged config is written there (config.yaml), with "
            "checkpoints, metrics.jsonl and plots; each epoch's checkpoint is written before its "
            "evaluation, so a failure after an epoch never loses it. The same command again "
            "continues the run from its newest checkpoint (run.resume=true, the default): "
            "settings changed since are listed, one line each (KEY: OLD -> NEW), and a change "
            "the run cannot continue with (model architecture or class count, the data's "
            "classes, steps per epoch, optimizer) is refused. run.resume=false starts over: "
            "an earlier run in run.out is first moved to the sibling folder RUN_OUT.old-N, "
            "which the output names. For several GPUs or processes: "
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
    from timesformer.engine.config import packaged_config

    files = []
    for name in names:
        path = Path(name)
        files.append(
            path if path.suffix in (".yaml", ".yml") or path.exists() else packaged_config(name)
        )
    return files


def run(args: argparse.Namespace) -> int:
    from timesformer.engine import Trainer
    from timesformer.engine.config import load_config
    from timesformer.engine.distributed import shutdown

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(resolve_config_files(args.config), args.overrides)
    trainer = Trainer(cfg)
    info = trainer.info
    try:
        with stopped_by_sigterm(info, trainer.resume_hint()):
            _train_and_test(trainer, args)
    finally:
        # DDP's reducer holds the process group: dropped first, so that destroying the group
        # ends Gloo's threads while the interpreter is whole. Left to the interpreter's exit,
        # their teardown can abort the process ("terminate called without an active exception").
        del trainer
        gc.collect()
        shutdown(info)
    return 0


def _train_and_test(trainer: Trainer, args: argparse.Namespace) -> None:
    """Train, then (unless ``--no-test``) the multi-view test on the val split."""
    from timesformer.engine import final_evaluation

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


@contextlib.contextmanager
def stopped_by_sigterm(info: DistInfo, resume_hint: str) -> Iterator[None]:
    """While a run trains: SIGTERM ends the process with one line that says so and how to go
    on, where it would otherwise end it without a word.

    torchrun sends it to every process of a run as soon as it sees one of them fail, and a job
    scheduler sends it to end a job. A process of a run whose peer died usually reads the broken
    connection first and reports that (``DistributedFailure``), but torchrun's SIGTERM can come
    before it does; either way it prints one line. Once a ``DistributedFailure`` is on its way
    out, SIGTERM is ignored, so that its line is not cut short or followed by a second one. The
    process ends as SIGTERM's default would (no clean-up; checkpoints are written atomically),
    with status 128 + 15. A forked child, which torchrun's SIGTERM to the process group
    reaches too, ends without a line."""
    from timesformer.engine.distributed import DistributedFailure

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    who = f"rank {info.rank} of {info.world_size} " if info.enabled else ""
    why = (
        "torchrun stops every process of a run when one of them fails (its report names it), "
        "and a job scheduler stops a job this way"
        if info.enabled
        else "a job scheduler or a kill"
    )

    owner = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a forked child, which inherits the handler (PyTorch's
            os._exit(128 + signum)  # DataLoader workers set their own): ends without a word
        sys.stdout.flush()
        sys.stderr.write(
            f"timesformer train: error: {who}stopped by SIGTERM ({why}); {resume_hint}\n"
        )
        sys.stderr.flush()
        os._exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except DistributedFailure:
        previous = signal.SIG_IGN  # its line is on its way out: nothing may cut it short
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
