"""``timesformer info``: parameters and compute of a model, as in the paper's tables, or what a
checkpoint file holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from timesformer.names import PAPER_SCHEMES
from timesformer.variants import get_variant, list_models, model_config

TEST_VIEWS = 3  # 1 temporal clip x 3 spatial crops, the reference test protocol
# A NAME ending so is a checkpoint even when the file is missing (the error then names the file).
CHECKPOINT_SUFFIXES = (".safetensors", ".pyth", ".pth", ".pt", ".bin", ".ckpt")
SOURCES = {
    "timesformer": "timesformer checkpoint",
    "reference": "reference TimeSformer checkpoint (.pyth)",
    "hf": "Hugging Face TimeSformer",
    "vit": "image ViT (initialises a video model; divided attention assumed)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="parameter count and MACs of a model",
        description=(
            "Print the parameter count and the multiply-accumulates (MACs) of one view, and of the "
            "reference test protocol's 3 views (the paper's 'TFLOPs'). "
            f"Models: {', '.join(list_models())}. "
            "Given a checkpoint (any file or Hugging Face folder that load_checkpoint reads), "
            "print what it holds: its kind, architecture, parameters and MACs, class names, the "
            "clip settings it was trained with, and for a training checkpoint its epoch and "
            "best validation accuracy."
        ),
    )
    p.add_argument(
        "name", metavar="NAME", help="model variant (e.g. timesformer_base) or checkpoint path"
    )
    p.add_argument(
        "--attention",
        default=None,
        choices=(*PAPER_SCHEMES, "all"),
        help="attention scheme, or 'all' for a table of the five (default: divided)",
    )
    p.add_argument("--num-classes", type=int, default=None, help="classes in the head (400)")
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

    from timesformer.flops import count_macs, count_params
    from timesformer.model import TimeSformer

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


def is_checkpoint(name: str) -> bool:
    """Whether ``info``'s NAME is a checkpoint path rather than a variant name."""
    return name not in list_models() and (
        Path(name).exists()
        or name.endswith(CHECKPOINT_SUFFIXES)
        or "/" in name
        or name.startswith("reference:")
    )


def describe_checkpoint(
    path: str | Path, num_frames: int | None = None, img_size: int | None = None
) -> dict[str, Any]:
    """What ``info`` prints for a checkpoint: the model it builds (at ``num_frames`` and
    ``img_size`` when given), its class names and clip settings, and a training checkpoint's
    progress."""
    from timesformer.checkpoints import load_checkpoint
    from timesformer.flops import count_macs, count_params
    from timesformer.inference.predictor import default_clip_config

    sizes = (("num_frames", num_frames), ("img_size", img_size))
    overrides = {k: v for k, v in sizes if v is not None}
    model = load_checkpoint(path, **overrides)
    cfg = model.config
    stored = getattr(model, "preprocess", None) or {}
    # Sizes given here replace the stored ones: the clip then matches the model built.
    clip = default_clip_config(model, num_frames=num_frames, crop_size=img_size)
    views = clip.num_clips * clip.num_crops
    macs = count_macs(cfg)
    names = getattr(model, "class_names", None)
    shown = clip.test_time()
    return {
        "path": str(path),
        "source": model.load_report.source,
        "attention": cfg.attention,
        "depth": cfg.depth,
        "embed_dim": cfg.embed_dim,
        "num_heads": cfg.num_heads,
        "patch_size": cfg.patch_size,
        "mlp_ratio": cfg.mlp_ratio,
        "num_frames": cfg.num_frames,
        "img_size": cfg.img_size,
        "num_classes": cfg.num_classes,
        "class_names": list(names) if names else None,
        "params": count_params(model),
        "gmacs_per_view": round(macs / 1e9, 3),
        "test_views": views,
        "tmacs_test": round(macs * views / 1e12, 4),
        "clip": shown,
        # Which of them the checkpoint carries (a transformers processor file: crop, mean, std).
        "clip_stored": sorted(k for k in stored if k in shown),
        "train_state": _train_state(Path(path)),
    }


