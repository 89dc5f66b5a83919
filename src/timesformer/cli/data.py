"""``timesformer data``: make the data sets the project trains on (``data synth``) and list
the public ones from their official layouts (``data prepare``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from timesformer import names
from timesformer.cli.common import check_output, writing
from timesformer.errors import TimesformerError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="make data sets (the synthetic motion set) and list the public ones",
        description=(
            "Data set tools. `timesformer data synth OUT` writes the synthetic motion set; "
            "`timesformer data prepare DATASET SRC --out DIR` lists Kinetics, Something-Something "
            "v2, UCF101 or HMDB51 from their official layouts for data.format=csv."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pairs = ", ".join(f"{x.name} ({x.forward}/{x.backward})" for x in names.PAIRS)
    s = actions.add_parser(
        "synth",
        help="write the synthetic motion data set as real video files",
        description=(
            "Write OUT/train/CLASS/*.mp4, OUT/val/CLASS/*.mp4, OUT/classes.txt and OUT/meta.json: "
            "videos of textured shapes on textured backgrounds (random colours, sizes, speeds, "
            "positions) whose class is a motion that only the order of frames reveals. Classes "
            "come in time-reversal pairs: a video of one class played backwards is the video of "
            "the other, and clip i of both classes shares its parameters, so a model that ignores "
            "frame order is at chance within every pair. Same seed, same files. "
            f"Pairs: {pairs}. With --long: the long-term set of the demo's Table 8, videos of "
            "--seconds whose class is the order of two coloured flashes far apart, among moving "
            "clutter."
        ),
    )
    s.add_argument("out", metavar="OUT", help="output folder (must not exist, or --overwrite)")
    s.add_argument("--seed", type=int, default=0, help="random seed (0)")
    s.add_argument(
        "--pairs",
        "--classes",
        default=",".join(names.DEFAULT_PAIRS),
        help="comma-separated pair names (or class names, which select their pair), or 'all' "
        f"(default: {','.join(names.DEFAULT_PAIRS)})",
    )
    s.add_argument(
        "--train-per-class",
        type=int,
        default=None,
        help="training videos per class (48; long: 128)",
    )
    s.add_argument(
        "--val-per-class", type=int, default=None, help="validation videos per class (16; long: 32)"
    )
    s.add_argument("--frames", type=int, default=16, help="frames per video (16)")
    s.add_argument(
        "--size", type=int, default=None, help="frame height and width in pixels (64; long: 32)"
    )
    s.add_argument(
        "--fps", type=float, default=None, help="frame rate written in the files (30; long: 12)"
    )
    s.add_argument(
        "--long",
        action="store_true",
        help="the long-term set (Table 8): the class is the order of events far apart in time",
    )
    s.add_argument("--seconds", type=float, default=24.0, help="with --long: video length (24)")
    s.add_argument(
        "--crf",
        type=int,
        default=0,
        help="H.264 quality: 0 (default) is lossless, so decoded videos keep the time reversal "
        "exactly; higher values make smaller, lossy files",
    )
    s.add_argument(
        "--style",
        choices=names.STYLES,
        default="rich",
        help="rich (default): random colours and textures; simple: white shapes on black, "
        "larger, which a small model learns from scratch on a CPU (the demo uses it)",
    )
    s.add_argument(
        "--rotation",
        choices=names.ROTATIONS,
        default="up",
        help="the rotation pair: up (default): the tip points within 30 degrees of up at "
        "mid-clip, so one frame shows which side of the turn it lies on, as in the other pairs; "
        "any: any way, so only the change between frames shows the direction",
    )
    s.add_argument(
        "--overwrite", action="store_true", help="replace OUT if it is a folder that exists"
    )
    s.set_defaults(func=run)
    add_prepare_parser(actions)


def add_prepare_parser(actions: argparse._SubParsersAction) -> None:
    """``data prepare``: the official layouts to ``path label`` lists."""
    p = actions.add_parser(
        "prepare",
        help="list a public data set (kinetics, ssv2, ucf101, hmdb51) for data.format=csv",
        description=(
            "Read a data set in the layout its publishers ship under SRC and write "
            "DIR/train.csv and DIR/val.csv (one 'path label' per line, label = line index in "
            "DIR/classes.txt), DIR/classes.txt and DIR/missing.txt (the videos the annotations "
            "name that are not under SRC; for Kinetics a few per cent are always missing). "
            "Videos are found by name anywhere under SRC. Layouts: kinetics: annotations/"
            "{train,val}.csv (label,youtube_id,time_start,time_end,split) and the clips "
            "ID_START_END.mp4, flat or in per-label folders; ssv2: labels.json, train.json, "
            "validation.json and ID.webm; ucf101: ucfTrainTestlist/{classInd,trainlist0N,"
            "testlist0N}.txt and CLASS/*.avi; hmdb51: testTrainMulti_7030_splits/"
            "CLASS_test_splitN.txt and CLASS/*.avi. Then train with: timesformer train ... "
            "data.format=csv data.root=DIR data.train=train.csv data.val=val.csv. "
            "Running it again with the same DIR is safe: lists are replaced, re-encoded videos "
            "that exist are kept."
        ),
    )
    p.add_argument("dataset", choices=names.DATASETS, metavar="DATASET", help="kinetics (400, "
                   "600 or 700), ssv2, ucf101 or hmdb51")  # fmt: skip
    p.add_argument("src", metavar="SRC", help="the folder holding the data set as published")
    p.add_argument("--out", required=True, metavar="DIR", help="where the lists are written")
    p.add_argument(
        "--split",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="ucf101 and hmdb51: which of the three official train/test splits (default 1); "
        "these sets are reported as the mean over the three",
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=None,
        metavar="S",
        help="re-encode every video to H.264 MP4 with short side S under DIR/videos/ (resumable: "
        "done files are kept) and list those; the reference used 256 (320 for the HR models)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        metavar="N",
        help="re-encoding processes (default: the CPU count, at most 8; 0: in this process)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_prepare)


def parse_pairs(text: str) -> list[str]:
    """Pair names from 'horizontal,rotation', class names ('left' selects horizontal) or 'all'."""
    if text.strip() == "all":
        return [p.name for p in names.PAIRS]
    chosen = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if token in {p.name for p in names.PAIRS}:
            chosen.append(token)
            continue
        match = [p.name for p in names.PAIRS if token in (p.forward, p.backward)]
        if not match:
            known = ", ".join(p.name for p in names.PAIRS)
            raise TimesformerError(f"unknown pair or class {token!r} (pairs: {known})")
        chosen.append(match[0])
    if not chosen:
        raise TimesformerError("--pairs names no pair")
    return list(dict.fromkeys(chosen))


def run(args: argparse.Namespace) -> int:
    from timesformer.data import synthetic

    defaults = (128, 32, 32, 12.0) if args.long else (48, 16, 64, 30.0)
    for key, default in zip(
        ("train_per_class", "val_per_class", "size", "fps"), defaults, strict=True
    ):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.frames < 2 or args.size < 16:
        raise TimesformerError("--frames must be >= 2 and --size >= 16")
    if args.size % 2:
        raise TimesformerError("--size must be even (H.264 with 4:2:0 chroma)")
    if not 0 <= args.crf <= 51:
        raise TimesformerError("--crf must be in [0, 51]")
    if not 0 < args.fps < 1000:  # also refuses nan
        raise TimesformerError(f"--fps must be in (0, 1000), got {args.fps}")
    if args.seed < 0:
        raise TimesformerError(f"--seed must be 0 or more, got {args.seed}")
    if args.train_per_class < 0 or args.val_per_class < 0:
        raise TimesformerError("--train-per-class and --val-per-class must be 0 or more")
    if args.train_per_class + args.val_per_class == 0:
        raise TimesformerError("--train-per-class and --val-per-class are both 0: no videos")
    if args.long:
        return _run_long(args)
    pairs = parse_pairs(args.pairs)
    _check_new_folder(args)
    with writing(args.out, None, folder=True):
        out = synthetic.make_synthetic(
            args.out,
            seed=args.seed,
            pairs=pairs,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            frames=args.frames,
            size=args.size,
            fps=args.fps,
            crf=args.crf,
            style=args.style,
            rotation=args.rotation,
            overwrite=args.overwrite,
        )
    n = len(pairs) * 2
    print(
        f"wrote {out}: {n} classes x ({args.train_per_class} train + {args.val_per_class} val) "
        f"videos of {args.frames} x {args.size}x{args.size}"
    )
    return 0


def _check_new_folder(args: argparse.Namespace) -> None:
    """OUT must be a folder this command may write: new, empty, or replaced with --overwrite."""
    check_output(args.out, None, folder=True)
    target = Path(args.out)
    if not args.overwrite and target.is_dir() and any(target.iterdir()):
        raise TimesformerError(
            f"{args.out}: already exists and is not empty; add --overwrite to replace it"
        )


def _run_long(args: argparse.Namespace) -> int:
    """``data synth --long``: the long-term set of the demo's Table 8."""
    from timesformer.data import long_synthetic

    if not 0 < args.seconds <= 3600:
        raise TimesformerError(f"--seconds must be in (0, 3600], got {args.seconds}")
    _check_new_folder(args)
    with writing(args.out, None, folder=True):
        out = long_synthetic.make_long_synthetic(
            args.out,
            seed=args.seed,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            seconds=args.seconds,
            fps=args.fps,
            size=args.size,
            crf=args.crf,
            overwrite=args.overwrite,
        )
    classes = long_synthetic.long_class_names()
    print(
        f"wrote {out}: {len(classes)} classes x ({args.train_per_class} train + "
        f"{args.val_per_class} val) videos of {args.seconds:g} s at {args.fps:g} fps, "
        f"{args.size}x{args.size}"
    )
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    """``data prepare``: check the options and the output, read SRC, write the lists."""
    from timesformer.data import prepare

    if args.short_side is not None and args.short_side < 2:
        raise TimesformerError(f"--short-side must be at least 2, got {args.short_side}")
    if args.workers < 0:
        raise TimesformerError(f"--workers must be 0 or more, got {args.workers}")
    if args.split is not None and args.dataset not in ("ucf101", "hmdb51"):
        raise TimesformerError(f"--split applies to ucf101 and hmdb51, not {args.dataset}")
    check_output(args.out, "--out", folder=True)
    with writing(args.out, "--out", folder=True):
        summary = prepare.prepare(
            args.dataset,
            args.src,
            args.out,
            split=args.split,
            short_side=args.short_side,
            workers=args.workers,
            progress=not args.no_progress,
        )
    name = args.dataset + (
        f" split {args.split or 1}" if args.dataset in ("ucf101", "hmdb51") else ""
    )
    for line in summary.lines(name):
        print(line)
    print(
        f"train with: timesformer train CONFIG data.format=csv data.root={summary.out} "
        "data.train=train.csv data.val=val.csv"
        + (
            " data.flip=false  (SSv2 labels are left/right sensitive)"
            if args.dataset == "ssv2"
            else ""
        )
    )
    return 0
