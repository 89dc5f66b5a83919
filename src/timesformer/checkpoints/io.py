"""Reading and writing checkpoint files safely.

Nothing here unpickles code: safetensors files are read with ``safetensors``, and pickle-based
files (the reference ``.pyth``, ``pytorch_model.bin``, timm ``.pth``) with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers.
Every write goes to a temporary file in the same folder that is then renamed, so an
interrupted write never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from timesformer.checkpoints import sniff
from timesformer.errors import CheckpointError

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}")


def is_safetensors(path: Path) -> bool:
    """True if the file starts like a safetensors file (8-byte header length, then JSON)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n <= os.path.getsize(path) - 8


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the string metadata of a safetensors file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _fail(path, _damaged_safetensors(err)) from None
    return tensors, meta


def read_safetensors_metadata(path: Path) -> dict[str, str] | None:
    """The string metadata of a safetensors file (its header only), or None for a checkpoint of
    another kind; a file that is no checkpoint at all raises ``CheckpointError`` naming what it
    is (a video, a cut safetensors file...)."""
    try:
        if not is_safetensors(path):
            found = sniff.sniff(path)
            if found.problem is not None:
                raise _fail(path, found.problem)
            return None
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _fail(path, _damaged_safetensors(err)) from None


def _damaged_safetensors(err: Exception) -> str:
    return f"a truncated or damaged safetensors file ({clean_detail(err)}); {sniff.AGAIN}"


def read_pickled(path: Path, kind: str = "unknown") -> Any:
    """A ``torch.save``/pickle file loaded with ``weights_only=True`` (no code is run).

    ``kind`` is what ``sniff`` made of the file ("torch-zip", "torch-legacy" or "unknown"); it
    words the error when torch cannot read it. torch's own advice to load with
    ``weights_only=False`` (or to allow-list globals) is never passed on.
    """
    try:
        with warnings.catch_warnings():
            # Other pickle protocols are read (or refused) all the same; the warning would add
            # lines to the one-line error of a command.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            # A TorchScript archive is refused below; the warning would be a second line.
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(str(err))
        if "__torch__." in detail:
            raise _fail(path, sniff.torchscript(ours=False)) from None
        if "GLOBAL" in detail:
            # "Unsupported global: GLOBAL posix.system": the name is the word after GLOBAL.
            name = (detail.split("GLOBAL", 1)[1].split() or [detail])[0]
            raise _fail(path, sniff.refused([name])) from None
        raise _fail(path, _unreadable(path, kind, detail)) from None
    except Exception as err:
        # Arbitrary bytes make the unpickler and zip reader raise almost anything (EOFError,
        # BadZipFile, RuntimeError, SafetensorError, OverflowError, ...): all mean "not readable".
        if "TorchScript" in str(err):
            raise _fail(path, sniff.torchscript(ours=False)) from None
        raise _fail(path, _unreadable(path, kind, clean_detail(err))) from None


def _unreadable(path: Path, kind: str, detail: str) -> str:
    """The error text for a file torch.load could not read, by what ``sniff`` made of it."""
    if kind == "torch-zip":
        return f"a damaged PyTorch checkpoint ({detail}); {sniff.AGAIN}"
    if kind == "torch-legacy":
        what = f"a truncated or damaged PyTorch checkpoint (old torch.save format: {detail})"
        return f"{what}; {sniff.AGAIN}"
    with open(path, "rb") as f:
        start = f.read(8).hex(" ")
    what = f"not a checkpoint: content of no known kind (it starts with bytes {start})"
    return f"{what}; {sniff.ACCEPTED}"


# Sentences of torch's errors that advise loading unsafely (weights_only=False, allow-listing
# globals) or point to its documentation: never relayed.
_UNSAFE_ADVICE = re.compile(
    r"weights_only|safe_globals|trust|arbitrary code|can still be loaded|documentation|"
    r"file an issue|recommended steps",
    re.IGNORECASE,
)


