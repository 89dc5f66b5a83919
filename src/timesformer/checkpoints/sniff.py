"""What a file is, told from its content, so that a file that is not a checkpoint is named.

``sniff`` reads the first few KiB of a file (and a zip's directory, or the top-level fields of an
ONNX protobuf) and never unpickles anything: pickles are only parsed with ``pickletools``, which
decodes opcodes without running them. The extension is never trusted: a video renamed ``.pth``
is still called a video.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import yaml

# What load_checkpoint reads (load.py's module docstring), for every "not a checkpoint" error.
ACCEPTED = (
    "a checkpoint is a .safetensors file, a PyTorch state dict (.pth/.pt/.pyth/.bin, read with "
    "weights_only=True: tensors only) such as a reference TimeSformer or timm ViT checkpoint, "
    "or a Hugging Face model folder (config.json + weights)"
)
AGAIN = "the file was probably cut short while copying or saving; copy or save it again"
TORCHSCRIPT_OURS = "a TorchScript export (made by `timesformer export --format torchscript`)"
TORCHSCRIPT = "a TorchScript program (torch.jit.save)"
FROM_SOURCE = "pass the checkpoint it was exported from"

_HEAD = 8192  # bytes read to recognise a file
_JSON_PARSE_LIMIT = 1 << 20  # a larger file starting with { or [ is called JSON unparsed
_MAX_SAFETENSORS_HEADER = 100_000_000  # safetensors' own limit on its JSON header
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".pyth", ".bin", ".ckpt")
# The first pickle of torch's legacy (non-zip) format is this number.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# Globals that a pickle of tensors uses; any other one is code that loading would call.
_TENSOR_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode")


@dataclass(frozen=True)
class Sniffed:
    """``kind`` is "safetensors", "torch-zip" or "torch-legacy" (a file torch.load may read),
    "unknown" (let the loaders try), or "other" with ``problem``, the one-line reason it is not a
    checkpoint."""

    kind: str
    problem: str | None = None


def not_a_checkpoint(what: str, hint: str | None = None) -> str:
    """The error text for a file that is ``what`` (e.g. "a video file (MP4)") instead."""
    return f"this is {what}, not a checkpoint; {hint + '; ' if hint else ''}{ACCEPTED}"


def refused(names: list[str]) -> str:
    """The error text for a pickle that references code (``names``: the globals it names)."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"refused: it holds Python objects that cannot be loaded safely (it references {shown}); "
        "only weights (tensors and plain containers) are loaded, never code"
    )


def torchscript(ours: bool) -> str:
    """The error text for a TorchScript archive (``ours``: written by ``timesformer export``)."""
    return not_a_checkpoint(TORCHSCRIPT_OURS if ours else TORCHSCRIPT, FROM_SOURCE)


def _other(problem: str) -> Sniffed:
    return Sniffed("other", problem)


def sniff(path: Path) -> Sniffed:
    """What ``path`` (an existing file) is; raises OSError when it cannot be read."""
    size = path.stat().st_size
    if size == 0:
        return _other(f"the file is empty (0 bytes), not a checkpoint; {ACCEPTED}")
    with open(path, "rb") as f:
        head = f.read(_HEAD)
        safetensors = _safetensors(head, size)
        if safetensors is not None:
            return safetensors
        media = _magic(head, size)
        if media is not None:
            return _other(media)
        if head.startswith(b"PK"):
            return _zip(path, head)
        if head[:1] == b"\x80":
            return _pickle(f, head, size)
        onnx = _onnx(f, size) if head[:1] == b"\x08" else None
        if onnx is not None:
            return _other(onnx)
    text = _text(path, head, size)
    if text is not None:
        return _other(text)
    if size < 32:  # the smallest torch.save file is hundreds of bytes
        return _other(f"a file of only {size} bytes, too short to be a checkpoint; {AGAIN}")
    return Sniffed("unknown")


