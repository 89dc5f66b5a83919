"""``timesformer predict``: top-k classes of video files, whole or window by window."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from timesformer.cli.common import (
    add_clip_arguments,
    add_running_arguments,
    check_clip_options,
    check_output,
    writing,
)
from timesformer.names import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes of videos (whole, or window by window for long videos)",
        description=(
            "Predict the classes of each video with the reference test protocol: the short side "
            "resized to the crop size, K temporal clips x 3 spatial crops, the views' logits "
            "averaged. The clip settings come from the checkpoint when it carries them (models "
            "trained here do), else from the model (its frames and size, the reference sampling "
            "rate). With --windows the clip slides over the whole video, decoded as one stream, "
            "and each window gets its own prediction with its time range. A video that fails to "
            "decode gets an error line and the others continue; the exit status is 1 when any "
            "failed."
        ),
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files or folders")
    p.add_argument(
        "--checkpoint",
        default=DEFAULT_MODEL,
        help="a checkpoint file or Hugging Face folder, a Hub repo id (ORG/NAME[@REVISION]) or "
        "reference:NAME from the authors' zoo (`timesformer models` lists the names); default: "
        f"{DEFAULT_MODEL} (Kinetics-400, 400 classes, CC BY-NC 4.0), downloaded on first use "
        "into the Hugging Face cache",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="class names: kinetics400, kinetics600, ssv2, or a file (one name per line, a JSON "
        "list, {name: index} or {index: name}); default: the checkpoint's own names",
    )
    p.add_argument("--topk", type=int, default=5, help="classes per video (5)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--json",
        action="store_true",
        help="print JSON Lines: one JSON object per video and line, as each video is done",
    )
    shown.add_argument(
        "--json-array",
        action="store_true",
        help="print one JSON document at the end: an array of the videos' objects",
    )
    p.add_argument(
        "--out", default=None, metavar="FILE", help="also write the JSON Lines to this file"
    )
    g = p.add_argument_group("long videos")
    g.add_argument("--windows", action="store_true", help="slide the clip over the whole video")
    g.add_argument(
        "--stride",
        type=float,
        default=None,
        help="seconds between window starts (default: one window, so they tile the video)",
    )
    g.add_argument(
        "--timeline", default=None, metavar="DIR", help="write a timeline PNG per video here"
    )
    add_clip_arguments(p)
    r = add_running_arguments(p, "cpu, cuda, cuda:1 ... (default: cuda if any)")
    r.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: tens of seconds once, then faster on a GPU (on the CPU "
        "the eager model is about as fast)",
    )
    p.set_defaults(func=run)


def _text(pred) -> str:
    if pred.error is not None:
        return f"{pred.path}: error: {pred.error}"
    top = ", ".join(f"{lab} {p:.3f}" for lab, p in pred.top)
    lines = [f"{pred.path}: {top}"]
    for w in pred.windows or []:
        best = ", ".join(f"{lab} {p:.3f}" for lab, p in w.top[:3])
        lines.append(f"  {w.start:8.2f}-{w.end:8.2f} s  {best}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from timesformer.checkpoints.io import write_text
    from timesformer.data import VideoDecodeError
    from timesformer.data.video import find_videos
    from timesformer.errors import ConfigError
    from timesformer.inference.predictor import Prediction, load_predictor
    from timesformer.inference.windows import plot_timeline

    if args.topk < 1:
        raise ConfigError(f"--topk must be at least 1, got {args.topk}")
    if (args.stride is not None or args.timeline) and not args.windows:
        raise ConfigError("--stride and --timeline need --windows")
    check_clip_options(args)
    check_output(args.out, "--out")
    check_output(args.timeline, "--timeline", folder=True)
    videos = find_videos(args.videos)
    predictor = load_predictor(
        args.checkpoint,
        labels=args.labels,
        clips=args.clips,
        crops=args.crops,
        sampling_rate=args.sampling_rate,
        device=args.device,
        precision=args.precision,
        topk=args.topk,
        compile=args.compile,
    )
    progress = not args.no_progress and len(videos) > 1
    if args.windows:
        timeline = Path(args.timeline) if args.timeline else None

        def windowed():
            for path in tqdm(videos, desc="predict", unit="video", disable=not progress):
                try:
                    pred = predictor.predict_windows(path, stride=args.stride)
                except VideoDecodeError as err:
                    yield Prediction(str(path), error=str(err))
                    continue
                if timeline is not None:
                    with writing(timeline, "--timeline", folder=True):
                        png = timeline / f"{path.stem}_timeline.png"
                        plot_timeline(pred, predictor.labels, png)
                yield pred

        results = windowed()
    else:
        results = predictor.predict_many(videos, workers=args.workers, progress=progress)

    failed = 0
    rows: list[dict] = []
    for pred in results:
        failed += not pred.ok
        row = pred.to_dict()
        rows.append(row)
        if not args.json_array:
            # tqdm.write puts the line above the progress bar instead of onto the bar's own line.
            tqdm.write(json.dumps(row) if args.json else _text(pred))
            sys.stdout.flush()
    if args.json_array:
        print(json.dumps(rows, indent=1), flush=True)
    if args.out:
        with writing(args.out, "--out"):
            write_text(Path(args.out), "".join(f"{json.dumps(row)}\n" for row in rows))
    if failed:
        print(f"timesformer predict: {failed} of {len(videos)} videos failed", file=sys.stderr)
        return 1
    return 0
