"""``timesformer demo``: the project's main job, end to end on this machine."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from timesformer.checkpoints import load_checkpoint, save_checkpoint
from timesformer.flops import count_macs, count_params
from timesformer.schemes import ATTENTION_SCHEMES
from timesformer.variants import create_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="build every attention scheme and classify a generated clip",
        description=(
            "Build a small TimeSformer with each of the five attention schemes, classify a "
            "generated clip of a moving square, and check that a saved checkpoint reloads to the "
            "same logits. Runs on CPU in seconds."
        ),
    )
    p.add_argument("--model", default="timesformer_small", help="variant (timesformer_small)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.set_defaults(func=run)


def moving_square(t: int, size: int) -> torch.Tensor:
    """A (1, 3, T, S, S) clip: a bright square crossing the frame left to right, normalised."""
    clip = torch.zeros(1, 3, t, size, size)
    side = max(2, size // 4)
    for i in range(t):
        x0 = round(i * (size - side) / max(t - 1, 1))
        clip[0, :, i, size // 2 - side // 2 : size // 2 + side // 2, x0 : x0 + side] = 1.0
    return (clip - 0.45) / 0.225


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    print(f"{'attention':<14}{'params':>12}{'GMACs':>9}{'ms/clip':>10}  {'top class':>9}  reload")
    with tempfile.TemporaryDirectory() as tmp:
        for attention in ATTENTION_SCHEMES:
            model = create_model(args.model, attention=attention, num_classes=10).eval()
            cfg = model.config
            clip = moving_square(cfg.num_frames, cfg.img_size)
            with torch.no_grad():
                model(clip)  # warm-up
                start = time.perf_counter()
                logits = model(clip)
                ms = (time.perf_counter() - start) * 1e3
            path = Path(tmp) / f"{attention}.safetensors"
            save_checkpoint(model, path)
            with torch.no_grad():
                same = torch.equal(load_checkpoint(path).eval()(clip), logits)
            print(
                f"{attention:<14}{count_params(model):>12,}{count_macs(cfg) / 1e9:>9.3f}"
                f"{ms:>10.1f}  {int(logits.argmax()):>9}  {'identical' if same else 'DIFFERENT'}"
            )
            if not same:
                return 1
    print("untrained weights: the class is arbitrary until `timesformer train` exists")
    return 0