# ---------------------------------------------------------------------- safetensors
def _safetensors(head: bytes, size: int) -> Sniffed | None:
    """A complete safetensors file, one whose header says it is longer than it is, or None."""
    if len(head) < 10 or head[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", head[:8])
    # 8 printable bytes then "{" is text, not a header length (which has zero high bytes).
    if n > _MAX_SAFETENSORS_HEADER and all(32 <= b < 127 for b in head[:8]):
        return None
    if head[9:10].strip() not in (b'"', b"}", b""):
        return None
    if 0 < n <= size - 8:
        return Sniffed("safetensors")
    return _other(
        f"a truncated or damaged safetensors file (its header is {n:,} bytes long by its first "
        f"8 bytes, but the file has {size:,}); {AGAIN}"
    )


# ---------------------------------------------------------------------- media and archives
_MAGIC: tuple[tuple[int, bytes, str, str | None], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "an image (PNG)", None),
    (0, b"\xff\xd8\xff", "an image (JPEG)", None),
    (0, b"GIF87a", "an image (GIF)", None),
    (0, b"GIF89a", "an image (GIF)", None),
    (0, b"II*\x00", "an image (TIFF)", None),
    (0, b"MM\x00*", "an image (TIFF)", None),
    (0, b"\x1aE\xdf\xa3", "a video file (Matroska/WebM)", None),
    (0, b"FLV\x01", "a video file (FLV)", None),
    (0, b"\x00\x00\x01\xba", "a video file (MPEG program stream)", None),
    (0, b"\x00\x00\x01\xb3", "a video file (MPEG video stream)", None),
    (0, b"0&\xb2u\x8ef\xcf\x11", "a video file (Windows Media/ASF)", None),
    (0, b"OggS", "an Ogg media file (video or audio)", None),
    (0, b"ID3", "an audio file (MP3)", None),
    (0, b"fLaC", "an audio file (FLAC)", None),
    (0, b"\x1f\x8b", "a gzip-compressed file", "decompress it and pass the checkpoint inside"),
    (0, b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it and pass the checkpoint inside"),
    (0, b"(\xb5/\xfd", "a zstd-compressed file", "decompress it and pass the checkpoint inside"),
    (0, b"7z\xbc\xaf'\x1c", "a 7-Zip archive", "unpack it and pass the checkpoint inside"),
    (257, b"ustar", "a tar archive", "unpack it and pass the checkpoint inside"),
    (0, b"\x93NUMPY", "a NumPy array file (.npy)", None),
    (0, b"\x89HDF\r\n\x1a\n", "an HDF5 file (e.g. a Keras .h5 model)", None),
    (0, b"GGUF", "a GGUF model (llama.cpp)", None),
    (4, b"TFL3", "a TensorFlow Lite model", None),
    (0, b"%PDF-", "a PDF document", None),
    (0, b"\x7fELF", "an executable (ELF)", None),
)
_RIFF = {b"AVI ": "a video file (AVI)", b"WAVE": "an audio file (WAV)", b"WEBP": "an image (WebP)"}
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _magic(head: bytes, size: int) -> str | None:
    """The error text for a media file, image, document or compressed archive, else None."""
    for offset, magic, what, hint in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return not_a_checkpoint(what, hint)
    if head[:4] == b"RIFF" and len(head) >= 12:
        return not_a_checkpoint(_RIFF.get(head[8:12], "a RIFF media file"))
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            what = "an image (HEIF/AVIF)"
        elif brand == b"qt  ":
            what = "a video file (QuickTime .mov)"
        elif brand.startswith(b"3g"):
            what = "a video file (3GP)"
        elif brand in (b"M4A ", b"M4B "):
            what = "an audio file (M4A)"
        else:
            what = "a video file (MP4)"
        return not_a_checkpoint(what)
    if head[4:8] in _QUICKTIME_ATOMS and head[:1] == b"\x00":
        return not_a_checkpoint("a video file (QuickTime .mov)")
    if len(head) > 376 and all(head[i] == 0x47 for i in range(0, len(head) - 187, 188)):
        return not_a_checkpoint("a video file (MPEG transport stream)")  # 188-byte packets
    if head[:2] == b"BM" and len(head) >= 6 and struct.unpack("<I", head[2:6])[0] == size:
        return not_a_checkpoint("an image (BMP)")
    return None


# ---------------------------------------------------------------------- zip
def _zip(path: Path, head: bytes) -> Sniffed:
    """A torch.save zip, or the error text for a TorchScript archive, another zip, or a cut one."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            torch_layout = _torch_records(names)
            if torch_layout is None:
                return _other(_other_zip(names))
            top, records = torch_layout
            if "constants.pkl" in records or any(r.startswith("code/") for r in records):
                return _other(torchscript("extra/clip.json" in records))
            # A TorchScript archive without constants.pkl still pickles __torch__ classes.
            info = archive.getinfo(f"{top}/data.pkl")
            if info.file_size <= 16 << 20:
                with archive.open(info) as data:
                    names_used, _ = _pickle_globals(data, info.file_size)
                if any(n.startswith("__torch__.") for n in names_used):
                    return _other(torchscript("extra/clip.json" in records))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError,
            OSError, KeyError, struct.error):  # fmt: skip
        first = _first_zip_member(head)
        if first is not None and first.endswith("data.pkl"):
            return _other(
                "a truncated or damaged PyTorch file (its zip directory is missing or "
                f"unreadable); {AGAIN}"
            )
        return _other(f"a truncated or damaged zip archive, not a checkpoint; {AGAIN}")
    return Sniffed("torch-zip")


def _torch_records(names: list[str]) -> tuple[str, set[str]] | None:
    """(top folder, names inside it) of torch's zip layout (one folder holding data.pkl)."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or not all("/" in n for n in names):
        return None
    records = {n.split("/", 1)[1] for n in names}
    return (tops.pop(), records) if "data.pkl" in records else None


def _other_zip(names: list[str]) -> str:
    """The error text for a zip that is not in torch's layout."""
    files = [n for n in names if not n.endswith("/")]
    if files and all(n.endswith(".npy") for n in files):
        return not_a_checkpoint("a NumPy .npz archive")
    inner = [n for n in files if n.endswith(CHECKPOINT_SUFFIXES)]
    if any(Path(n).name == "config.json" for n in files) and inner:
        return not_a_checkpoint(
            "a zip archive of a model folder", "unpack it and pass the folder it holds"
        )
    if inner:
        return not_a_checkpoint(
            f"a zip archive holding {inner[0]}", "unpack it and pass the checkpoint inside"
        )
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return not_a_checkpoint(f"a zip archive (it holds {shown or 'nothing'})")


def _first_zip_member(head: bytes) -> str | None:
    """The name in a zip's first local file header, readable even when the file is cut."""
    if head[:4] != b"PK\x03\x04" or len(head) < 30:
        return None
    (length,) = struct.unpack("<H", head[26:28])
    return head[30 : 30 + length].decode("utf-8", "replace")


# ---------------------------------------------------------------------- pickle
_STRING_OPS = frozenset(
    ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
     "STRING")
)  # fmt: skip
_GET_OPS = frozenset(("GET", "BINGET", "LONG_BINGET"))
_PUT_OPS = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))


