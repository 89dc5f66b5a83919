"""Lists for ``data.format=csv`` from the layouts in which the public data sets are published.

``read_kinetics``, ``read_ssv2``, ``read_ucf101`` and ``read_hmdb51`` each read one official
layout (annotation files and video files under one folder) and return a ``Prepared``: the class
names, the (video, label) pairs of the train and val splits, and the videos that the annotations
name but that are not there. ``write_prepared`` writes ``train.csv``, ``val.csv`` (one
``path label`` per line, label = line index in ``classes.txt``), ``classes.txt`` and
``missing.txt``; with a short side it first re-encodes the videos into ``OUT/videos/``.
``timesformer data prepare`` is the command line of ``prepare``.

The layouts, as their publishers ship them:

- Kinetics-400/600/700 (https://github.com/cvdfoundation/kinetics-dataset, the annotation CSVs
  of https://deepmind.com/research/open-source/kinetics): ``annotations/{train,val}.csv`` with a
  header ``label,youtube_id,time_start,time_end,split`` (some releases add ``is_cc``); clips
  named ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``, flat in ``train/``, ``val/`` or in
  per-label folders (the ActivityNet crawler's). A few per cent of the clips are always missing
  (videos taken down from YouTube).
- Something-Something v2 (https://developer.qualcomm.com/software/ai-datasets/something-something):
  ``labels.json`` (``{"template": "index"}``), ``train.json`` and ``validation.json`` (lists of
  ``{"id", "label", "template", "placeholders"}``), videos ``ID.webm`` in one folder.
- UCF101 (https://www.crcv.ucf.edu/data/UCF101.php): ``UCF-101/CLASS/v_CLASS_gNN_cMM.avi`` and
  ``ucfTrainTestlist/`` with ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
  (``CLASS/file.avi LABEL``) and ``testlist0N.txt`` (``CLASS/file.avi``), N = 1, 2, 3.
- HMDB51 (https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/):
  ``hmdb51_org/CLASS/*.avi`` and ``testTrainMulti_7030_splits/CLASS_test_splitN.txt``, each line
  ``file.avi K`` with K = 1 train, 2 test, 0 not used.

Videos are found by name anywhere under the source folder, so an extracted archive may keep
its own folder names.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timesformer.data.errors import DatasetError
from timesformer.data.video import VIDEO_EXTENSIONS
from timesformer.names import DATASETS

__all__ = [
    "DATASETS",
    "KINETICS_FIELDS",
    "PrepareSummary",
    "Prepared",
    "index_videos",
    "is_kinetics_header",
    "kinetics_file_stem",
    "prepare",
    "read_hmdb51",
    "read_kinetics",
    "read_kinetics_csv",
    "read_ssv2",
    "read_ucf101",
    "write_prepared",
]

KINETICS_FIELDS = ("label", "youtube_id", "time_start", "time_end", "split")
SPLITS = ("train", "val")
PathLike = str | os.PathLike[str]


@dataclass
class Prepared:
    """One data set read from its official layout.

    ``splits`` maps "train" and "val" to (video file, label) pairs, labels indexing
    ``classes``; ``missing`` holds one ``SPLIT NAME`` line per listed video not found;
    ``sources`` the annotation files read, for the summary.
    """

    name: str
    classes: list[str]
    splits: dict[str, list[tuple[Path, int]]]
    missing: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)


@dataclass
class PrepareSummary:
    """What ``write_prepared`` wrote: videos per split, classes, missing and failed videos."""

    out: Path
    counts: dict[str, int]
    num_classes: int
    missing: int
    failed: list[tuple[Path, str]] = field(default_factory=list)
    reencoded: int = 0
    skipped: int = 0

    def lines(self, name: str) -> list[str]:
        """The summary the command prints."""
        split = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        lines = [f"{name}: {split} videos, {self.num_classes} classes; {self.missing} missing"]
        if self.missing:
            lines[0] += f" (listed in {self.out / 'missing.txt'})"
        if self.reencoded or self.skipped or self.failed:
            lines.append(
                f"re-encoded {self.reencoded}, already done {self.skipped}, "
                f"failed {len(self.failed)}"
                + (f" (listed in {self.out / 'failed.txt'})" if self.failed else "")
            )
        files = ", ".join(str(self.out / n) for n in ("train.csv", "val.csv", "classes.txt"))
        lines.append(f"wrote {files}")
        return lines


# ------------------------------------------------------------------------------ finding files


def index_videos(
    root: Path,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    progress: bool = False,
    exclude: PathLike | None = None,
) -> dict[str, list[Path]]:
    """Every video file under ``root`` (by extension, any case; hidden files skipped), keyed
    by its name without the extension; folders are walked in sorted order, ``exclude`` (an
    output folder inside ``root``, whose copies must not stand for the sources) is not."""
    from tqdm.auto import tqdm

    suffixes = {e.lower() for e in extensions}
    skip = Path(os.path.abspath(exclude)) if exclude is not None else None
    found: dict[str, list[Path]] = {}
    with tqdm(desc="finding videos", unit="file", disable=not progress) as bar:
        for folder, dirs, files in os.walk(root, followlinks=True):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".") and (skip is None or Path(folder) / d != skip)
            )
            for name in sorted(files):
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in suffixes and not name.startswith("."):
                    found.setdefault(stem, []).append(Path(folder) / name)
            bar.update(len(files))
    return found


def _pick(candidates: list[Path] | None, prefer: Iterable[str]) -> Path | None:
    """The candidate in a folder named by ``prefer`` (its class, its split), else the first."""
    if not candidates:
        return None
    wanted = set(prefer)
    for path in candidates:
        if wanted & set(path.parent.parts[-2:]):
            return path
    return candidates[0]


def _first_file(src: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` (relative to ``src``) that is a file; else a one-line error."""
    for name in names:
        if (src / name).is_file():
            return src / name
    raise DatasetError(f"{src}: no {what} (looked for {', '.join(names)})")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read '{path}': {err}") from None


