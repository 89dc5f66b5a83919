"""Frame folders: a video stored as a folder of JPEG or PNG images, one per frame.

Something-Something-v2 in PySlowFast and many older pipelines extract each video into a folder
of numbered frames (``video1/img_00001.jpg``, ...). ``FrameFolderReader`` gives such a folder the
interface the datasets use from ``VideoReader`` (``num_frames``, ``fps``, ``retime``,
``get_frames``, ``iter_frames``), so a csv list or a class folder may name a frame folder wherever
it names a video file: ``open_video`` picks the reader by whether the path is a folder.

Frames are ordered by their names with the numbers in them compared as numbers (``img_2`` before
``img_10``), which also gives the right order for zero-padded names. A folder stores no frame
rate, so one is assumed: ``FRAME_FOLDER_FPS`` (30, the rate the reference samples Kinetics at)
unless given. Images are decoded with PyAV (FFmpeg's JPEG and PNG decoders), so no image library
is needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import av.error
import numpy as np
import torch

from timesformer.data.errors import VideoDecodeError
from timesformer.data.video import VideoReader, gather_frames, scan_folder

__all__ = [
    "FRAME_FOLDER_FPS",
    "IMAGE_EXTENSIONS",
    "DecodedVideo",
    "FrameFolderReader",
    "frame_files",
    "open_video",
    "scan_clips",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
# Frame folders carry no rate; 30 fps is what the window sampling's target_fps assumes, so a
# folder extracted at the video's own rate near 30 fps is sampled as the video would be.
FRAME_FOLDER_FPS = 30.0
_DECODE_ERRORS = (av.error.FFmpegError, OSError, EOFError, ValueError, StopIteration)


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    # Numbers compare as numbers, so unpadded names (img_2, img_10) keep their order.
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files (``IMAGE_EXTENSIONS``, any case) directly in ``folder``, in frame order;
    hidden files are not frames."""
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


class FrameFolderReader:
    """Random access to the frames of a frame folder, like ``VideoReader`` for a video file.

    Args:
        path: the folder of frames.
        fps: the frame rate the frames were extracted at (default ``FRAME_FOLDER_FPS``).
        threads: accepted for ``VideoReader``'s signature; images decode on one thread.

    Raises ``VideoDecodeError`` for a path that is not a folder or holds no image; a frame that
    does not decode raises it when asked for.
    """

    exact = True  # the frames are counted, not estimated from a header

    def __init__(
        self, path: str | os.PathLike[str], *, fps: float | None = None, threads: int = 1
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            reason = "no such folder" if not self.path.exists() else "not a frame folder"
            raise VideoDecodeError(self.path, reason)
        self.files = frame_files(self.path)
        if not self.files:
            raise VideoDecodeError(self.path, "no JPEG or PNG frame in this folder")
        self._fps = float(fps) if fps else FRAME_FOLDER_FPS
        self._size: tuple[int, int] | None = None

    def close(self) -> None:
        """Nothing to release: every image is opened and closed as it is read."""

    def __enter__(self) -> FrameFolderReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_frames(self) -> int:
        return len(self.files)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def duration(self) -> float:
        """Seconds: num_frames / fps."""
        return self.num_frames / self._fps

    @property
    def frame_times(self) -> np.ndarray:
        """(num_frames,) float64 times in seconds: frame i at i / fps."""
        return np.arange(self.num_frames, dtype=np.float64) / self._fps

    @property
    def variable_frame_rate(self) -> bool:
        return False

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the first frame."""
        if self._size is None:
            self._size = self._read(0).shape[:2]
        return self._size

    def retime(
        self, positions: Sequence[float] | np.ndarray, fps: float | None = None
    ) -> np.ndarray:
        """The nearest frame to each time ``position / fps`` (default fps: ``self.fps``), as
        ``VideoReader.retime`` gives it for constant-rate video (ties to the earlier frame).

        Returns (len(positions),) int64 frame indices."""
        t = np.asarray(positions, dtype=np.float64) / (fps or self._fps)
        nearest = np.ceil(t * self._fps - 0.5)
        return np.clip(nearest, 0, self.num_frames - 1).astype(np.int64)

    def get_frames(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decode the frames at ``indices`` (any order, repeats allowed).

        Returns a uint8 tensor (T, H, W, 3), RGB, in the order asked, T = len(indices)."""
        return gather_frames(
            self, indices, lambda unique: {int(i): self._read(int(i)) for i in unique}
        )

    def iter_frames(
        self, indices: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (index, (H, W, 3) uint8 RGB) for each wanted index (all when None), in
        increasing order; a frame that does not decode is left out, as ``VideoReader`` does."""
        wanted = range(self.num_frames) if indices is None else sorted(set(np.asarray(indices)))
        for i in wanted:
            if 0 <= i < self.num_frames:
                try:
                    yield int(i), self._read(int(i))
                except VideoDecodeError:
                    continue

    def _read(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of frame ``i``."""
        file = self.files[i]
        try:
            with av.open(str(file), mode="r") as container:
                frame = next(container.decode(video=0))
                return frame.to_ndarray(format="rgb24")
        except _DECODE_ERRORS as err:
            reason = str(getattr(err, "strerror", None) or err or type(err).__name__).strip()
            raise VideoDecodeError(file, reason.rstrip(".").lower() or "no image") from None


def open_video(
    path: str | os.PathLike[str], *, threads: int = 1
) -> VideoReader | FrameFolderReader:
    """A reader for ``path``: ``FrameFolderReader`` for a folder, ``VideoReader`` for a file."""
    if Path(path).is_dir():
        return FrameFolderReader(path, threads=threads)
    return VideoReader(path, threads=threads)


def scan_clips(folder: Path, extensions: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """(videos, other files) under ``folder`` as ``video.scan_folder`` gives them, where a
    folder that directly holds frame images counts as one video (a frame folder) and its images
    are not reported as other files. Both lists sorted."""
    videos, others = scan_folder(folder, extensions)
    # Images right in ``folder`` (a class folder) are no video: frame folders lie below it.
    image_dirs = {
        p.parent for p in others if p.suffix.lower() in IMAGE_EXTENSIONS and p.parent != folder
    }
    if not image_dirs:
        return videos, others
    kept = [p for p in others if p.parent not in image_dirs]
    return sorted(videos + list(image_dirs)), kept


class DecodedVideo:
    """A whole video decoded once and held in memory, read like the reader it came from.

    For small data sets read every epoch (the synthetic sets: a 16-frame 32x32 clip is 49 KB),
    where decoding, not the model, bounds a CPU's training speed. Sampling sees the same frames,
    frame times and rate as from the file (``retime`` is the source reader's).
    """

    def __init__(self, reader: VideoReader | FrameFolderReader) -> None:
        self.path = reader.path
        self._source = reader  # closed after this; its frame index and rate stay readable
        self.frames = reader.get_frames(np.arange(reader.num_frames))  # (T, H, W, 3) uint8
        self.fps = reader.fps
        self.exact = True

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    def retime(
        self, positions: Sequence[float] | np.ndarray, fps: float | None = None
    ) -> np.ndarray:
        """The source reader's ``retime``: (len(positions),) int64 frame indices."""
        return self._source.retime(positions, fps)

    def get_frames(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames at ``indices``, in the order asked (a copy)."""
        return self.frames[torch.as_tensor(np.asarray(indices), dtype=torch.long)]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> DecodedVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