def clean_detail(err: BaseException | str) -> str:
    """The first informative line of a loader's error, without advice to load unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [s.strip() for s in sentences if s.strip() and not _UNSAFE_ADVICE.search(s)]
    return kept[0].rstrip(".") if kept else type(err).__name__


def _unpickler_detail(message: str) -> str:
    """The informative line of torch's weights-only error, which wraps it in generic text."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            detail = line.split("WeightsUnpickler error:", 1)[-1].strip()
            # torch goes on to explain how to allow the global: not advice to give here.
            return detail.split(" was not an allowed global", 1)[0]
    return clean_detail(message)


def read_tensor_file(path: Path) -> tuple[Any, dict[str, str]]:
    """Load one weights file of any supported kind: (object, safetensors metadata or {}).

    What the file is comes from its content (``sniff``), not its name: a file that is not a
    checkpoint (a TorchScript or ONNX export, a video, an image, a text file, a cut file...) is
    refused with an error that names what it is and what is accepted.
    """
    if not path.exists():
        raise _fail(path, "no such file or folder")
    try:
        found = sniff.sniff(path)
    except OSError as err:  # unreadable (permissions), or a special file
        raise _fail(path, f"cannot be read ({err.strerror or err})") from None
    if found.problem is not None:
        raise _fail(path, found.problem)
    if found.kind == "safetensors":
        return read_safetensors(path)
    return read_pickled(path, found.kind), {}


def read_hf_folder(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A Hugging Face model folder: (state dict with HF names, config.json as a dict)."""
    config_file = path / "config.json"
    if not config_file.is_file():
        # A run folder holds checkpoint files: point at one rather than at the HF layout only.
        inside = sorted(p.name for p in path.glob("*") if p.suffix in sniff.CHECKPOINT_SUFFIXES)
        hint = f"; it holds {', '.join(inside[:3])}: pass one of those files" if inside else ""
        raise _fail(path, f"a folder checkpoint needs a config.json (Hugging Face layout){hint}")
    config = _json_object(config_file, "a transformers model config")
    for name in HF_WEIGHT_FILES:
        if (path / name).is_file():
            obj, _ = read_tensor_file(path / name)
            return _tensor_dict(obj, path / name), config
    for name in HF_INDEX_FILES:
        index = path / name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise _fail(index, f"not a valid weight index: {err}") from None
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                obj, _ = read_tensor_file(path / shard)
                state.update(_tensor_dict(obj, path / shard))
            return state, config
    raise _fail(path, f"no weights found (expected one of {', '.join(HF_WEIGHT_FILES)})")


def read_hf_processor(path: Path) -> dict[str, Any] | None:
    """A Hugging Face folder's ``preprocessor_config.json`` as a dict, or None without one."""
    processor_file = path / "preprocessor_config.json"
    if not processor_file.is_file():
        return None
    return _json_object(processor_file, "a transformers processor config")


def _json_object(file: Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold one object (``what`` says which, for the error)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(file, f"not valid JSON: {err}") from None
    except OSError as err:
        raise _fail(file, f"cannot be read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise _fail(file, f"expected a JSON object ({what})")
    return data


def _tensor_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise _fail(path, "expected a flat mapping of names to tensors")
    return obj


# ---------------------------------------------------------------------- writing
@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file lies in a fresh hidden folder of the same name, ``.NAME.XXXX.tmp/``
    beside ``path`` (the file is ``.NAME.XXXX.tmp`` inside it), so that whatever a writer makes
    next to it goes with it: safetensors 0.8 writes through a temporary file of its own
    (``.tmpXXXXXX``) beside its target, which a kill mid-write would otherwise leave, as large
    as a checkpoint, where nothing could tell it from a user's file. ``remove_temp`` deletes what
    a killed write left.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp_path = folder / folder.name
    try:
        yield tmp_path
        set_usual_mode(tmp_path)  # a writer's own temporary file may be 0600
        os.replace(tmp_path, path)
    finally:
        remove_temp(folder)


def set_usual_mode(path: Path, full: int = 0o666) -> None:
    """Give a file made private by ``mkstemp``/``mkdtemp`` (0600/0700) the mode a normally
    created one gets: ``full`` (0o777 for a folder) less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, full & ~umask)


def remove_temp(tmp: Path) -> None:
    """Delete a temporary of ``atomic_path`` that a killed write left: its folder, or the file
    that earlier versions used."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and move ``tmp`` onto ``path`` once it has succeeded."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_safetensors(path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))
