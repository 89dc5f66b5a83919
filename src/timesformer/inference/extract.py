"""Feature extraction: the pooled embedding of every video of a collection, saved to disk.

For each video the *clip embedding* is the mean over its test views (K clips x crops, as
``Predictor`` reads them) of ``model.forward_features``: the final normed cls token, (D,). With
``windows`` the clip also slides over the whole video (``inference.windows``, one decoding pass)
and each window gets its own embedding, the mean over its crops, (W, D), with its time range in
seconds, (W, 2).

Layout of the output folder ``OUT``:

* ``OUT/features/<key>.safetensors``: tensors ``clip`` (D,), and with windows ``windows`` (W, D)
  and ``window_times`` (W, 2) [start, end) seconds, all float32; string metadata ``source``,
  ``key``, ``model``, ``checkpoint``, ``weights``, ``clip`` (JSON), ``precision``, ``stride``.
* or, in npy format, ``<key>.npy`` (D,), plus ``<key>.windows.npy`` (W, D) and
  ``<key>.window_times.npy`` (W, 2); the clip file is written last, so its presence means the
  video is complete.
* ``OUT/errors/<key>.json``: ``{"path", "error"}`` of a video that failed (removed when a later
  run succeeds).
* ``OUT/index.jsonl``: one line per input video, sorted by key: ``{"path", "key", "features",
  "dim", "windows"}`` or ``{"path", "key", "error"}``; videos no process has finished yet are left
  out. Every process rebuilds it from the files on disk when it ends, under a file lock, so the
  last one to end writes the complete index.
* ``OUT/extract.json``: the settings (model, a fingerprint of its weights, clip settings,
  precision, windows, format); a later run with other settings is refused, so that a folder never
  mixes features of different models or protocols.

``<key>`` names a video: its path relative to ``root`` when it is under it, else relative to the
folder given as input (for a list: the list's folder), else (a file given alone, or listed
outside that folder) ``<stem>-<8 hex digits of its absolute path><suffix>``. Keys are stable
across runs, so a rerun skips the videos already done (resume), and every process of a sharded
run computes the same sorted list and takes every n-th video.
All files are written to a temporary name and renamed, so an existing file is a complete one.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from timesformer.checkpoints.io import remove_temp, write_atomic, write_safetensors, write_text
from timesformer.data import ClipConfig, VideoClipDataset, VideoDecodeError
from timesformer.data.video import videos_under
from timesformer.errors import ConfigError
from timesformer.inference.predictor import default_clip_config
from timesformer.inference.windows import batched_window_views
from timesformer.model import TimeSformer
from timesformer.runtime import EvalItems, autocast_context, check_precision, inference_model

__all__ = [
    "ExtractSummary",
    "Extractor",
    "Features",
    "VideoItem",
    "collect_videos",
    "parse_shard",
    "run_extraction",
]

FORMATS = ("safetensors", "npy")
# Settings kept in extract.json but not compared: the same weights may lie at other paths.
_RECORD_ONLY = {"checkpoint"}


@dataclass
class Features:
    """The embeddings of one video: ``clip`` (D,); with windows ``windows`` (W, D) and
    ``window_times`` (W, 2) [start, end) seconds."""

    clip: torch.Tensor
    windows: torch.Tensor | None = None
    window_times: torch.Tensor | None = None


class Extractor:
    """Embeddings of video files with a ``TimeSformer``.

    Args:
        model: the model, run as an eval-mode copy on ``device`` that shares its weights.
        clip: test-time clip settings (default: ``default_clip_config(model)``).
        device: "cpu", "cuda:0", ... (default: the model's device).
        precision: "fp32", "bf16" or "fp16" (autocast; the embeddings are returned as float32),
            or "int8" (CPU only: the linear products in int8, on the copy: ``model`` keeps its
            device, mode and int8 setting).
        windows: also embed every window of a sliding window over the whole video.
        stride: seconds between window starts (default: one window length).
        batch: windows per forward pass.
    """

    def __init__(
        self,
        model: TimeSformer,
        *,
        clip: ClipConfig | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        windows: bool = False,
        stride: float | None = None,
        batch: int = 4,
    ) -> None:
        check_precision(precision)
        if batch < 1:
            raise ConfigError(f"the window batch must be at least 1, got {batch}")
        if stride is not None and not windows:
            raise ConfigError("a window stride needs windows")
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.model = inference_model(model, self.device, precision)  # model stays as it was
        self.clip = clip or default_clip_config(model)
        if windows and self.clip.sampling != "window":
            raise ConfigError(
                "windows need window sampling (frames x sampling rate); this model samples "
                "segments of the whole video: pass --sampling-rate to slide windows anyway"
            )
        self.precision = precision
        self.windows = windows
        self.stride = stride
        self.batch = batch

    @property
    def dim(self) -> int:
        return self.model.num_features

    @torch.no_grad()
    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """Normalised views (V, 3, T, H, W) -> their embeddings (V, D), float32 on the CPU."""
        with autocast_context(self.device, self.precision):
            feats = self.model.forward_features(views.to(self.device, non_blocking=True))
        return feats.float().cpu()

    def clip_embedding(self, views: torch.Tensor) -> torch.Tensor:
        """The test views of one video (V, 3, T, H, W) -> the clip embedding (D,)."""
        return self.embed(views).mean(0)

    def window_embeddings(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window of the video at ``path``: embeddings (W, D) and times (W, 2).

        Raises ``VideoDecodeError`` when the video does not decode at all."""
        crops = self.clip.num_crops
        out: list[torch.Tensor] = []
        times: list[tuple[float, float]] = []
        for views, spans in batched_window_views(
            self.clip, path, stride=self.stride, batch=self.batch
        ):
            feats = self.embed(views)  # (n * crops, D)
            out.append(feats.reshape(-1, crops, feats.shape[-1]).mean(1))
            times += spans
        return torch.cat(out), torch.tensor(times, dtype=torch.float32)

    def dataset(self, paths: Sequence[str | Path]) -> VideoClipDataset:
        """The test views of ``paths`` (unlabelled), as the evaluation reads them."""
        return VideoClipDataset([(p, -1) for p in paths], ["video"], mode="test", config=self.clip)

    def extract(self, path: str | Path) -> Features:
        """The features of one video; raises ``VideoDecodeError`` when it does not decode."""
        return self._complete(path, self.dataset([path]).load_clip(0))

    def extract_many(
        self, paths: Sequence[str | Path], *, workers: int = 0
    ) -> Iterator[tuple[str, Features | str]]:
        """(path, features or the error message) for ``paths`` in order; a video that fails does
        not stop the others. ``workers`` decode the test views ahead in other processes (the
        windows are decoded here, as a stream)."""
        if not paths:
            return
        loader = DataLoader(EvalItems(self.dataset(paths)), batch_size=None, num_workers=workers)
        for item in loader:
            if item["video"] is None:
                yield item["path"], item["error"]
                continue
            try:
                yield item["path"], self._complete(item["path"], item["video"])
            except VideoDecodeError as err:
                yield item["path"], str(err)

    def _complete(self, path: str | Path, views: torch.Tensor) -> Features:
        feats = Features(self.clip_embedding(views))
        if self.windows:
            feats.windows, feats.window_times = self.window_embeddings(path)
        return feats

    def weights_fingerprint(self) -> str:
        """A short digest of some of the model's weights (cls token, final norm, head): tells
        two checkpoints apart wherever their files lie (shards on several machines)."""
        digest = hashlib.sha1()
        m = self.model
        for t in (m.cls_token, m.norm.weight, m.norm.bias, m.head.weight, m.head.bias):
            digest.update(t.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def settings(self, checkpoint: str | None = None) -> dict[str, Any]:
        """What the features depend on: stored in ``extract.json`` (``checkpoint``, the file's
        path, only for the record)."""
        clip = dataclasses.asdict(self.clip)
        return {
            "model": self.model.config.name or self.model.config.attention,
            "dim": self.dim,
            "checkpoint": checkpoint,
            "weights": self.weights_fingerprint(),
            "clip": {k: list(v) if isinstance(v, tuple) else v for k, v in clip.items()},
            "precision": self.precision,
            "windows": self.windows,
            "stride": self.stride,
        }


# ---------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class VideoItem:
    """A video to extract and its stable output name (``key``, a relative POSIX path)."""

    path: Path
    key: str


def _loose_key(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem}-{digest}{path.suffix}"


def _absolute(path: Path) -> Path:
    # Not ``resolve``: a folder of symlinks to videos elsewhere keeps its own names.
    return Path(os.path.abspath(path))


def _key(path: Path, folder: Path | None, root: Path | None) -> str:
    absolute = _absolute(path)
    for base in (root, folder):
        if base is not None and absolute.is_relative_to(_absolute(base)):
            return absolute.relative_to(_absolute(base)).as_posix()
    return _loose_key(path)


def read_list(list_file: str | Path, root: str | Path | None = None) -> list[Path]:
    """The paths of a list file: one per line, blank lines and ``#`` comments skipped; relative
    paths are relative to ``root`` (default: the list's folder)."""
    list_file = Path(list_file)
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{list_file}: cannot read the video list: {err}") from None
    base = Path(root) if root is not None else list_file.parent
    lines = [ln.strip() for ln in text.splitlines()]
    return [base / ln for ln in lines if ln and not ln.startswith("#")]


def collect_videos(
    inputs: Iterable[str | Path] = (),
    *,
    list_file: str | Path | None = None,
    root: str | Path | None = None,
) -> list[VideoItem]:
    """Every video of ``inputs`` (files, or folders searched recursively by extension) and of
    ``list_file``, with its key, sorted by key; the same file given twice counts once.

    Files named on the command line must exist; a listed file that does not is kept, and fails
    when extracted (a large list should not stop on one missing entry). Raises ``ConfigError``
    when two different videos would get the same key, or nothing is given."""
    root_path = Path(root) if root is not None else None
    items: dict[str, VideoItem] = {}
    seen: set[Path] = set()

    def add(path: Path, folder: Path | None) -> None:
        absolute = _absolute(path)
        if absolute in seen:
            return
        seen.add(absolute)
        key = _key(path, folder, root_path)
        other = items.get(key)
        if other is not None:
            raise ConfigError(
                f"{other.path} and {path} would both be saved as {key!r}: give --root (their "
                f"common parent folder) or extract them into separate --out folders"
            )
        items[key] = VideoItem(path, key)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for video in videos_under(path):
                add(video, path)
        elif path.exists():
            add(path, None)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    if list_file is not None:
        base = root_path if root_path is not None else Path(list_file).parent
        for path in read_list(list_file, root):
            add(path, base)
    if not items:
        raise ConfigError("no videos given: name files or folders, or --list FILE")
    return [items[k] for k in sorted(items)]


def parse_shard(text: str | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """(index, count) of this process: ``text`` "i/n", else torchrun's RANK/WORLD_SIZE, else
    (0, 1)."""
    env = os.environ if env is None else env
    if text is None:
        try:
            index, count = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
        except ValueError:
            raise ConfigError("RANK and WORLD_SIZE must be integers (as torchrun sets)") from None
        where = "RANK/WORLD_SIZE"
    else:
        where = f"--shard {text}"
        try:
            a, b = text.split("/")
            index, count = int(a), int(b)
        except ValueError:
            raise ConfigError(f"--shard must be i/n (e.g. 0/4), got {text!r}") from None
    if count < 1:
        raise ConfigError(f"{where}: the shard count must be at least 1, got {count}")
    if not 0 <= index < count:
        raise ConfigError(f"{where}: the shard index must be in 0 .. {count - 1}, got {index}")
    return index, count


# ---------------------------------------------------------------------- the output folder


def feature_file(out: Path, key: str, fmt: str) -> Path:
    """The file whose presence marks the video ``key`` as done."""
    return out / "features" / f"{key}.{fmt}"


def _npy_extra(out: Path, key: str) -> tuple[Path, Path]:
    base = out / "features"
    return base / f"{key}.windows.npy", base / f"{key}.window_times.npy"


def _error_file(out: Path, key: str) -> Path:
    return out / "errors" / f"{key}.json"


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
            np.save(f, array)

    write_atomic(path, write)


def save_features(
    out: Path, item: VideoItem, feats: Features, fmt: str, meta: dict[str, str]
) -> Path:
    """Write one video's features (atomically; in npy, the clip file last) and return the file
    that marks it done."""
    target = feature_file(out, item.key, fmt)
    if fmt == "safetensors":
        tensors = {"clip": feats.clip}
        if feats.windows is not None:
            tensors["windows"] = feats.windows
            tensors["window_times"] = feats.window_times
        write_safetensors(target, tensors, meta)
    else:
        if feats.windows is not None:
            windows, times = _npy_extra(out, item.key)
            _save_npy(windows, feats.windows.numpy())
            _save_npy(times, feats.window_times.numpy())
        _save_npy(target, feats.clip.numpy())
    return target


def _remove_leftovers(out: Path, item: VideoItem, fmt: str) -> None:
    """Delete the temporary files an interrupted earlier run left for this video."""
    names = [feature_file(out, item.key, fmt), *_npy_extra(out, item.key)]
    for name in names:
        for tmp in name.parent.glob(f".{glob.escape(name.name)}.*.tmp"):
            remove_temp(tmp)


def _describe(path: Path, fmt: str, out: Path, key: str) -> dict[str, Any]:
    """``features``, ``dim`` and ``windows`` of a finished video, read from file headers."""
    row: dict[str, Any] = {"features": path.relative_to(out).as_posix()}
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            row["dim"] = int(f.get_slice("clip").get_shape()[0])
            if "windows" in f.keys():  # noqa: SIM118 (not a dict)
                row["windows"] = int(f.get_slice("windows").get_shape()[0])
    else:
        row["dim"] = int(np.load(path, mmap_mode="r").shape[0])
        windows, _ = _npy_extra(out, key)
        if windows.exists():
            row["windows"] = int(np.load(windows, mmap_mode="r").shape[0])
    return row


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (shared by every process writing the index)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not POSIX): the index write stays atomic
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_index(out: Path, items: Sequence[VideoItem], fmt: str) -> tuple[Path, int]:
    """Rebuild ``OUT/index.jsonl`` for ``items`` (every shard's) from the files on disk; returns
    its path and the number of lines. The lock makes the scan and the write one step, so the
    process that rebuilds last has seen every other process's finished work."""
    index = out / "index.jsonl"
    with _locked(out / ".index.lock"):
        lines: list[str] = []
        for item in items:
            row: dict[str, Any] = {"path": os.path.abspath(item.path), "key": item.key}
            done = feature_file(out, item.key, fmt)
            error = _error_file(out, item.key)
            if done.exists():
                try:
                    row.update(_describe(done, fmt, out, item.key))
                except Exception as err:  # a file replaced by hand, not one written here
                    row["error"] = f"{done}: unreadable feature file: {err}"
            elif error.exists():
                try:
                    row["error"] = json.loads(error.read_text())["error"]
                except (OSError, ValueError, KeyError, TypeError):
                    row["error"] = "failed (unreadable error record)"
            else:
                continue  # not finished (yet) by any process
            lines.append(json.dumps(row))
        write_text(index, "".join(f"{line}\n" for line in lines))
    return index, len(lines)


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in ``OUT/extract.json``, or refuse when it holds other ones."""
    record = out / "extract.json"
    if record.exists():
        try:
            old = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"{record}: unreadable ({err}); delete it to start over") from None
        keys = (settings.keys() | old.keys()) - _RECORD_ONLY
        diff = sorted(k for k in keys if settings.get(k) != old.get(k))
        if diff:
            k = diff[0]
            raise ConfigError(
                f"{record}: the features there were made with {k}={old.get(k)!r}, this run has "
                f"{settings.get(k)!r}; use another --out (or delete that folder) to change it"
            )
        return
    write_text(record, json.dumps(settings, indent=2) + "\n")


# ---------------------------------------------------------------------- the run


@dataclass
class ExtractSummary:
    """What one process did."""

    total: int = 0  # videos of this shard
    done: int = 0
    skipped: int = 0  # already extracted by an earlier run
    failed: int = 0
    index: Path | None = None
    indexed: int = 0  # lines of the index (all shards)
    errors: list[tuple[str, str]] = field(default_factory=list)


def run_extraction(
    extractor: Extractor,
    items: Sequence[VideoItem],
    out: str | Path,
    *,
    fmt: str = "safetensors",
    shard: tuple[int, int] = (0, 1),
    checkpoint: str | None = None,
    workers: int = 0,
    progress: bool = True,
    on_result: Callable[[VideoItem, str | None], None] | None = None,
) -> ExtractSummary:
    """Extract the videos of shard ``shard`` = (i, n) of ``items`` (items i, i + n, ...) into
    ``out``, skipping those already done, then rebuild the index of all ``items``.

    ``on_result(item, error or None)`` is called after each video this process extracts."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = extractor.settings(checkpoint) | {"format": fmt}
    check_settings(out, settings)
    meta = {
        "model": str(settings["model"]),
        "checkpoint": str(checkpoint),
        "weights": settings["weights"],
        "clip": json.dumps(settings["clip"]),
        "precision": extractor.precision,
        "stride": str(extractor.stride),
        "format": "timesformer-features/1",
    }
    index, count = shard
    mine = list(items)[index::count]
    todo = [it for it in mine if not feature_file(out, it.key, fmt).exists()]
    summary = ExtractSummary(total=len(mine), skipped=len(mine) - len(todo))
    desc = "extract" if count == 1 else f"extract {index}/{count}"
    bar = tqdm(total=len(todo), desc=desc, unit="video", disable=not progress)
    try:
        results = extractor.extract_many([it.path for it in todo], workers=workers)
        for item, (path, result) in zip(todo, results, strict=True):
            _remove_leftovers(out, item, fmt)
            error_file = _error_file(out, item.key)
            if isinstance(result, str):
                summary.failed += 1
                summary.errors.append((path, result))
                write_text(error_file, json.dumps({"path": path, "error": result}) + "\n")
            else:
                source = os.path.abspath(path)
                save_features(out, item, result, fmt, meta | {"source": source, "key": item.key})
                error_file.unlink(missing_ok=True)
                summary.done += 1
            bar.update()
            if on_result is not None:
                on_result(item, result if isinstance(result, str) else None)
    finally:
        bar.close()
        # Also after an interruption: the index then lists what is finished so far.
        summary.index, summary.indexed = write_index(out, items, fmt)
    return summary
