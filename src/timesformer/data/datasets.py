"""Video classification datasets: Kinetics-style CSV lists, a folder per class, SSv2-style JSON.

Every item is a dict::

    {"video": float (3, T, H, W)  (test mode: (V, 3, T, H, W), V = num_clips * num_crops),
     "label": int, "index": int, "path": str,
     "failed": list[str]}   # files that failed to decode before this one was used instead

A file that fails to decode is replaced by another video (random in training, the next one in
val/test mode) and never tried again by that process; its path travels with the sample, so the
main process can count failures even when DataLoader workers did the decoding (see
``timesformer.data.loader.DecodeFailures``). Training never stops for a bad file; a dataset in
which every file is bad stops with ``DatasetError``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from timesformer.data import sampling, transforms
from timesformer.data.errors import DatasetError, VideoDecodeError
from timesformer.data.frames import DecodedVideo, FrameFolderReader, open_video, scan_clips
from timesformer.data.prepare import index_videos, is_kinetics_header, read_kinetics_csv
from timesformer.data.video import VIDEO_EXTENSIONS, VideoReader, report_skipped
from timesformer.errors import ConfigError

__all__ = ["ClipConfig", "Mode", "VideoClipDataset", "read_class_names"]

_log = logging.getLogger(__name__)

Mode = Literal["train", "val", "test"]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ClipConfig:
    """How clips are sampled and transformed (defaults: the reference 8 x 224, rate 32 @ 30 fps).

    ``sampling="window"``: a window of ``num_frames * sampling_rate`` frames at ``target_fps``
    (Kinetics). ``sampling="segment"``: one frame per equal segment of the whole video (SSv2).
    Val mode takes one centred clip and the centre crop; test mode ``num_clips`` clips spread over
    the video x ``num_crops`` (1 or 3) crops. ``flip`` must stay off for data whose labels are
    left/right sensitive (SSv2, the synthetic motion set).
    """

    num_frames: int = 8
    sampling_rate: int = 32
    target_fps: float = 30.0
    sampling: Literal["window", "segment"] = "window"
    crop_size: int = 224
    train_scale: tuple[int, int] = (256, 320)
    test_scale: int | None = None  # short side before the test crops; None: crop_size
    flip: bool = True
    num_clips: int = 1
    num_crops: int = 3
    spread: Literal["uniform", "reference"] = "uniform"
    mean: tuple[float, float, float] = transforms.MEAN
    std: tuple[float, float, float] = transforms.STD

    def __post_init__(self) -> None:
        # ConfigError is a ValueError that the command line reports as one line. The types are
        # checked too: settings also come from checkpoint metadata, which may be damaged.
        for key in ("num_frames", "sampling_rate", "crop_size", "num_clips", "num_crops"):
            if not _integral(getattr(self, key)):
                raise ConfigError(
                    f"clip setting {key} must be an integer, got {getattr(self, key)!r}"
                )
        if self.test_scale is not None and not _integral(self.test_scale):
            raise ConfigError(
                f"clip setting test_scale must be an integer, got {self.test_scale!r}"
            )
        if not _sequence_of(self.train_scale, 2) or not all(_integral(v) for v in self.train_scale):
            raise ConfigError(
                f"clip setting train_scale must be 2 integers, got {self.train_scale!r}"
            )
        for key in ("mean", "std"):
            value = getattr(self, key)
            if not _sequence_of(value, 3) or not all(_finite_real(v) for v in value):
                raise ConfigError(f"clip setting {key} must be 3 numbers, got {value!r}")
        if not all(v > 0 for v in self.std):
            raise ConfigError(f"clip setting std must be positive, got {self.std!r}")
        if not _finite_real(self.target_fps):
            raise ConfigError(f"clip setting target_fps must be a number, got {self.target_fps!r}")
        for key in ("num_frames", "sampling_rate", "num_clips"):
            if getattr(self, key) < 1:
                raise ConfigError(f"clip setting {key} must be >= 1, got {getattr(self, key)}")
        if not self.target_fps > 0:
            raise ConfigError(f"clip setting target_fps must be positive, got {self.target_fps}")
        if self.crop_size < 1:
            raise ConfigError(f"clip setting crop_size must be >= 1, got {self.crop_size}")
        if self.sampling not in ("window", "segment"):
            raise ConfigError(f"sampling must be 'window' or 'segment', got {self.sampling!r}")
        if self.num_crops not in (1, 3):
            raise ConfigError(f"num_crops must be 1 or 3, got {self.num_crops}")
        lo, hi = self.train_scale
        if not self.crop_size <= lo <= hi:
            raise ConfigError(f"train_scale {self.train_scale} must satisfy crop <= min <= max")
        if self.test_scale is not None and self.test_scale < self.crop_size:
            raise ConfigError(f"test_scale {self.test_scale} is below the crop size")

    def test_time(self) -> dict[str, Any]:
        """The settings that prepare a clip at test time, as plain values (tuples as lists):
        all but training's scale jitter and flip. What exports and ``info`` show."""
        values = dataclasses.asdict(self)
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in values.items()
            if k not in ("train_scale", "flip")
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ClipConfig:
        """Test-time clip settings from a mapping as checkpoints store it (JSON: lists, perhaps
        keys of other versions). Unknown keys are ignored, lists become tuples, and a
        ``train_scale`` that is absent or below the crop, unused at test time, becomes
        (crop, crop). Raises ``ConfigError`` naming a setting of the wrong type or value."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {
            k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k in known
        }
        crop = values.get("crop_size", cls.crop_size)
        scale = values.get("train_scale")
        try:
            fits = scale is not None and crop <= scale[0]
        except (TypeError, IndexError, KeyError):
            fits = True  # malformed: left to the checks, which name it
        if not fits:
            values["train_scale"] = (crop, crop)
        return cls(**values)


def _integral(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _sequence_of(value: object, length: int) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == length


def _finite_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def read_class_names(source: PathLike | Sequence[str]) -> list[str]:
    """Class names from a list or a text file with one name per line."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"cannot read class list '{path}': {err}") from None
        names = [line.strip() for line in lines if line.strip()]
    else:
        names = [str(name) for name in source]
    if len(set(names)) != len(names):
        raise DatasetError("the class list names a class twice")
    return names


