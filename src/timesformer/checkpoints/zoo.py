"""The authors' model zoo and the official Hugging Face Hub repos, by name.

``reference:NAME`` (e.g. ``reference:TimeSformer_divST_8x32_224_K400``) names one of the 13
``.pyth`` files the authors published. It is downloaded once into the cache folder
(``$TIMESFORMER_CACHE/reference``, default ``~/.cache/timesformer/reference``) with a progress
bar: the bytes go to ``NAME.pyth.part``, a broken download resumes from there (HTTP Range), and
the file takes its final name only when complete. Checksums are not published, so the sha256 of
the first download is recorded beside it and checked on every later use.

Source of the table: the authors' README, https://github.com/facebookresearch/TimeSformer
("Model Zoo": file names, Dropbox links, top-1 accuracy; Kinetics clips are frames x sampling
rate, Something-Something-v2 clips are frames spread over the whole video), and the Hugging Face
model cards of https://huggingface.co/facebook/timesformer-base-finetuned-k400 and its siblings,
which are those checkpoints converted. The published weights are under CC BY-NC 4.0.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from timesformer.errors import CheckpointError
from timesformer.names import DEFAULT_MODEL, LICENCE  # noqa: F401  (zoo.DEFAULT_MODEL)

PREFIX = "reference:"

_CHUNK = 1 << 20  # bytes per read while downloading
_TIMEOUT_S = 60  # per socket operation, so a dead connection ends in an error, not a hang


@dataclass(frozen=True)
class Pretrained:
    """A published model: what it was trained on and how its clips are taken."""

    name: str
    dataset: str
    num_frames: int
    sampling_rate: int | None  # None: frames spread uniformly over the video (SSv2)
    img_size: int
    top1: float  # the authors' published top-1 (%), on the data set's validation split
    url: str
    labels: str | None = None  # a shipped label set (timesformer.inference.labels)
    source: str = ""  # for a Hub repo: the reference file it was converted from
    licence: str = LICENCE

    @property
    def clip(self) -> str:
        """The clip as the authors write it: frames x sampling rate, crop size."""
        rate = f"x{self.sampling_rate}" if self.sampling_rate else " (whole video)"
        return f"{self.num_frames}{rate}, {self.img_size}px"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clip": self.clip}


_DATA_LABELS = {"K400": "kinetics400", "K600": "kinetics600", "SSv2": "ssv2", "HowTo100M": None}
_DATA_NAMES = {
    "K400": "Kinetics-400",
    "K600": "Kinetics-600",
    "SSv2": "Something-Something-v2",
    "HowTo100M": "HowTo100M",
}


def _ref(file: str, frames: int, rate: int | None, size: int, top1: float, link: str) -> Pretrained:
    data = file.rsplit("_", 1)[1]
    return Pretrained(
        name=file,
        dataset=_DATA_NAMES[data],
        num_frames=frames,
        sampling_rate=rate,
        img_size=size,
        top1=top1,
        url=f"https://www.dropbox.com/s/{link}/{file}.pyth?dl=1",
        labels=_DATA_LABELS[data],
    )


# The authors' model zoo (their README's table and links).
REFERENCE: dict[str, Pretrained] = {
    p.name: p
    for p in (
        _ref("TimeSformer_divST_8x32_224_K400", 8, 32, 224, 77.9, "g5t24we9gl5yk88"),
        _ref("TimeSformer_divST_16x16_448_K400", 16, 16, 448, 79.6, "6f0x172lpqy3oxt"),
        _ref("TimeSformer_divST_96x4_224_K400", 96, 4, 224, 80.6, "r1iuxahif3sgimo"),
        _ref("TimeSformer_divST_8x32_224_K600", 8, 32, 224, 79.1, "4h2qt41m2z3aqrb"),
        _ref("TimeSformer_divST_16x16_448_K600", 16, 16, 448, 81.8, "ft1e92g2vhvxecv"),
        _ref("TimeSformer_divST_96x4_224_K600", 96, 4, 224, 82.2, "857rx6xeclxfhdg"),
        _ref("TimeSformer_divST_8_224_SSv2", 8, None, 224, 59.1, "tybhuml57y24wpm"),
        _ref("TimeSformer_divST_16_448_SSv2", 16, None, 448, 61.8, "9t68uzk8w2fpfnv"),
        _ref("TimeSformer_divST_64_224_SSv2", 64, None, 224, 62.0, "3f1rm2al8mhprwa"),
        _ref("TimeSformer_divST_8x32_224_HowTo100M", 8, 32, 224, 56.8, "9v8hcm88b9tc6ff"),
        _ref("TimeSformer_divST_32x32_224_HowTo100M", 32, 32, 224, 61.2, "4roflx4q1gscu85"),
        _ref("TimeSformer_divST_64x32_224_HowTo100M", 64, 32, 224, 62.2, "15bvqltl1j5vyp3"),
        _ref("TimeSformer_divST_96x32_224_HowTo100M", 96, 32, 224, 62.6, "t2mzgahnfhgakma"),
    )
}


def _hub(repo: str, reference: str) -> Pretrained:
    ref = REFERENCE[reference]
    return Pretrained(
        name=repo,
        dataset=ref.dataset,
        num_frames=ref.num_frames,
        sampling_rate=ref.sampling_rate,
        img_size=ref.img_size,
        top1=ref.top1,
        url=f"https://huggingface.co/{repo}",
        labels=None,  # the repos carry their own class names (config.json's id2label)
        source=f"{PREFIX}{reference}",
    )


# The official Hub repos: the reference checkpoints converted (their model cards).
HUB: dict[str, Pretrained] = {
    p.name: p
    for p in (
        _hub("facebook/timesformer-base-finetuned-k400", "TimeSformer_divST_8x32_224_K400"),
        _hub("facebook/timesformer-hr-finetuned-k400", "TimeSformer_divST_16x16_448_K400"),
        _hub("facebook/timesformer-base-finetuned-k600", "TimeSformer_divST_8x32_224_K600"),
        _hub("facebook/timesformer-hr-finetuned-k600", "TimeSformer_divST_16x16_448_K600"),
        _hub("facebook/timesformer-base-finetuned-ssv2", "TimeSformer_divST_8_224_SSv2"),
        _hub("facebook/timesformer-hr-finetuned-ssv2", "TimeSformer_divST_16_448_SSv2"),
    )
}


def cache_dir() -> Path:
    """Where reference files are kept: ``$TIMESFORMER_CACHE/reference``, else
    ``$XDG_CACHE_HOME/timesformer/reference``, else ``~/.cache/timesformer/reference``."""
    root = os.environ.get("TIMESFORMER_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "timesformer")
    return Path(root).expanduser() / "reference"


def reference_entry(name: str) -> Pretrained:
    """The zoo entry for ``reference:NAME`` (or NAME); ``CheckpointError`` naming the choices."""
    key = name.removeprefix(PREFIX).removesuffix(".pyth")
    if key not in REFERENCE:
        raise CheckpointError(
            f"{name}: not in the authors' model zoo; `timesformer models` lists the names, "
            f"e.g. {PREFIX}TimeSformer_divST_8x32_224_K400"
        )
    return REFERENCE[key]


def _offline() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub read it: one switch for every download."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def fetch_reference(name: str, progress: bool = True) -> Path:
    """The local path of ``reference:NAME``, downloading it on first use.

    Raises ``CheckpointError`` with one line naming the file and the fix when it is not cached
    and cannot be downloaded (offline with ``HF_HUB_OFFLINE=1``, no network, an HTTP error).
    """
    entry = reference_entry(name)
    folder = cache_dir()
    final = folder / f"{entry.name}.pyth"
    digest_file = final.with_name(final.name + ".sha256")
    if final.is_file():
        _check_digest(final, digest_file, name)
        return final
    if _offline():
        raise CheckpointError(
            f"{name}: not in the cache ({final}) and HF_HUB_OFFLINE is set; unset it to "
            f"download {entry.url}, or pass the path of a downloaded copy"
        )
    part = final.with_name(final.name + ".part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _download(entry.url, part, desc=entry.name, progress=progress)
    except urllib.error.HTTPError as err:
        raise CheckpointError(
            f"{name}: download from {entry.url} failed (HTTP {err.code} {err.reason}); download "
            f"it yourself and pass its path"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        raise CheckpointError(
            f"{name}: download from {entry.url} failed ({reason}); check the network and run "
            f"again (it resumes from {part.name}), or pass the path of a downloaded copy"
        ) from None
    digest_file.write_text(f"{_sha256(part)}  {final.name}\n", encoding="utf-8")
    os.replace(part, final)  # only a complete file ever has the final name
    return final


def _download(url: str, part: Path, desc: str, progress: bool) -> None:
    """Fetch ``url`` into ``part``, continuing from its current size when the server allows."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "timesformer"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise
        # 416: the partial file is not a prefix the server can continue; start afresh.
        part.unlink()
        return _download(url, part, desc, progress)
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range and sends the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            open(part, "ab" if have else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _check_digest(final: Path, digest_file: Path, name: str) -> None:
    """A cached file must still be the one downloaded (its sha256 recorded then)."""
    if not digest_file.is_file():
        return  # copied in by hand: nothing recorded to compare with
    recorded = digest_file.read_text(encoding="utf-8").split()
    if recorded and recorded[0] != _sha256(final):
        raise CheckpointError(
            f"{name}: the cached file {final} has changed since it was downloaded (sha256 "
            f"differs); delete it and {digest_file.name} to download it again"
        )
