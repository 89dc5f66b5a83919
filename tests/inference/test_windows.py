"""Sliding windows over long videos: the same clips as random access, flat memory, a plot."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from inference.conftest import moving_frames
from timesformer.checkpoints import load_checkpoint
from timesformer.data import VideoReader, transforms, write_video
from timesformer.inference.predictor import Predictor, default_clip_config
from timesformer.inference.windows import plan_windows, plot_timeline


def test_windows_tile_the_video_and_cover_the_tail():
    plans, window = plan_windows(100, 10.0, 4, 2, 30.0, None)  # 4 x 2 at 30 fps = 2.67 frames
    assert window == pytest.approx(8 * 10 / 30)
    starts = [int(p[0]) for p in plans]
    assert starts == sorted(starts) and starts[0] == 0
    assert int(plans[-1][-1]) == 99  # the last window ends the video
    plans, _ = plan_windows(100, 10.0, 4, 2, 30.0, stride=2.0)  # every 20 frames
    assert [int(p[0]) for p in plans][:5] == [0, 20, 40, 60, 80]
    short, _ = plan_windows(3, 10.0, 4, 32, 30.0, None)  # shorter than one window: one, padded
    assert len(short) == 1 and short[0].tolist() == [0, 2, 2, 2]
    with pytest.raises(Exception, match="stride"):
        plan_windows(100, 10.0, 4, 2, 30.0, stride=0.0)


def test_windows_equal_the_clips_read_by_random_access(checkpoint, tmp_path):
    path = write_video(tmp_path / "long.mp4", moving_frames(90, size=32), 10, options={"g": "15"})
    model = load_checkpoint(checkpoint)
    predictor = Predictor(model, clip=default_clip_config(model, sampling_rate=6))
    pred = predictor.predict_windows(path, stride=1.5, batch=3)
    with VideoReader(path) as reader:
        plans, _ = plan_windows(reader.num_frames, reader.fps, 4, 6, 30.0, 1.5)
        assert len(pred.windows) == len(plans) >= 5
        for w, idx in zip(pred.windows, plans, strict=True):
            views = transforms.test_views(reader.get_frames(idx), 16, 3)
            expected = predictor.probabilities(views)
            torch.testing.assert_close(w.probs, expected, atol=1e-5, rtol=0)
            assert w.start == pytest.approx(idx[0] / 10) and w.end == pytest.approx(
                idx[-1] / 10 + 0.1
            )
    mean = torch.stack([w.probs for w in pred.windows]).mean(0)
    torch.testing.assert_close(pred.probs, mean)
    assert pred.num_views == 3 * len(plans)
    out = pred.to_dict()
    assert len(out["windows"]) == len(plans) and out["windows"][0]["start"] == 0.0

    png = plot_timeline(pred, predictor.labels, tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


_CHILD = textwrap.dedent(
    """
    import json, sys
    from timesformer.checkpoints import load_checkpoint
    from timesformer.inference.predictor import Predictor, default_clip_config
    model = load_checkpoint(sys.argv[1])
    predictor = Predictor(model, clip=default_clip_config(model, sampling_rate=8))
    pred = predictor.predict_windows(sys.argv[2], batch=8)
    # VmHWM: this process's own peak (ru_maxrss would carry over the parent's from the fork).
    status = open("/proc/self/status").read()
    peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1])
    print(json.dumps({"windows": len(pred.windows), "peak_kib": peak}))
    """
)


def _peak(checkpoint, video) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(checkpoint), str(video)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _video(path, seconds: int):
    """``seconds`` of 160x160 H.264 at 10 fps: a held frame costs 75 KiB, so keeping every
    frame of the 5-minute one would add ~220 MiB."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
    frames = (np.roll(base, i, axis=1) for i in range(10 * seconds))
    return write_video(path, frames, 10, options={"preset": "ultrafast", "g": "50"})


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_five_minutes_take_no_more_memory_than_ten_seconds(checkpoint, tmp_path):
    short = _peak(checkpoint, _video(tmp_path / "short.mp4", 10))
    long = _peak(checkpoint, _video(tmp_path / "long.mp4", 300))
    assert long["windows"] > 20 * short["windows"]
    # Allocator noise only: far below the 220 MiB the frames of the long video would take.
    assert long["peak_kib"] <= short["peak_kib"] + 24 * 1024, (short, long)