def _require_folder(src: Path) -> None:
    if not src.is_dir():
        raise DatasetError(f"{src}: no such folder")


# ------------------------------------------------------------------------------ Kinetics


def is_kinetics_header(line: str) -> bool:
    """Whether a CSV line is the header of a Kinetics annotation file (``youtube_id``,
    ``time_start`` and ``time_end`` among its fields; ``label`` is absent in old test lists)."""
    fields = {f.strip().strip('"').lower() for f in line.split(",")}
    return {"youtube_id", "time_start", "time_end"} <= fields


def kinetics_file_stem(youtube_id: str, time_start: int, time_end: int) -> str:
    """The clip's file name without extension, as the Kinetics download scripts name it."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def read_kinetics_csv(path: Path) -> list[tuple[str, str | None, str | None]]:
    """(file stem, label or None, split or None) for each row of a Kinetics annotation CSV.

    Raises ``DatasetError`` naming the file (and line) for a missing column or a bad time."""
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text))
    header = [f.strip().lower() for f in reader.fieldnames or []]
    if not is_kinetics_header(",".join(header)):
        raise DatasetError(
            f"{path}: not a Kinetics annotation file (its header should be "
            f"{','.join(KINETICS_FIELDS)})"
        )
    reader.fieldnames = header
    rows: list[tuple[str, str | None, str | None]] = []
    for row in reader:
        line = reader.line_num
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (TypeError, ValueError):
            raise DatasetError(
                f"{path}:{line}: time_start and time_end must be numbers, got "
                f"{row.get('time_start')!r}, {row.get('time_end')!r}"
            ) from None
        youtube_id = (row.get("youtube_id") or "").strip()
        if not youtube_id:
            raise DatasetError(f"{path}:{line}: empty youtube_id")
        label = row.get("label")
        split = row.get("split")
        rows.append(
            (
                kinetics_file_stem(youtube_id, start, end),
                label.strip() if label else None,
                split.strip() if split else None,
            )
        )
    if not rows:
        raise DatasetError(f"{path}: lists no videos")
    return rows


def _kinetics_annotation(src: Path, split: str) -> Path:
    names = ["train"] if split == "train" else ["val", "validate"]
    candidates = [f"{d}{n}.csv" for d in ("annotations/", "") for n in names]
    for folder in (src / "annotations", src):
        # Older releases name them kinetics_400_train.csv, kinetics-600_val.csv ...
        for n in names:
            candidates += [
                str(p.relative_to(src)) for p in sorted(folder.glob(f"kinetics*[_-]{n}.csv"))
            ]
    return _first_file(src, candidates, f"Kinetics annotation file for the {split} split")


def read_kinetics(
    src: PathLike, *, progress: bool = False, exclude: PathLike | None = None
) -> Prepared:
    """Kinetics-400/600/700 under ``src``: the train and val annotation CSVs (in
    ``src/annotations/`` or ``src``) and the clips anywhere under ``src``, flat or in per-label
    folders. Classes: the labels, sorted (the usual Kinetics class order). Missing clips are
    listed, never an error; a split of which no clip is found is."""
    src = Path(os.path.abspath(src))
    _require_folder(src)
    files = {split: _kinetics_annotation(src, split) for split in SPLITS}
    rows = {split: read_kinetics_csv(files[split]) for split in SPLITS}
    for split in SPLITS:
        unlabelled = [r for r in rows[split] if not r[1]]
        if unlabelled:
            raise DatasetError(f"{files[split]}: a row without a label ({unlabelled[0][0]})")
    classes = sorted({r[1] for split in SPLITS for r in rows[split] if r[1]})
    lookup = {name: i for i, name in enumerate(classes)}
    videos = index_videos(src, progress=progress, exclude=exclude)
    prepared = Prepared("kinetics", classes, {}, sources=list(files.values()))
    for split in SPLITS:
        pairs = []
        for stem, label, _ in rows[split]:
            assert label is not None
            folders = {split, "validate" if split == "val" else split, label}
            folders.add(label.replace(" ", "_"))
            path = _pick(videos.get(stem), folders)
            if path is None:
                prepared.missing.append(f"{split} {stem}.mp4")
            else:
                pairs.append((path, lookup[label]))
        if not pairs:
            raise DatasetError(
                f"{files[split]}: none of its {len(rows[split])} videos is under {src}"
            )
        prepared.splits[split] = pairs
    return prepared


# ------------------------------------------------------------------------------ SSv2


def read_ssv2(
    src: PathLike, *, progress: bool = False, exclude: PathLike | None = None
) -> Prepared:
    """Something-Something v2 under ``src``: ``labels.json``, ``train.json`` and
    ``validation.json`` (in ``src/labels/`` or ``src``; the older names
    ``something-something-v2-*.json`` too) and the videos ``ID.webm`` anywhere under ``src``.
    Classes in the order of ``labels.json``'s indices. Its labels are left/right sensitive:
    train with ``data.flip=false``."""
    src = Path(os.path.abspath(src))
    _require_folder(src)

    def find(name: str) -> Path:
        names = [
            f"{d}{p}{name}.json" for d in ("labels/", "") for p in ("", "something-something-v2-")
        ]
        return _first_file(src, names, f"Something-Something v2 {name}.json")

    labels_file = find("labels")
    files = {"train": find("train"), "val": find("validation")}
    label_map = _json(labels_file)
    if not isinstance(label_map, dict) or not label_map:
        raise DatasetError(f"{labels_file}: expected an object of template -> index")
    try:
        by_index = {int(v): str(k) for k, v in label_map.items()}
        classes = [by_index[i] for i in range(len(label_map))]
    except (KeyError, ValueError, TypeError):
        raise DatasetError(f"{labels_file}: the indices must be 0..{len(label_map) - 1}") from None
    lookup = {name: i for i, name in enumerate(classes)}
    videos = index_videos(src, progress=progress, exclude=exclude)
    prepared = Prepared("ssv2", classes, {}, sources=[labels_file, *files.values()])
    for split, file in files.items():
        items = _json(file)
        if not isinstance(items, list):
            raise DatasetError(f"{file}: expected a list of videos")
        pairs = []
        for k, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise DatasetError(f"{file}: entry {k} lacks 'id' or 'template'")
            template = str(item["template"]).replace("[", "").replace("]", "")
            if template not in lookup:
                raise DatasetError(
                    f"{file}: entry {k} (id {item['id']}): template {template!r} is not in "
                    f"{labels_file.name}"
                )
            path = _pick(videos.get(str(item["id"])), ())
            if path is None:
                prepared.missing.append(f"{split} {item['id']}.webm")
            else:
                pairs.append((path, lookup[template]))
        if not pairs:
            raise DatasetError(f"{file}: none of its {len(items)} videos is under {src}")
        prepared.splits[split] = pairs
    return prepared


def _json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise DatasetError(f"cannot read '{path}': {err}") from None


# ------------------------------------------------------------------------------ UCF101, HMDB51


def _check_split(split: int) -> None:
    if split not in (1, 2, 3):
        raise DatasetError(f"--split must be 1, 2 or 3, got {split}")


def read_ucf101(
    src: PathLike, split: int = 1, *, progress: bool = False, exclude: PathLike | None = None
) -> Prepared:
    """UCF101 under ``src``: ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt`` (in
    ``src/ucfTrainTestlist/`` or ``src``; N = ``split``) and the videos ``CLASS/NAME.avi``
    anywhere under ``src``. Classes in the order of ``classInd.txt``; the test list is the val
    split."""
    _check_split(split)
    src = Path(os.path.abspath(src))
    _require_folder(src)
    folders = ("ucfTrainTestlist/", "")
    class_file = _first_file(src, [f"{d}classInd.txt" for d in folders], "UCF101 classInd.txt")
    classes: list[str] = []
    for lineno, line in enumerate(_read_text(class_file).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] != str(len(classes) + 1):
            raise DatasetError(
                f"{class_file}:{lineno}: expected '{len(classes) + 1} CLASS', got {line.strip()!r}"
            )
        classes.append(parts[1])
    if not classes:
        raise DatasetError(f"{class_file}: lists no class")
    lookup = {name: i for i, name in enumerate(classes)}
    base = class_file.parent
    files = {
        "train": _first_file(base, [f"trainlist0{split}.txt"], "UCF101 training list"),
        "val": _first_file(base, [f"testlist0{split}.txt"], "UCF101 test list"),
    }
    videos = index_videos(src, progress=progress, exclude=exclude)
    prepared = Prepared("ucf101", classes, {}, sources=[class_file, *files.values()])
    for name, file in files.items():
        pairs = []
        for lineno, line in enumerate(_read_text(file).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            relative = parts[0].replace("\\", "/")
            cls = relative.split("/")[0] if "/" in relative else None
            if cls is None or cls not in lookup:
                raise DatasetError(
                    f"{file}:{lineno}: class {cls!r} of {relative!r} is not in {class_file.name}"
                )
            if len(parts) > 1 and parts[1] != str(lookup[cls] + 1):
                raise DatasetError(
                    f"{file}:{lineno}: label {parts[1]} of {relative!r}, but {class_file.name} "
                    f"numbers {cls} {lookup[cls] + 1}"
                )
            stem = Path(relative).stem
            path = _pick(videos.get(stem), (cls,))
            if path is None:
                prepared.missing.append(f"{name} {relative}")
            else:
                pairs.append((path, lookup[cls]))
        if not pairs:
            raise DatasetError(f"{file}: none of its videos is under {src}")
        prepared.splits[name] = pairs
    return prepared


def read_hmdb51(
    src: PathLike, split: int = 1, *, progress: bool = False, exclude: PathLike | None = None
) -> Prepared:
    """HMDB51 under ``src``: the 51 ``CLASS_test_splitN.txt`` files (in
    ``src/testTrainMulti_7030_splits/`` or ``src``; N = ``split``), each line ``NAME.avi K``
    with K = 1 train, 2 test (the val split), 0 not used, and the videos ``CLASS/NAME.avi``
    anywhere under ``src``. Classes sorted by name."""
    _check_split(split)
    src = Path(os.path.abspath(src))
    _require_folder(src)
    suffix = f"_test_split{split}.txt"
    split_files: list[Path] = []
    for folder in (src / "testTrainMulti_7030_splits", src):
        split_files = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
        if split_files:
            break
    if not split_files:
        raise DatasetError(
            f"{src}: no HMDB51 split file (looked for testTrainMulti_7030_splits/*{suffix} "
            f"and *{suffix})"
        )
    classes = [f.name[: -len(suffix)] for f in split_files]
    videos = index_videos(src, progress=progress, exclude=exclude)
    prepared = Prepared("hmdb51", classes, {"train": [], "val": []}, sources=split_files)
    which = {"1": "train", "2": "val"}
    for label, (cls, file) in enumerate(zip(classes, split_files, strict=True)):
        for lineno, line in enumerate(_read_text(file).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(
                    f"{file}:{lineno}: expected 'NAME.avi 0|1|2', got {line.strip()!r}"
                )
            if parts[1] == "0":
                continue
            name = which[parts[1]]
            path = _pick(videos.get(Path(parts[0]).stem), (cls,))
            if path is None:
                prepared.missing.append(f"{name} {cls}/{parts[0]}")
            else:
                prepared.splits[name].append((path, label))
    for name, pairs in prepared.splits.items():
        if not pairs:
            raise DatasetError(f"{src}: none of the {name} videos of split {split} is there")
    return prepared


# ------------------------------------------------------------------------------ writing


def _list_text(pairs: Iterable[tuple[str, int]]) -> str:
    return "".join(f"{path} {label}\n" for path, label in pairs)


def write_prepared(
    prepared: Prepared,
    src: PathLike,
    out: PathLike,
    *,
    short_side: int | None = None,
    workers: int = 0,
    progress: bool = False,
) -> PrepareSummary:
    """Write ``out/train.csv``, ``out/val.csv``, ``out/classes.txt`` and ``out/missing.txt``
    (empty when nothing is missing), each atomically, after any re-encoding.

    Without ``short_side`` the lists name the source videos by absolute path. With it, each
    source is re-encoded (``timesformer.data.reencode.resize_videos``, resumable) to
    ``out/videos/<its path under src>.mp4`` and the lists name those, relative to ``out`` (the
    folder the csv reader resolves them from), so ``out`` can be moved; videos that fail are left
    out and listed in ``out/failed.txt``."""
    from timesformer.checkpoints.io import write_text

    src, out = Path(os.path.abspath(src)), Path(os.path.abspath(out))
    entries: dict[str, list[tuple[str, int]]] = {}
    failed: list[tuple[Path, str]] = []
    reencoded = skipped = 0
    if short_side is None:
        entries = {s: [(str(p), lab) for p, lab in pairs] for s, pairs in prepared.splits.items()}
    else:
        # Imported here: re-encoding needs an encoder, listing does not.
        from timesformer.data.reencode import resize_videos

        targets: dict[Path, Path] = {}
        for pairs in prepared.splits.values():
            for path, _ in pairs:
                relative = path.relative_to(src) if path.is_relative_to(src) else Path(path.name)
                targets[path] = Path("videos") / relative.with_suffix(".mp4")
        report = resize_videos(
            [(s, out / d) for s, d in targets.items()], short_side, workers, progress=progress
        )
        failed = list(report.failed)
        reencoded, skipped = len(report.done), len(report.skipped)
        bad = {Path(p) for p, _ in failed}
        entries = {
            s: [(targets[p].as_posix(), lab) for p, lab in pairs if p not in bad]
            for s, pairs in prepared.splits.items()
        }
    for path, _ in (e for pairs in entries.values() for e in pairs):
        if "\n" in path:
            raise DatasetError(f"{path!r}: a file name with a line break cannot be listed")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "classes.txt", "".join(f"{c}\n" for c in prepared.classes))
    for split, pairs in entries.items():
        write_text(out / f"{split}.csv", _list_text(pairs))
    write_text(out / "missing.txt", "".join(f"{m}\n" for m in prepared.missing))
    if failed:
        write_text(out / "failed.txt", "".join(f"{p}: {why}\n" for p, why in failed))
    else:
        (out / "failed.txt").unlink(missing_ok=True)  # from an earlier run: stale now
    return PrepareSummary(
        out=out,
        counts={s: len(p) for s, p in entries.items()},
        num_classes=len(prepared.classes),
        missing=len(prepared.missing),
        failed=failed,
        reencoded=reencoded,
        skipped=skipped,
    )


def prepare(
    dataset: str,
    src: PathLike,
    out: PathLike,
    *,
    split: int | None = None,
    short_side: int | None = None,
    workers: int = 0,
    progress: bool = False,
) -> PrepareSummary:
    """Read ``dataset`` ("kinetics", "ssv2", "ucf101" or "hmdb51") from its official layout
    under ``src`` and write its lists into ``out`` (see ``write_prepared``). ``split`` (1, 2
    or 3; default 1) picks UCF101's and HMDB51's official split."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown data set {dataset!r} (one of {', '.join(DATASETS)})")
    if split is not None and dataset not in ("ucf101", "hmdb51"):
        raise DatasetError(f"--split applies to ucf101 and hmdb51, not {dataset}")
    if short_side is not None and short_side < 2:
        raise DatasetError(f"--short-side must be at least 2, got {short_side}")
    if workers < 0:
        raise DatasetError(f"--workers must be 0 or more, got {workers}")
    if dataset == "kinetics":
        prepared = read_kinetics(src, progress=progress, exclude=out)
    elif dataset == "ssv2":
        prepared = read_ssv2(src, progress=progress, exclude=out)
    elif dataset == "ucf101":
        prepared = read_ucf101(src, split or 1, progress=progress, exclude=out)
    else:
        prepared = read_hmdb51(src, split or 1, progress=progress, exclude=out)
    return write_prepared(
        prepared, src, out, short_side=short_side, workers=workers, progress=progress
    )
