"""Re-encoding videos to a short side, as the reference prepared Kinetics (short side 256; 320 for
the high-resolution models), so that training decodes small files instead of full-size ones.

``resize_videos([(src, dst), ...], short_side=256, workers=8)`` writes each ``dst`` as H.264 in
MP4 whose shorter side is ``short_side`` pixels, the longer one scaled to keep the aspect ratio;
both rounded to even numbers, which the yuv420p pixel format needs. Frames are decoded with
``VideoReader`` (or ``FrameFolderReader`` for a frame folder), so they are written in display
order, upright (a phone's rotation is applied) and with square pixels; each keeps its
presentation time, so the frame rate, and a variable one, are preserved. Audio is dropped: the
models do not use it.

Decisions:

- A video whose short side is already at most ``short_side`` is not enlarged (scaling up adds
  bytes, not detail; the training transforms rescale anyway) but is still re-encoded, so that
  every output is the same fast-to-seek H.264 MP4 (UCF101's and HMDB51's XviD AVI files need a
  full decode pass to index otherwise).
- Resuming: a destination that exists is skipped. Every file is written under a temporary name in
  its folder and renamed when complete, so an existing destination is a complete one.
- A source that fails to decode (or yields no frame) is listed in ``ResizeReport.failed`` with
  the reason; nothing is written for it, and the others go on.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from timesformer.checkpoints.io import atomic_path
from timesformer.data.errors import VideoDecodeError
from timesformer.data.frames import open_video
from timesformer.data.writer import available_encoders

__all__ = ["ResizeReport", "resize_pairs", "resize_videos", "target_size"]

# libx264 in PyAV's wheels; FFmpeg's other H.264 encoders where a build lacks it; MPEG-4 last.
_ENCODERS = ("libx264", "libopenh264", "h264", "mpeg4")
_X264_OPTIONS = {"crf": "20", "preset": "fast"}  # visually lossless at a fraction of the size
_VFR_TIME_BASE = Fraction(1, 90000)  # the MPEG clock: fine enough for any frame time


@dataclass
class ResizeReport:
    """What ``resize_videos`` did: the sources written, those skipped because their destination
    existed, and (source, reason) for those that failed to decode or encode."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def target_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side ``short_side`` (never enlarged) and the aspect ratio
    kept, both even and at least 2."""
    scale = min(1.0, short_side / min(height, width))

    def even(x: float) -> int:
        return max(2, round(x / 2) * 2)

    return even(height * scale), even(width * scale)


def resize_videos(
    pairs: Sequence[tuple[Path, Path]],
    short_side: int,
    workers: int,
    progress: bool = True,
) -> ResizeReport:
    """Re-encode each (source, destination) so its short side is ``short_side`` (see the module
    docstring), in ``workers`` processes (0: in this process), with a progress bar over files.

    Destinations that exist are skipped; their folders are made as needed."""
    from tqdm.auto import tqdm

    if short_side < 2:
        raise ValueError(f"short side must be at least 2 pixels, got {short_side}")
    report = ResizeReport()
    todo: list[tuple[Path, Path]] = []
    for src, dst in pairs:
        if Path(dst).exists():
            report.skipped.append(Path(src))
        else:
            todo.append((Path(src), Path(dst)))
    pool, futures = None, {}
    if workers > 0 and todo:
        # fork where it is the platform's way (Linux, as DataLoader workers start), so a script
        # needs no __main__ guard; the pool starts all its processes at the first submit, before
        # the progress bar's monitor thread exists. Elsewhere spawn, the safe choice on macOS.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        context = multiprocessing.get_context(method)
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
        futures = {pool.submit(_resize_one, s, d, short_side, 1): s for s, d in todo}
    bar = tqdm(
        total=len(pairs),
        initial=len(report.skipped),
        desc="re-encoding",
        unit="video",
        disable=not progress,
    )
    try:
        with bar:
            if pool is None:
                for src, dst in todo:
                    _record(report, *_resize_one(src, dst, short_side, 0))
                    bar.update()
            for future in concurrent.futures.as_completed(futures):
                try:
                    src, error = future.result()
                except concurrent.futures.process.BrokenProcessPool as err:
                    # A worker killed (out of memory, a crash in FFmpeg): this file and the
                    # ones still queued fail; a second run retries them.
                    src, error = futures[future], f"the worker process died ({err})"
                _record(report, src, error)
                bar.update()
    finally:
        if pool is not None:  # an interrupt must not wait for the whole queue to be worked off
            pool.shutdown(wait=True, cancel_futures=True)
    order = {Path(src): i for i, (src, _) in enumerate(pairs)}
    report.done.sort(key=order.__getitem__)  # the order given, whichever worker finished first
    report.failed.sort(key=lambda item: order[item[0]])
    return report


def _record(report: ResizeReport, src: Path, error: str | None) -> None:
    if error is None:
        report.done.append(src)
    else:
        report.failed.append((src, error))


def _resize_one(src: Path, dst: Path, short_side: int, threads: int) -> tuple[Path, str | None]:
    """Write ``dst`` from ``src`` (``threads``: decoder threads, 0 lets FFmpeg choose); (src,
    None) on success, (src, reason) on failure."""
    try:
        with open_video(src, threads=threads) as reader:
            times = reader.frame_times
            cfr = not reader.variable_frame_rate
            rate = Fraction(reader.fps).limit_denominator(1001)
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst) as tmp:
                written = _encode(reader.iter_frames(), times, cfr, rate, tmp, short_side)
                if written == 0:
                    raise VideoDecodeError(src, "no frame decodes")
    except VideoDecodeError as err:
        return src, err.reason or str(err)
    except Exception as err:  # one odd file (an FFmpeg error, a full disk) must not stop the rest
        return src, f"{type(err).__name__}: {err}"
    return src, None


def _encode(
    frames: Iterator[tuple[int, np.ndarray]],
    times: np.ndarray,
    cfr: bool,
    rate: Fraction,
    tmp: Path,
    short_side: int,
) -> int:
    """Encode (index, (H, W, 3) uint8) ``frames`` into ``tmp`` (MP4), frame i at ``times[i]``
    seconds; returns the number of frames written."""
    codec = available_encoders(_ENCODERS)[0]
    time_base = 1 / rate if cfr else _VFR_TIME_BASE
    count, last_pts = 0, -1
    scaler = VideoReformatter()
    with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = None
        for i, rgb in frames:
            if stream is None:
                height, width = target_size(rgb.shape[0], rgb.shape[1], short_side)
                options = dict(_X264_OPTIONS) if codec == "libx264" else {}
                stream = out.add_stream(codec, rate=rate, options=options)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.time_base = time_base
                stream.time_base = time_base
                # One encoder thread whatever ``workers`` is: the processes are the parallelism,
                # and x264's choices then do not depend on how many threads it had.
                stream.codec_context.thread_count = 1
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            # A frame of another size (a resolution change mid-stream) is scaled to the first's.
            # One scaler thread: a forked worker would inherit a scaler whose threads are gone.
            frame = scaler.reformat(
                frame, width, height, "yuv420p", interpolation="AREA", threads=1
            )
            # Timestamps must increase strictly; rounding could make two equal.
            pts = max(round(float(times[i]) / float(time_base)), last_pts + 1)
            frame.pts, frame.time_base, last_pts = pts, time_base, pts
            out.mux(stream.encode(frame))
            count += 1
        if stream is not None:
            out.mux(stream.encode(None))
    return count


def resize_pairs(
    sources: Sequence[Path], src_root: Path, dst_root: Path
) -> list[tuple[Path, Path]]:
    """(source, destination) pairs that mirror ``sources`` under ``src_root`` into ``dst_root``
    with the extension ``.mp4`` (a frame folder ``a/b`` becomes ``a/b.mp4``)."""
    return [(s, (dst_root / s.relative_to(src_root)).with_suffix(".mp4")) for s in sources]