def _train_state(path: Path) -> dict[str, Any] | None:
    """A training checkpoint's counters (epochs done, steps, best validation top-1), or None."""
    from timesformer.engine.state import read_train_state
    from timesformer.errors import CheckpointError

    state = read_train_state(path) if path.is_file() else None
    if state is None:
        return None
    counts = (state.epoch, state.step) + ((state.best_epoch,) if state.best_epoch else ())
    best = state.best_metric
    if not all(isinstance(v, int) for v in counts) or not (
        best is None or isinstance(best, (int, float))
    ):
        raise CheckpointError(f"{path}: damaged training state (counters of the wrong type)")
    return {"epoch": state.epoch, "step": state.step, "best_metric": best,
            "best_epoch": state.best_epoch}  # fmt: skip


def _print_checkpoint(d: dict[str, Any]) -> None:
    print(f"{d['path']}: {SOURCES.get(d['source'], d['source'])}")
    print(
        f"  model: {d['attention']} attention, {d['depth']} blocks of width {d['embed_dim']}, "
        f"{d['num_heads']} heads, patches of {d['patch_size']} px, MLP x{d['mlp_ratio']:g}; "
        f"{d['num_frames']} frames x {d['img_size']} px"
    )
    print(
        f"  {d['params']:,} parameters; {d['gmacs_per_view']:g} GMACs per view, "
        f"{d['gmacs_per_view'] * d['test_views']:.4g} for the {d['test_views']} test views"
    )
    names = d["class_names"] or []
    shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)" if len(names) > 10 else "")
    print(f"  {d['num_classes']} classes" + (f": {shown}" if names else " (no names)"))
    c = d["clip"]
    kept = d["clip_stored"]
    if not kept:
        how = "none stored: the reference protocol at this size"
    elif {"num_frames", "sampling_rate", "crop_size", "mean", "std"} <= set(kept):
        how = "as stored with the checkpoint"
    else:
        how = f"{', '.join(kept)} stored; the rest the reference protocol"
    short = f", short side {c['test_scale']}" if c["test_scale"] else ""
    print(
        f"  clips ({how}): {c['num_frames']} frames, "
        + (
            "one per segment"
            if c["sampling"] == "segment"
            else f"every {c['sampling_rate']} at {c['target_fps']:g} fps"
        )
        + f"; crop {c['crop_size']}{short}; {c['num_clips']} clip(s) x {c['num_crops']} crop(s); "
        f"mean {'/'.join(f'{v:g}' for v in c['mean'])}, std {'/'.join(f'{v:g}' for v in c['std'])}"
    )
    t = d["train_state"]
    if t:
        best = (
            f"; best val top-1 {100 * t['best_metric']:.1f}% (epoch {t['best_epoch']})"
            if t["best_metric"] is not None
            else ""
        )
        print(f"  training checkpoint: {t['epoch']} epochs done, {t['step']} steps{best}")


def run(args: argparse.Namespace) -> int:
    if is_checkpoint(args.name):
        from timesformer.errors import ConfigError

        given = [
            o
            for o, v in (("--attention", args.attention), ("--num-classes", args.num_classes))
            if v is not None
        ]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} {'do' if len(given) > 1 else 'does'} not apply to a "
                "checkpoint (its own are shown); --num-frames and --img-size do"
            )
        d = describe_checkpoint(args.name, args.num_frames, args.img_size)
        if args.json:
            print(json.dumps(d))
        else:
            _print_checkpoint(d)
        return 0
    get_variant(args.name)  # unknown names fail here with the list of known ones
    attention = args.attention or "divided"
    schemes = PAPER_SCHEMES if attention == "all" else (attention,)
    num_classes = 400 if args.num_classes is None else args.num_classes
    rows = [describe(args.name, s, num_classes, args.num_frames, args.img_size) for s in schemes]
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