class VideoClipDataset(Dataset):
    """Clips of labelled videos, decoded with ``VideoReader`` (see the module docstring).

    Args:
        videos: (path, label) pairs; label -1 for unlabelled videos.
        class_names: names indexed by label.
        mode: "train" (random clip, scale jitter, crop, flip), "val" (one centred clip, centre
            crop) or "test" (num_clips x num_crops views).
        config: sampling and transform settings.
        decode_threads: FFmpeg threads per video (1 when DataLoader workers run in parallel).
    """

    def __init__(
        self,
        videos: Sequence[tuple[PathLike, int]],
        class_names: Sequence[str],
        mode: Mode = "train",
        config: ClipConfig | None = None,
        decode_threads: int = 1,
    ) -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be train, val or test, got {mode!r}")
        if not videos:
            raise DatasetError("the dataset holds no videos")
        self.paths = [Path(p) for p, _ in videos]
        self.labels = [int(label) for _, label in videos]
        self._class_names = list(class_names)
        bad = [lab for lab in self.labels if not -1 <= lab < len(self._class_names)]
        if bad:
            raise DatasetError(f"label {bad[0]} outside the {len(self._class_names)} classes")
        self.mode: Mode = mode
        self.config = config or ClipConfig()
        self.decode_threads = decode_threads
        self.failures: Counter[str] = Counter()  # in this process: path -> failed samples
        self._bad: set[int] = set()
        self._first_error: str | None = None
        self.seed = 0  # with (epoch, index) keys: see __getitem__
        # Keep each video decoded in memory after its first read (``DecodedVideo``): for small
        # sets read every epoch. Each process (each DataLoader worker) holds its own, up to
        # ``cache_limit_mb``; videos beyond it are read from their files, so a larger set than
        # the cache was meant for costs speed, not memory.
        self.cache_decoded = False
        self.cache_limit_mb = 2048.0
        self._decoded: dict[int, DecodedVideo] = {}
        self._decoded_bytes = 0
        self._rng_: np.random.Generator | None = None
        self._rng_pid = -1

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_csv(
        cls,
        csv: PathLike,
        root: PathLike | None = None,
        *,
        classes: PathLike | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> VideoClipDataset:
        """Kinetics-style list: one ``path label`` per line, separated by a space or a comma.

        Paths are relative to ``root`` (default: the list's folder); absolute paths stay as
        they are. Labels are integers or class names; ``classes`` (a list or a file with one
        name per line) fixes their order, else a ``classes.txt`` in the list's folder (``timesformer
        data prepare`` writes one), else names are sorted and integers named "0", "1", ...

        A Kinetics annotation CSV as published (header ``label,youtube_id,time_start,time_end,
        split``) is read too: each row names the clip ``{youtube_id}_{time_start:06d}_
        {time_end:06d}`` (any video extension), found by that name anywhere under ``root``
        (default: the list's folder, and the folder above it when the list is in an
        ``annotations/`` folder, as the official layout keeps it beside ``train/`` and
        ``val/``). Rows whose clip is not there are left out with one warning: a few per cent
        of Kinetics is always missing.
        """
        csv = Path(csv)
        base = Path(root) if root is not None else csv.parent
        try:
            text = csv.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"cannot read '{csv}': {err}") from None
        if classes is None and (csv.parent / "classes.txt").is_file():
            classes = csv.parent / "classes.txt"
        first = next((line for line in text.splitlines() if line.strip()), "")
        if is_kinetics_header(first):
            return cls._from_kinetics_csv(csv, root, classes, **kwargs)
        entries: list[tuple[Path, str]] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = _split_entry(line)
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise DatasetError(f"{csv}:{lineno}: expected 'path label', got {line!r}")
            path, label = parts[0].strip(), parts[1].strip()
            if not entries and label.lower() in ("label", "labels", "class", "class_name"):
                continue  # a header line
            entries.append((base / path, label))
        if not entries:
            raise DatasetError(f"'{csv}' lists no videos")
        names = read_class_names(classes) if classes is not None else None
        numeric = all(_is_int(label) for _, label in entries)
        if numeric:
            labels = [int(label) for _, label in entries]
            if names is None:
                names = [str(i) for i in range(max(labels) + 1)]
        else:
            if names is None:
                names = sorted({label for _, label in entries})
            lookup = {name: i for i, name in enumerate(names)}
            unknown = [label for _, label in entries if label not in lookup]
            if unknown:
                raise DatasetError(f"'{csv}': label {unknown[0]!r} is not in the class list")
            labels = [lookup[label] for _, label in entries]
        return cls([(p, lab) for (p, _), lab in zip(entries, labels, strict=True)], names, **kwargs)

    @classmethod
    def _from_kinetics_csv(
        cls,
        csv: Path,
        root: PathLike | None,
        classes: PathLike | Sequence[str] | None,
        **kwargs: Any,
    ) -> VideoClipDataset:
        """A Kinetics annotation CSV (see ``from_csv``); unlabelled rows (the test list) get -1."""
        rows = read_kinetics_csv(csv)
        roots = [Path(root)] if root is not None else [csv.parent]
        if root is None and csv.parent.name == "annotations":
            roots.append(csv.parent.parent)
        videos: dict[str, list[Path]] = {}
        for folder in roots:
            for stem, paths in index_videos(folder).items():
                videos.setdefault(stem, []).extend(
                    p for p in paths if p not in videos.get(stem, [])
                )
        labelled = sorted({label for _, label, _ in rows if label})
        names = read_class_names(classes) if classes is not None else labelled
        lookup = {name: i for i, name in enumerate(names)}
        unknown = [label for label in labelled if label not in lookup]
        if unknown:
            raise DatasetError(f"'{csv}': label {unknown[0]!r} is not in the class list")
        found: list[tuple[Path, int]] = []
        missing: list[str] = []
        for stem, label, split in rows:
            paths = videos.get(stem, [])
            # Prefer the clip in its split's or its label's folder should a name occur twice.
            hint = {split, label, label.replace(" ", "_") if label else None}
            chosen = next((p for p in paths if hint & set(p.parent.parts[-2:])), None)
            if chosen is None and paths:
                chosen = paths[0]
            if chosen is None:
                missing.append(stem)
            else:
                found.append((chosen, lookup[label] if label else -1))
        where = " or ".join(str(f) for f in roots)
        if not found:
            raise DatasetError(
                f"'{csv}': none of its {len(rows)} Kinetics clips (e.g. {missing[0]}.mp4) is "
                f"under {where}"
            )
        if missing:
            _log.warning(
                "%s: %d of %d Kinetics clips are not under %s (left out), e.g. %s.mp4",
                csv,
                len(missing),
                len(rows),
                where,
                missing[0],
            )
        return cls(found, names, **kwargs)

    @classmethod
    def from_folder(
        cls,
        root: PathLike,
        *,
        classes: PathLike | Sequence[str] | None = None,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
        **kwargs: Any,
    ) -> VideoClipDataset:
        """One sub-folder per class (``root/CLASS/**/*.mp4``).

        Class order: ``classes`` if given, else a ``classes.txt`` in ``root`` or its parent (the
        synthetic set writes one beside its train/ and val/ splits), else sorted folder names.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"'{root}' is not a folder")
        if classes is None:
            for candidate in (root / "classes.txt", root.parent / "classes.txt"):
                if candidate.is_file():
                    classes = candidate
                    break
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        names = read_class_names(classes) if classes is not None else folders
        lookup = {name: i for i, name in enumerate(names)}
        stray = [f for f in folders if f not in lookup]
        if stray:
            known = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise DatasetError(f"'{root / stray[0]}' is not a class of the class list ({known})")
        videos: list[tuple[Path, int]] = []
        skipped: list[Path] = []
        for folder in folders:
            found, others = scan_clips(root / folder, extensions)  # frame folders too
            videos += [(path, lookup[folder]) for path in found]
            skipped += others
        if not videos:
            raise DatasetError(
                f"no videos under '{root}' (none of its files has a video extension; "
                f"{len(skipped)} other files)"
            )
        report_skipped(root, skipped)
        return cls(videos, names, **kwargs)

    @classmethod
    def from_ssv2(
        cls,
        json_labels: PathLike,
        video_dir: PathLike,
        label_map_json: PathLike,
        *,
        ext: str = ".webm",
        **kwargs: Any,
    ) -> VideoClipDataset:
        """Something-Something-v2 layout: ``json_labels`` is a list of ``{"id", "template"}``
        (the test list has no template: label -1), ``label_map_json`` maps each template (without
        the square brackets) to its class index, videos are ``video_dir/ID.webm``.

        Defaults to segment sampling and no flip (SSv2 labels are left/right sensitive).
        """
        label_map = _read_json(label_map_json)
        items = _read_json(json_labels)
        if not isinstance(label_map, dict) or not isinstance(items, list):
            raise DatasetError("SSv2 files: expected a list of videos and a template -> index map")
        try:
            by_index = {int(v): str(k) for k, v in label_map.items()}
            names = [by_index[i] for i in range(len(by_index))]
        except (KeyError, ValueError):
            raise DatasetError(f"'{label_map_json}': indices must be 0..N-1") from None
        lookup = {name: i for i, name in enumerate(names)}
        videos = []
        for item in items:
            if not isinstance(item, dict) or "id" not in item:
                raise DatasetError(f"'{json_labels}': every entry needs an 'id'")
            template = item.get("template")
            if template is None:
                label = -1
            else:
                key = str(template).replace("[", "").replace("]", "")
                if key not in lookup:
                    raise DatasetError(f"'{json_labels}': template {key!r} is not in the label map")
                label = lookup[key]
            videos.append((Path(video_dir) / f"{item['id']}{ext}", label))
        kwargs.setdefault("config", ClipConfig(sampling="segment", flip=False))
        return cls(videos, names, **kwargs)

    # ------------------------------------------------------------------ items

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self._class_names)

    def relabel(self, class_names: Sequence[str]) -> None:
        """Number the labels by ``class_names`` (a model's classes, in its order) instead of
        this data set's own list, matching them by name. Every class that labels a video must
        be in ``class_names``; it may hold more."""
        names = list(class_names)
        lookup = {name: i for i, name in enumerate(names)}
        used = sorted({lab for lab in self.labels if lab >= 0})
        missing = [self._class_names[lab] for lab in used if self._class_names[lab] not in lookup]
        if missing:
            raise DatasetError(
                f"class {missing[0]!r} of the data is not one of the {len(names)} classes given"
            )
        self.labels = [lookup[self._class_names[lab]] if lab >= 0 else lab for lab in self.labels]
        self._class_names = names

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``dataset[i]``, or ``dataset[(epoch, i)]``: then the sample's randomness depends only on
        (``self.seed``, epoch, i), whichever process or worker draws it, so a training run is the
        same with one process or many and after a resume (the trainer's sampler yields these)."""
        if isinstance(key, tuple):
            epoch, index = key
            rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        else:
            index, rng = key, self._rng()
        failed: list[str] = []
        i = int(index)
        while True:
            known_bad = i in self._bad
            if not known_bad:
                try:
                    video = self.load_clip(i, rng)
                except VideoDecodeError as err:
                    self._bad.add(i)
                    self._first_error = self._first_error or str(err)
                else:
                    path = str(self.paths[i])
                    return {
                        "video": video,
                        "label": self.labels[i],
                        "index": i,
                        "path": path,
                        "failed": failed,
                    }
            # Report the video asked for, and any that fails now; not the known-bad ones that
            # the search for a replacement passes over (they are reported when asked for).
            if not known_bad or i == int(index):
                failed.append(str(self.paths[i]))
                self.failures[str(self.paths[i])] += 1
            i = self._replacement(i, rng)

    def load_clip(self, index: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The clip (or test views) of video ``index``; raises ``VideoDecodeError``, no retry."""
        rng = rng or self._rng()
        cfg = self.config
        with self._open(index) as reader:
            was_exact = reader.exact
            try:
                frames = self._read(reader, rng)
            except VideoDecodeError:
                if was_exact or not reader.exact:
                    raise
                # Some frames the packets promised did not decode and the reader has numbered
                # the ones that do: sample again from those.
                frames = self._read(reader, rng)
        if self.mode == "test":
            views = [
                transforms.test_views(
                    f, cfg.crop_size, cfg.num_crops, cfg.test_scale, cfg.mean, cfg.std
                )
                for f in frames.split(cfg.num_frames)
            ]
            return torch.cat(views)
        if self.mode == "train":
            return transforms.train_transform(
                frames, rng, cfg.crop_size, cfg.train_scale, cfg.flip, cfg.mean, cfg.std
            )
        return transforms.val_transform(frames, cfg.crop_size, cfg.test_scale, cfg.mean, cfg.std)

    def _open(self, index: int) -> VideoReader | FrameFolderReader | DecodedVideo:
        """A reader of video ``index``: the decoded copy kept in memory with ``cache_decoded``."""
        if not self.cache_decoded:
            return open_video(self.paths[index], threads=self.decode_threads)
        if index not in self._decoded:
            if self._decoded_bytes >= self.cache_limit_mb * 2**20:
                return open_video(self.paths[index], threads=self.decode_threads)
            with open_video(self.paths[index], threads=self.decode_threads) as reader:
                try:
                    decoded = DecodedVideo(reader)
                except VideoDecodeError:
                    if not reader.exact:
                        raise
                    # Frames the packets promised did not decode: the reader has numbered
                    # the ones that do, so read those.
                    decoded = DecodedVideo(reader)
            self._decoded[index] = decoded
            self._decoded_bytes += decoded.frames.nbytes
        return self._decoded[index]

    def _read(self, reader: VideoReader, rng: np.random.Generator) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames of the clip, or of all test clips one after the other."""
        if self.mode == "test":
            clips = [self._indices(reader, rng, k) for k in range(self.config.num_clips)]
            return reader.get_frames(np.concatenate(clips))
        return reader.get_frames(self._indices(reader, rng, None))

    def _indices(
        self, reader: VideoReader, rng: np.random.Generator, clip_idx: int | None
    ) -> np.ndarray:
        """Frame indices of one clip: random (train), centred (val) or test clip ``clip_idx``."""
        cfg, n = self.config, reader.num_frames
        if cfg.sampling == "segment":
            return sampling.segment_indices(
                n, cfg.num_frames, rng if self.mode == "train" else None
            )
        fps = reader.fps
        if self.mode == "train":
            pos = sampling.train_indices(
                n, cfg.num_frames, cfg.sampling_rate, rng, fps, cfg.target_fps
            )
        else:
            k, count = (0, 1) if clip_idx is None else (clip_idx, cfg.num_clips)
            pos = sampling.test_indices(
                n, cfg.num_frames, cfg.sampling_rate, k, count, fps, cfg.target_fps, cfg.spread
            )
        return reader.retime(pos)

    def _replacement(self, failed_index: int, rng: np.random.Generator) -> int:
        """Another video not known to be bad: random in training, the next one otherwise."""
        n = len(self)
        if len(self._bad) >= n:
            raise DatasetError(
                f"every video tried failed to decode: {len(self._bad)} of {n}; "
                f"first error: {self._first_error}"
            )
        if self.mode == "train":
            for _ in range(32):
                j = int(rng.integers(n))
                if j not in self._bad:
                    return j
            good = [j for j in range(n) if j not in self._bad]
            return good[int(rng.integers(len(good)))]
        j = (failed_index + 1) % n
        while j in self._bad:
            j = (j + 1) % n
        return j

    def _rng(self) -> np.random.Generator:
        # One generator per process, seeded from torch's seed: DataLoader gives every worker its
        # own (base_seed + worker_id, a new base_seed each epoch), torch.manual_seed fixes it.
        pid = os.getpid()
        if self._rng_ is None or self._rng_pid != pid:
            self._rng_ = np.random.default_rng(torch.initial_seed())
            self._rng_pid = pid
        return self._rng_

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} videos, {self.num_classes} classes, "
            f"mode={self.mode!r}, {self.config.num_frames}x{self.config.crop_size})"
        )


def _split_entry(line: str) -> list[str]:
    """``path label`` split at the last comma, or else at the last whitespace. A path that
    holds a comma (a Kinetics class folder may) followed by a space and an integer label is
    split at the space: a comma-separated label never holds whitespace before a number."""
    if "," in line:
        parts = line.rsplit(",", 1)
        spaced = line.rsplit(None, 1)
        if (
            len(spaced) == 2
            and _is_int(spaced[1])
            and not _is_int(parts[1].strip())
            and len(parts[1].split()) > 1
        ):
            return spaced
        return parts
    return line.rsplit(None, 1)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _read_json(path: PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read '{path}': {err}") from None
