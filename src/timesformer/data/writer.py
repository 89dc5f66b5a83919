"""Writing videos with PyAV (the synthetic data set, test fixtures, benchmarks).

Files are written under a temporary name in the same folder and renamed when complete, so a crash
or an interrupt never leaves a half-written video under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from timesformer.checkpoints.io import set_usual_mode

__all__ = ["available_encoders", "write_video"]


def available_encoders(names: Iterable[str]) -> list[str]:
    """The encoders among ``names`` that this PyAV build has."""
    found = []
    for name in names:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        found.append(name)
    return found


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    fps: float = 30.0,
    codec: str = "libx264",
    *,
    pix_fmt: str | None = None,
    options: Mapping[str, str] | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    container_format: str | None = None,
    container_options: Mapping[str, str] | None = None,
) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) into ``path``.

    Args:
        fps: nominal frame rate.
        codec: an FFmpeg encoder name (``libx264``, ``mpeg4``, ``mpeg2video``, ``cinepak`` ...).
        pix_fmt: the encoder's pixel format (default yuv420p; rgb24 for cinepak).
        options: encoder options, e.g. ``{"crf": "10", "preset": "fast"}`` for libx264.
        pts: presentation timestamps in ``time_base`` units, one per frame (variable frame rate);
            default: frame i at i / fps.
        rotation: display-matrix rotation, counter-clockwise degrees (what phones record).
        container_format: FFmpeg muxer name when the extension does not say it.
        container_options: muxer options, e.g. ``{"movflags": "+faststart"}``.
    """
    path = Path(path)
    data = [np.asarray(f.numpy() if isinstance(f, torch.Tensor) else f) for f in frames]
    if not data:
        raise ValueError("no frames to write")
    h, w = data[0].shape[:2]
    if pix_fmt is None:
        pix_fmt = "rgb24" if codec == "cinepak" else "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    fmt = container_format or _format_for(path.suffix)
    try:
        with av.open(tmp_name, mode="w", format=fmt, options=dict(container_options or {})) as out:
            stream = out.add_stream(codec, rate=rate, options=dict(options or {}))
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            if time_base is not None:
                stream.codec_context.time_base = time_base
                stream.time_base = time_base
            if rotation:
                stream.set_display_rotation(rotation)
            for i, array in enumerate(data):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                if pts is not None:
                    frame.pts = int(pts[i])
                    frame.time_base = time_base or 1 / rate
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        set_usual_mode(Path(tmp_name))  # mkstemp's file is private
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _format_for(suffix: str) -> str | None:
    # mkstemp keeps the suffix, so FFmpeg can guess most formats; these it cannot.
    return {".ogv": "ogg", ".mpg": "mpeg", ".mpeg": "mpeg", ".ts": "mpegts"}.get(suffix.lower())


@contextlib.contextmanager
def new_data_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write a data set into; it becomes ``out`` (replacing
    an old one with ``overwrite``) when the block ends, and is removed if the block raises, so
    ``out`` is never half-written.

    Raises:
        TimesformerError: ``out`` is a file, a non-empty folder without ``overwrite``, or its
            parent cannot be made.
    """
    from timesformer.errors import TimesformerError

    if out.exists() and not out.is_dir():
        # Not even with overwrite: a file there is not a data set this function made.
        raise TimesformerError(f"'{out}' is a file, not a folder")
    if out.exists() and not overwrite and any(out.iterdir()):
        raise TimesformerError(f"'{out}' already exists (pass overwrite=True to replace it)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TimesformerError(f"'{out}': cannot make its folder ({err})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(trash)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_h264(path: Path, frames: np.ndarray, fps: float, crf: int = 0) -> None:
    """A synthetic set's clip: uint8 (T, H, W, 3) frames as H.264 at quality ``crf`` (0:
    lossless), the one encoding both synthetic generators write."""
    write_video(path, frames, fps, "libx264", options={"crf": str(crf), "preset": "medium"})
