"""``timesformer serve`` under load: requests per second and p50/p95 latency for 1, 4 and 16
concurrent clients, with batching on and off.

The server is the real command (``python -m timesformer serve``) in a process of its own, with a
random model of the given variant (default ``timesformer_small``: 8 frames of 32 px, 4 blocks
of width 96) saved as a checkpoint; each client is a thread here that uploads one generated
H.264 video (default 2 s of 96 x 96 at 30 fps, a square crossing a textured background) to
``POST /v1/predict`` again and again, for ``--seconds`` per setting after a warm-up. "Batching
on" is the server's default (a 10 ms window, up to 24 views a forward pass); "off" is
``--max-batch 1``. Requests per forward pass come from ``/healthz``. Both run with the same
``--workers`` (decoding threads) and the threads that ``OMP_NUM_THREADS`` gives torch.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_serve.py   # results/serve_cpu.md
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from harness import command, machine, machine_kind, result, write_result

import timesformer
from timesformer.checkpoints import save_checkpoint
from timesformer.data import write_video

CLIENTS = (1, 4, 16)
SETTINGS = {"on": [], "off": ["--max-batch", "1"]}


def make_video(path: Path, seconds: float, size: int, fps: int = 30) -> Path:
    """A square crossing a textured background: ``seconds`` of ``size`` x ``size`` H.264."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 160, (size, size, 3), dtype=np.uint8)
    side = max(4, size // 6)
    frames = []
    for i in range(round(seconds * fps)):
        frame = base.copy()
        x = (3 * i) % (size - side)
        frame[size // 3 : size // 3 + side, x : x + side] = 255
        frames.append(frame)
    return write_video(path, frames, fps)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(checkpoint: Path, extra: list[str], workers: int, log: Path) -> Iterator[int]:
    """``timesformer serve`` on a free port of 127.0.0.1 until the block ends; yields the port."""
    port = free_port()
    cmd = [sys.executable, "-m", "timesformer", "serve", "--checkpoint", str(checkpoint),
           "--port", str(port), "--workers", str(workers), "--queue-size", "64",
           "--device", "cpu", *extra]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server stopped (status {proc.returncode}); see {log}")
            with contextlib.suppress(OSError):
                if get(port, "/healthz")["status"] == "ok":
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not start in 300 s; see {log}")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(60)


def get(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def multipart(video: Path) -> tuple[bytes, str]:
    """The body and content type of an upload of ``video`` as the field ``video``."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; '
        f'filename="{video.name}"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    body = head + video.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def load(port: int, body: bytes, kind: str, clients: int, seconds: float) -> dict:
    """``clients`` threads posting ``body`` until ``seconds`` pass: latencies and counts."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": kind})
            response = conn.getresponse()
            response.read()
            took = time.perf_counter() - t0
            with lock:
                (latencies if response.status == 200 else errors).append(
                    took if response.status == 200 else response.status
                )
        conn.close()

    before = get(port, "/healthz")["batching"]
    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    after = get(port, "/healthz")["batching"]
    passes = after["forward_passes"] - before["forward_passes"]
    jobs = after["jobs"] - before["jobs"]
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {
        "requests": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": q[18] * 1000,
        "per_pass": jobs / passes if passes else float("nan"),
        "errors": len(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="timesformer_small", help="model (random weights)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--video-seconds", type=float, default=2.0)
    parser.add_argument("--video-size", type=int, default=96, help="frame side in pixels")
    parser.add_argument("--seconds", type=float, default=20.0, help="load per setting")
    parser.add_argument("--workers", type=int, default=2, help="the server's decoding threads")
    parser.add_argument(
        "--clients", default=",".join(map(str, CLIENTS)), help="concurrent clients, e.g. 1,4,16"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",") if c.strip()]

    cpu = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        model = timesformer.create_model(args.variant, num_classes=args.classes).eval()
        checkpoint = save_checkpoint(model, folder / "model.safetensors")
        video = make_video(folder / "clip.mp4", args.video_seconds, args.video_size)
        body, kind = multipart(video)
        log = folder / "server.log"
        for name, extra in SETTINGS.items():
            with server(checkpoint, extra, args.workers, log) as port:
                load(port, body, kind, max(clients), min(5.0, args.seconds))  # warm-up
                for n in clients:
                    r = load(port, body, kind, n, args.seconds)
                    rows.append((name, n, r))
                    print(f"batching {name}, {n} clients: {r}", file=sys.stderr, flush=True)
        size_kb = video.stat().st_size / 1024
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    clip = model.config
    lines = [
        f"Machine: {machine(cpu)}; the server's OMP_NUM_THREADS={threads}, "
        f"{args.workers} decoding threads. Other jobs may share the machine: compare rows of "
        "one run only.",
        "",
        f"Model: {args.variant} with random weights, {args.classes} classes "
        f"({clip.num_frames} frames of {clip.img_size} px, {clip.depth} blocks of width "
        f"{clip.embed_dim}; 1 clip x 3 crops a request). Video: {args.video_seconds:g} s of "
        f"{args.video_size} x {args.video_size} H.264 at 30 fps ({size_kb:.0f} KiB), uploaded "
        f"to POST /v1/predict by each client in turn for {args.seconds:g} s per row, after a "
        "warm-up. Batching on: the defaults (10 ms window, up to 24 views a pass); off: "
        "--max-batch 1.",
        "",
        "| batching | clients | requests | requests/s | p50 latency (ms) | p95 latency (ms) "
        "| requests per forward pass | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, r in rows:
        lines.append(
            f"| {name} | {n} | {r['requests']} | {r['rate']:.1f} | {r['p50']:.0f} | "
            f"{r['p95']:.0f} | {r['per_pass']:.2f} | {r['errors']} |"
        )
    cmd = command(
        "bench_serve.py",
        f"--variant {args.variant}" if args.variant != "timesformer_small" else "",
        f"--seconds {args.seconds:g}" if args.seconds != 20.0 else "",
        f"--workers {args.workers}" if args.workers != 2 else "",
        f"--clients {args.clients}" if clients != list(CLIENTS) else "",
        f"--video-seconds {args.video_seconds:g}" if args.video_seconds != 2.0 else "",
        f"--video-size {args.video_size}" if args.video_size != 96 else "",
    )
    cmd = f"OMP_NUM_THREADS={threads} {cmd}" if threads != "unset" else cmd
    text = result("timesformer serve under load (CPU)", cmd, lines)
    write_result(text, f"serve_{machine_kind(cpu)}.md", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
