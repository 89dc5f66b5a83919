"""``timesformer probe``: what a video file really holds (frames that decode, rate, size)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timesformer.data.video import VideoInfo


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="frames, frame rate, size and codec of video files",
        description=(
            "Print, for each video, its container and codec, the size of its frames after "
            "rotation (phone video), the average frame rate, the number of frames that really "
            "decode (counted by decoding every frame; the header's count, often wrong, is shown "
            "beside it), the duration, whether the frame rate varies, and the keyframes. A "
            "folder stands for the video files under it (by extension, as predict reads it). A "
            "file that does not decode gets one error line; the exit status is then 2."
        ),
    )
    p.add_argument(
        "videos", metavar="VIDEO_OR_FOLDER", nargs="+", help="video files, or folders of them"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.add_argument(
        "--fast",
        action="store_true",
        help="count frames from the packets instead of decoding them (much faster, and what the "
        "data loader uses; a file whose packets lie is still counted right when it is read)",
    )
    p.set_defaults(func=run)


def describe(info: VideoInfo) -> str:
    """One line of text for ``info``."""
    header = "" if info.header_frames == info.num_frames else f" (header: {info.header_frames})"
    extras = ["mirrored"] if info.mirrored else []
    extras += [f"rotated {info.rotation}°"] if info.rotation else []
    if info.sample_aspect_ratio != "1:1":
        extras.append(f"pixels {info.sample_aspect_ratio} (width scaled to show them square)")
    if info.variable_frame_rate:
        extras.append("variable frame rate")
    tail = "".join(f", {e}" for e in extras)
    return (
        f"{info.path}: {info.format} {info.codec} {info.width}x{info.height}, "
        f"{info.fps:.3f} fps, {info.num_frames} frames{header}, {info.duration:.2f} s, "
        f"{info.keyframes} keyframes{tail}"
    )


def expand_folders(items: list[str]) -> list[str]:
    """``items`` with each folder replaced by the video files under it, sorted; a file, or a
    path that does not exist, stays as given, to be reported in its own error line."""
    from timesformer.data.video import videos_under

    out: list[str] = []
    for item in items:
        folder = Path(item)  # videos_under: a ConfigError for a folder without videos
        out += map(str, videos_under(folder)) if folder.is_dir() else [item]
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from timesformer.data.errors import VideoDecodeError
    from timesformer.data.video import probe

    results: list[dict] = []
    failed = 0
    videos = expand_folders(args.videos)
    for path in tqdm(videos, desc="probing", unit="file", disable=len(videos) < 4):
        try:
            info = probe(path, exact=not args.fast)
        except VideoDecodeError as err:
            failed += 1
            results.append({"path": path, "error": str(err)})
            if not args.json:  # tqdm.write: above the progress bar, not on its line
                tqdm.write(f"timesformer probe: error: {err}", file=sys.stderr)
            continue
        results.append(info.to_dict())
        if not args.json:
            tqdm.write(describe(info))
    if args.json:
        print(json.dumps(results, indent=2))
    return 2 if failed else 0