def _pickle(f: BinaryIO, head: bytes, size: int) -> Sniffed:
    """torch's legacy format, or the error text for a plain pickle (with code, or without)."""
    first: list[object] = []
    with contextlib.suppress(Exception):  # a cut or damaged first pickle: not torch's
        for _, arg, _ in pickletools.genops(io.BytesIO(head)):
            first.append(arg)
    if _TORCH_LEGACY_MAGIC in first[:3]:
        return Sniffed("torch-legacy")
    f.seek(0)
    names, complete = _pickle_globals(f, size)
    code = [n for n in names if not n.startswith(_TENSOR_GLOBAL_PREFIXES)]
    if code:
        return _other(refused(code))
    if complete:
        return _other(
            not_a_checkpoint(
                "a plain Python pickle (pickle.dump), not torch.save's format",
                "save the weights with torch.save(model.state_dict(), path) or safetensors",
            )
        )
    return Sniffed("unknown")


class _Bounded:
    """A file for ``pickletools.genops`` whose reads never ask for more than the file holds: a
    damaged length field (BINBYTES8 of 2**60) would otherwise make ``read`` allocate that much."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self.f.readline(min(self.left, 1 << 20))  # protocol 0 lines are short
        self.left -= len(data)
        return data


def _pickle_globals(f: BinaryIO, size: int, max_ops: int = 1_000_000) -> tuple[list[str], bool]:
    """The globals (``module.name``) a pickle of ``size`` bytes references, read without running
    it, and whether it parsed to its end. Stops early once three globals that are not tensors'
    are found."""
    found: list[str] = []
    memo: dict[int, str | None] = {}
    pushed: list[str | None] = []  # recent values pushed, strings only (for STACK_GLOBAL)
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(_Bounded(f, size))):
            name = op.name
            if name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif name == "STACK_GLOBAL":
                module, attr = [None, None, *pushed][-2:]
                found.append(f"{module or '?'}.{attr or '?'}")
            if name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in _PUT_OPS:
                memo[arg] = pushed[-1] if pushed else None
            elif name not in ("PROTO", "FRAME"):
                value = arg if name in _STRING_OPS else memo.get(arg) if name in _GET_OPS else None
                pushed = [*pushed[-1:], value if isinstance(value, str) else None]
            code = [n for n in found if not n.startswith(_TENSOR_GLOBAL_PREFIXES)]
            if len(code) >= 3 or count >= max_ops:
                return found, False
    except Exception:  # damaged opcodes: what was found so far still counts
        return found, False
    return found, True


# ---------------------------------------------------------------------- ONNX
# ModelProto's top-level fields and their wire types (0: varint, 2: length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
ONNX_OURS = "an ONNX export (made by `timesformer export --format onnx`)"


def _varint(f: BinaryIO) -> int | None:
    value = shift = 0
    for _ in range(10):
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def _onnx(f: BinaryIO, size: int) -> str | None:
    """The error text for an ONNX model (whole or cut), found by walking its top-level protobuf
    fields (ir_version first, then only ModelProto's fields, up to a graph), else None."""
    f.seek(0)
    if _varint(f) != 0x08 or not 1 <= (_varint(f) or 0) <= 100:
        return None
    graph = ours = False
    for _ in range(100_000):
        if f.tell() >= size:
            break
        tag = _varint(f)
        if tag is None or _ONNX_FIELDS.get(tag >> 3) != tag & 7:
            return None
        value = _varint(f)
        if value is None or (tag & 7 == 2 and value > size - f.tell()):
            return not_a_checkpoint("an ONNX model (cut short)", FROM_SOURCE)
        if tag & 7 == 2:
            if tag >> 3 == 14 and value <= 1 << 16:  # metadata_props, where our exports sign
                ours |= b"timesformer." in f.read(value)
            else:
                f.seek(value, io.SEEK_CUR)
            graph |= tag >> 3 == 7
    if not graph:
        return None
    return not_a_checkpoint(ONNX_OURS if ours else "an ONNX model", FROM_SOURCE)


# ---------------------------------------------------------------------- text
def _text(path: Path, head: bytes, size: int) -> str | None:
    """The error text for a text file (JSON, YAML, a Git LFS pointer, an HTML page...), or None
    for binary content."""
    if b"\x00" in head:
        return None
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=size <= len(head))
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f\v" for c in text):
        return None
    start = text.lstrip("\ufeff \t\r\n")
    if start.startswith("L119547037146038801333356"):  # torch's legacy magic, pickle protocol 0
        return None
    if not start:
        return not_a_checkpoint("a text file holding only blank space")
    if start.startswith("version https://git-lfs"):
        return not_a_checkpoint(
            "a Git LFS pointer, not the file it stands for",
            "fetch the real file (git lfs pull) and pass that",
        )
    if start[:15].lower().startswith(("<!doctype html", "<html")):
        return not_a_checkpoint("an HTML page (a failed download?)")
    data = _parse(path, text, size, json_first=start[:1] in "{[")
    if isinstance(data[1], dict) and ("model_type" in data[1] or "architectures" in data[1]):
        return not_a_checkpoint(
            "a Hugging Face config.json", "pass the folder that holds it and the model weights"
        )
    if data[0] is not None:
        return not_a_checkpoint(data[0])
    return not_a_checkpoint("a text file")


def _parse(path: Path, head: str, size: int, json_first: bool) -> tuple[str | None, object]:
    """("a JSON file" or "a YAML file", parsed value), or (None, None) for other text. JSON is
    parsed whole (up to a size); YAML, whose parser is slow, from the complete lines of
    ``head`` only."""
    if json_first and size <= _JSON_PARSE_LIMIT:
        # Whatever a parser raises (bad syntax, nesting too deep) only means "not JSON".
        with contextlib.suppress(OSError, ValueError, RecursionError):
            return "a JSON file", json.loads(path.read_text(encoding="utf-8"))
    elif json_first:
        return "a JSON file", None
    lines = head if size <= len(head.encode()) else head.rpartition("\n")[0]
    try:
        data = yaml.safe_load(lines)
    except (yaml.YAMLError, ValueError, RecursionError):
        return None, None
    return ("a YAML file", data) if isinstance(data, (dict, list)) else (None, None)
