"""Make docs/timeline_example.png: a model trained by the demo, slid over six synthetic clips
played one after the other (right, left, up, down, approaching, receding).

    .venv/bin/timesformer demo --out runs/demo --schemes divided   # trains the model (~2 min)
    .venv/bin/python docs/examples/timeline_example.py runs/demo

It writes runs/demo/sequence.mp4 and prints the per-window predictions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from timesformer.checkpoints import load_checkpoint
from timesformer.data import VideoReader, write_video
from timesformer.inference.predictor import Predictor, default_clip_config
from timesformer.inference.windows import plot_timeline

ORDER = ("right", "left", "up", "down", "approaching", "receding")


def main(run: Path) -> None:
    frames = []
    for name in ORDER:
        with VideoReader(run / "data" / "val" / name / f"{name}_0000.mp4") as reader:
            frames.append(reader.get_frames(range(reader.num_frames)))
    video = write_video(run / "sequence.mp4", torch.cat(frames), 30, options={"crf": "0"})
    model = load_checkpoint(run / "divided" / "best.safetensors")
    # The demo's clips: 4 frames, one every 4, 32 px (runs/demo/divided/config.yaml).
    clip = default_clip_config(model, sampling_rate=4)
    predictor = Predictor(model, clip=clip, topk=1)
    pred = predictor.predict_windows(video, stride=8 / 30)  # a window every 8 frames
    for w in pred.windows:
        print(f"{w.start:5.2f}-{w.end:5.2f} s  {w.top[0][0]:12s} {w.top[0][1]:.2f}")
    out = Path(__file__).resolve().parents[1] / "timeline_example.png"
    plot_timeline(pred, predictor.labels, out, classes=6)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
