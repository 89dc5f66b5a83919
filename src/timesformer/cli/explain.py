"""``timesformer explain``: where the model looks, by attention rollout over one clip."""

from __future__ import annotations

import argparse
from pathlib import Path

from timesformer.inference.rollout_clip import KINETICS_RATE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="attention rollout of one clip, drawn over its frames (PNG grid and GIF)",
        description=(
            "Decode one centred clip of VIDEO with the model's number of frames, centre-crop it "
            "as in validation, and compute attention rollout: how much each patch of each frame "
            "contributes to the clip's cls token, following every attention step of every block "
            "(for divided attention both the temporal and the spatial step) with the residual "
            "connections. Writes OUT/<video stem>_rollout.png (the frames in a grid, heat map "
            "over each) and OUT/<video stem>_rollout.gif (one GIF frame per clip frame), and "
            "prints the top predicted class. Rollout is defined for all five schemes (space: "
            "per frame); a scheme whose attention cannot be read this way is refused."
        ),
    )
    p.add_argument("video", metavar="VIDEO", help="the video file")
    p.add_argument("--checkpoint", required=True, help="a checkpoint load_checkpoint reads")
    p.add_argument("--out", default=".", help="output folder (default: the current folder)")
    p.add_argument(
        "--head-fusion",
        choices=("mean", "max", "min"),
        default="mean",
        help="how the heads of each attention step are combined (mean)",
    )
    p.add_argument(
        "--discard-ratio",
        type=float,
        default=0.0,
        help="fraction in [0, 1) of each row's weakest attention weights dropped before the "
        "rollout; higher values give sharper maps (0)",
    )
    p.add_argument(
        "--sampling-rate",
        type=int,
        default=None,
        help="frames between the clip's frames at 30 fps (default: the rate stored with the "
        f"checkpoint; else {KINETICS_RATE} for an 8-frame model, the Kinetics recipe; else the "
        "rate that makes the clip span the whole video)",
    )
    p.add_argument(
        "--device", default="auto", help="torch device: auto (cuda when available), cpu, cuda:0"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from timesformer.checkpoints import load_checkpoint
    from timesformer.cli.common import check_output, writing
    from timesformer.data import VideoReader
    from timesformer.errors import ConfigError
    from timesformer.inference.overlay import save_overlay_gif, save_overlay_grid
    from timesformer.inference.rollout import explain_clip, rollout_support
    from timesformer.inference.rollout_clip import clip_indices, prepare_clip
    from timesformer.runtime import pick_device

    if not 0.0 <= args.discard_ratio < 1.0:
        raise ConfigError(f"--discard-ratio must be in [0, 1), got {args.discard_ratio}")
    if args.sampling_rate is not None and args.sampling_rate < 1:
        raise ConfigError(f"--sampling-rate must be >= 1, got {args.sampling_rate}")
    device = pick_device(args.device, option="--device")
    out = Path(args.out)
    check_output(out, "--out", folder=True)
    video = Path(args.video)
    # Open the video first: a bad video fails in a moment, before a large checkpoint loads.
    reader = VideoReader(video)
    model = load_checkpoint(args.checkpoint)
    rollout_support(model)  # refuse an unsupported scheme before decoding anything
    pre = dict(getattr(model, "preprocess", None) or {})
    t = model.config.num_frames
    with reader:
        indices, rate = clip_indices(reader, t, args.sampling_rate, pre)
        frames = reader.get_frames(indices)  # uint8 (T, H, W, 3)
    clip, shown = prepare_clip(frames, pre, model.config.img_size)  # (3, T, crop, crop)

    model = model.to(device)
    result = explain_clip(
        model, clip.to(device), head_fusion=args.head_fusion, discard_ratio=args.discard_ratio
    )
    probs = result.logits.softmax(dim=0)
    top = int(probs.argmax())
    names = model.class_names
    label = names[top] if names else f"class {top}"

    stem = f"{video.stem}_rollout"
    how = f"every {rate} frames at 30 fps" if rate else "one frame per segment"
    title = (
        f"{video.name}: {label} ({100 * float(probs[top]):.1f}%), {model.config.attention} "
        f"attention rollout, {args.head_fusion} over heads"
    )
    with writing(out, "--out", folder=True):
        png = save_overlay_grid(
            shown,
            result.relevance,
            out / f"{stem}.png",
            labels=[f"frame {i}" for i in indices],
            title=title,
        )
        gif = save_overlay_gif(shown, result.relevance, out / f"{stem}.gif")
    per_frame = result.relevance.sum(dim=(1, 2))
    print(f"clip: frames {', '.join(str(int(i)) for i in indices)} of {video.name} ({how})")
    print(f"top class: {label} ({100 * float(probs[top]):.1f}%)")
    print(
        "relevance per frame: "
        + " ".join(f"{100 * float(v):.1f}%" for v in per_frame)
        + f" (cls token keeps {100 * result.cls_share:.1f}% before normalising)"
    )
    print(f"wrote {png}")
    print(f"wrote {gif}")
    return 0
