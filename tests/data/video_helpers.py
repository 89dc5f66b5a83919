"""Helpers for the data tests: frames that carry their own index, and the codecs to try."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
import pytest

INDEX_BITS = 8  # frames up to 255
BLOCK = 8  # pixels per side of one bit's block: survives any lossy codec here
INDEX_H, INDEX_W = 16, 32  # 2 x 4 blocks


def index_frame(i: int, h: int = INDEX_H, w: int = INDEX_W) -> np.ndarray:
    """(h, w, 3) uint8 frame whose top-left 2 x 4 blocks of 8 px spell i in binary, plus a
    colour gradient elsewhere so codecs see texture."""
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    frame[..., 1] = np.linspace(0, 120, w, dtype=np.uint8)[None, :]
    frame[..., 2] = (i * 37) % 200
    for bit in range(INDEX_BITS):
        y, x = (bit // 4) * BLOCK, (bit % 4) * BLOCK
        frame[y : y + BLOCK, x : x + BLOCK] = 255 if (i >> bit) & 1 else 0
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index ``index_frame`` drew into ``frame`` (H, W, 3)."""
    value = 0
    for bit in range(INDEX_BITS):
        y, x = (bit // 4) * BLOCK, (bit % 4) * BLOCK
        block = frame[y + 2 : y + BLOCK - 2, x + 2 : x + BLOCK - 2].astype(float).mean()
        value |= int(block > 127) << bit
    return value


def read_indices(frames) -> list[int]:
    """Indices drawn in each frame of a (T, H, W, 3) tensor or array."""
    return [read_index(np.asarray(f)) for f in frames]


# (name, extension, encoder, pixel format, encoder options): every codec/container the tests try.
CODECS = [
    ("h264-mp4", ".mp4", "libx264", "yuv420p", {"g": "12", "bf": "3", "crf": "18"}),
    ("h264-mkv", ".mkv", "libx264", "yuv420p", {"g": "12", "bf": "3", "crf": "18"}),
    ("mpeg4-avi", ".avi", "mpeg4", "yuv420p", {"g": "12", "bf": "2", "qscale": "3"}),
    # XviD in AVI writes DivX-style packed B-frames (UCF101, HMDB51): timestamps out of order.
    ("xvid-packed-avi", ".avi", "libxvid", "yuv420p", {"g": "12", "bf": "1", "qscale": "2"}),
    (
        "xvid-packed-bf2-avi",
        ".avi",
        "libxvid",
        "yuv420p",
        # Closed GOPs: across an open one XviD's own frames repeat a frame, in every decoder.
        {"g": "12", "bf": "2", "qscale": "2", "flags": "+cgop"},
    ),
    ("h264-avi", ".avi", "libx264", "yuv420p", {"g": "12", "bf": "3", "crf": "18"}),
    ("mpeg2-mpg", ".mpg", "mpeg2video", "yuv420p", {"g": "12", "bf": "2", "qscale": "3"}),
    ("mpeg2-ts", ".ts", "mpeg2video", "yuv420p", {"g": "12", "bf": "2", "qscale": "3"}),
    ("theora-ogv", ".ogv", "libtheora", "yuv420p", {"g": "12"}),
    ("vp8-ogv", ".ogv", "libvpx", "yuv420p", {"g": "12", "crf": "10", "b": "1M"}),
    ("cinepak-avi", ".avi", "cinepak", "rgb24", {}),
    ("cinepak-mov", ".mov", "cinepak", "rgb24", {}),
    ("vp9-webm", ".webm", "libvpx-vp9", "yuv420p", {"g": "12", "crf": "20", "b": "0"}),
    ("mjpeg-avi", ".avi", "mjpeg", "yuvj420p", {"qscale": "3"}),
    ("ffv1-mkv", ".mkv", "ffv1", "yuv420p", {"g": "12"}),
]


def _ffmpeg_exe() -> str | None:
    """The ffmpeg executable of the imageio-ffmpeg test dependency, if installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


@functools.cache
def _ffmpeg_encoders() -> frozenset[str]:
    """Encoders the imageio-ffmpeg executable has (PyAV's wheel lacks some, libtheora)."""
    exe = _ffmpeg_exe()
    if exe is None:
        return frozenset()
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True)
    names = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
            names.add(parts[1])
    return frozenset(names)


def can_write(encoder: str) -> bool:
    from timesformer.data import available_encoders

    return bool(available_encoders([encoder])) or encoder in _ffmpeg_encoders()


def write_test_video(path: Path, frames, fps: int, encoder: str, pix_fmt: str, options: dict):
    """Write ``frames`` with PyAV, or with imageio-ffmpeg's ffmpeg when PyAV lacks the encoder."""
    from timesformer.data import available_encoders, write_video

    if available_encoders([encoder]):
        return write_video(path, frames, fps, encoder, pix_fmt=pix_fmt, options=options)
    h, w = frames[0].shape[:2]
    cmd = [_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", encoder, "-pix_fmt", pix_fmt]
    for key, value in options.items():
        cmd += [f"-{key}", str(value)]
    data = b"".join(np.ascontiguousarray(f, dtype=np.uint8).tobytes() for f in frames)
    subprocess.run([*cmd, str(path)], input=data, check=True)
    return Path(path)


def skip_without_encoder(encoder: str) -> None:
    if not can_write(encoder):
        pytest.skip(f"neither PyAV nor imageio-ffmpeg has the {encoder} encoder")
