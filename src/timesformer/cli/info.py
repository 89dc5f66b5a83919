"""``timesformer info``: parameters and compute of a model, as in the paper's tables."""

from __future__ import annotations

import argparse
import json

from timesformer.flops import count_macs, count_params
from timesformer.model import TimeSformer
from timesformer.schemes import ATTENTION_SCHEMES
from timesformer.variants import get_variant, list_models, model_config

TEST_VIEWS = 3  # 1 temporal clip x 3 spatial crops, the reference test protocol


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="parameter count and MACs of a model",
        description=(
            "Print the parameter count and the multiply-accumulates (MACs) of one view, and of the "
            "reference test protocol's 3 views (the paper's 'TFLOPs'). "
            f"Models: {', '.join(list_models())}."
        ),
    )
    p.add_argument("name", metavar="NAME", help="model variant, e.g. timesformer_base")
    p.add_argument(
        "--attention",
        default="divided",
        choices=(*ATTENTION_SCHEMES, "all"),
        help="attention scheme, or 'all' for a table of the five (default: divided)",
    )
    p.add_argument("--num-classes", type=int, default=400, help="classes in the head (400)")
    p.add_argument("--num-frames", type=int, default=None, help="frames per clip (variant's)")
    p.add_argument("--img-size", type=int, default=None, help="crop size in pixels (variant's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def describe(
    name: str, attention: str, num_classes: int, num_frames: int | None, img_size: int | None
) -> dict:
    """The facts ``info`` prints, for one scheme."""
    cfg = model_config(
        name, attention=attention, num_classes=num_classes, num_frames=num_frames, img_size=img_size
    )
    import torch

    with torch.device("meta"):
        params = count_params(TimeSformer(cfg))
    macs = count_macs(cfg)
    return {
        "model": name,
        "attention": attention,
        "num_classes": cfg.num_classes,
        "num_frames": cfg.num_frames,
        "img_size": cfg.img_size,
        "sampling_rate": get_variant(name).sampling_rate,
        "params": params,
        "gmacs_per_view": round(macs / 1e9, 3),
        "test_views": TEST_VIEWS,
        "tmacs_test": round(macs * TEST_VIEWS / 1e12, 4),
    }


def run(args: argparse.Namespace) -> int:
    get_variant(args.name)  # unknown names fail here with the list of known ones
    schemes = ATTENTION_SCHEMES if args.attention == "all" else (args.attention,)
    rows = [
        describe(args.name, s, args.num_classes, args.num_frames, args.img_size) for s in schemes
    ]
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows))
        return 0
    first = rows[0]
    print(
        f"{args.name}: {first['num_frames']} frames x {first['img_size']}px, "
        f"{first['num_classes']} classes, sampling rate {first['sampling_rate']}"
    )
    print(f"{'attention':<14}{'params':>14}{'GMACs/view':>13}{'TMACs x3 views':>16}")
    for r in rows:
        print(
            f"{r['attention']:<14}{r['params']:>14,}{r['gmacs_per_view']:>13.1f}"
            f"{r['tmacs_test']:>16.2f}"
        )
    return 0
