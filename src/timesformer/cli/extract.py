"""``timesformer extract``: clip (and window) embeddings of a video collection, resumable and
shardable."""

from __future__ import annotations

import argparse
import sys

from timesformer.cli.common import (
    add_clip_arguments,
    add_running_arguments,
    check_clip_options,
    check_output,
    clip_from_args,
    writing,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="save the embedding of every video of a folder or list (resumable, shardable)",
        description=(
            "Save the pooled embedding of every video: the mean over the test views (K clips x 3 "
            "crops, as predict reads them) of the model's final normed cls token, a vector of "
            "the model's width. With --windows the clip also slides over the whole video and "
            "each window's embedding is saved with its time range. Output: OUT/features/<key>"
            ".safetensors (tensors clip, windows, window_times; metadata: source, model, "
            "checkpoint, clip settings) or <key>.npy (+ <key>.windows.npy, "
            "<key>.window_times.npy), where <key> is the video's path relative to --root or to "
            "the folder given; OUT/index.jsonl lists every video with its feature file or its "
            "error. Videos already extracted are skipped, so an interrupted run resumes where it "
            "stopped; OUT/extract.json records the settings, and a run with another model or "
            "other settings into the same OUT is refused. Shards: run with torchrun "
            "(RANK/WORLD_SIZE; cuda:LOCAL_RANK) or give "
            "--shard i/n to each process (on one or many machines sharing OUT): process i takes "
            "videos i, i+n, ... of the sorted list. A video that fails to decode is recorded and "
            "the others continue; the exit status is 1 when any failed."
        ),
    )
    p.add_argument(
        "videos", nargs="*", metavar="VIDEO_OR_FOLDER", help="video files or folders (recursive)"
    )
    p.add_argument("--checkpoint", required=True, help="any checkpoint load_checkpoint reads")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--list",
        default=None,
        metavar="FILE",
        help="also the videos of this file, one path per line (# comments)",
    )
    p.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="the folder relative list paths start from (default: the list's folder); videos "
        "under it are saved under their path relative to it",
    )
    p.add_argument(
        "--format",
        choices=("safetensors", "npy"),
        default="safetensors",
        help="feature file format (safetensors)",
    )
    g = p.add_argument_group("windows")
    g.add_argument("--windows", action="store_true", help="also embed sliding windows")
    g.add_argument(
        "--stride",
        type=float,
        default=None,
        help="seconds between window starts (default: one window, so they tile the video)",
    )
    add_clip_arguments(p)
    r = add_running_arguments(p, "cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if any)")
    r.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="this process's share: videos I, I+N, ... (default: torchrun's RANK/WORLD_SIZE)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from timesformer.checkpoints import load_checkpoint
    from timesformer.errors import ConfigError
    from timesformer.inference.extract import (
        Extractor,
        collect_videos,
        parse_shard,
        run_extraction,
    )
    from timesformer.runtime import pick_device

    if args.stride is not None and not args.windows:
        raise ConfigError("--stride needs --windows")
    if not args.videos and args.list is None:
        raise ConfigError("no videos given: name files or folders, or --list FILE")
    check_clip_options(args)
    check_output(args.out, "--out", folder=True)
    shard = parse_shard(args.shard)
    items = collect_videos(args.videos, list_file=args.list, root=args.root)
    # torchrun gives each process of a machine its own GPU.
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = pick_device(args.device or "auto", local_rank, option="--device")
    # A local file by its absolute path; a Hub id or zoo name as given.
    given = Path(args.checkpoint)
    checkpoint = str(given.resolve()) if given.exists() else args.checkpoint
    model = load_checkpoint(args.checkpoint)
    clip = clip_from_args(model, args)
    extractor = Extractor(
        model,
        clip=clip,
        device=device,
        precision=args.precision,
        windows=args.windows,
        stride=args.stride,
    )
    with writing(args.out, "--out", folder=True):
        summary = run_extraction(
            extractor,
            items,
            args.out,
            fmt=args.format,
            shard=shard,
            checkpoint=checkpoint,
            workers=args.workers,
            progress=not args.no_progress,
        )
    for path, error in summary.errors:
        print(f"{path}: error: {error}", file=sys.stderr)
    where = "" if shard[1] == 1 else f"shard {shard[0]}/{shard[1]}: "
    print(
        f"{where}{summary.done} extracted, {summary.skipped} skipped (already done), "
        f"{summary.failed} failed of {summary.total} videos; index: {summary.index} "
        f"({summary.indexed} of {len(items)} videos)",
        flush=True,
    )
    return 1 if summary.failed else 0
