"""Arguments and checks shared by the commands: the inference options (predict, extract), and
the check of every output path before any long work (``check_output``, ``writing``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetensors import SafetensorError as _SafetensorError

from timesformer.errors import TimesformerError


def add_clip_arguments(p: argparse.ArgumentParser) -> None:
    """--clips, --crops, --sampling-rate: the test protocol, by default from the checkpoint."""
    c = p.add_argument_group("clip settings (default: from the checkpoint)")
    c.add_argument("--clips", type=int, default=None, help="temporal clips per video (K)")
    c.add_argument("--crops", type=int, choices=(1, 3), default=None, help="spatial crops")
    c.add_argument("--sampling-rate", type=int, default=None, help="frame step at target fps")


def add_running_arguments(p: argparse.ArgumentParser, device_help: str) -> argparse._ArgumentGroup:
    """--device, --precision, --workers, --no-progress; returns the group for more options."""
    r = p.add_argument_group("running")
    r.add_argument("--device", default=None, help=device_help)
    r.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "int8"),
        default="fp32",
        help="fp32 (default); bf16: bf16 weights (predict) or autocast (extract), fastest "
        "exact-enough choice on a CPU with bf16 instructions; fp16: autocast, for GPUs; int8: "
        "int8 linear products, CPU only, faster still at a small accuracy cost "
        "(see docs/performance.md)",
    )
    r.add_argument("--workers", type=int, default=0, help="decoding processes (0: in this one)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return r


def check_clip_options(args: argparse.Namespace) -> None:
    """--clips, --sampling-rate, --stride and --workers, before any file is read."""
    from timesformer.errors import ConfigError

    for option, value in (("--clips", args.clips), ("--sampling-rate", args.sampling_rate)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")
    if args.stride is not None and not args.stride > 0:
        raise ConfigError(f"--stride must be a positive number of seconds, got {args.stride}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {args.workers}")


def clip_from_args(model: Any, args: argparse.Namespace):
    """The model's test clip settings with the command line's overrides."""
    from timesformer.inference.predictor import clip_config

    return clip_config(model, clips=args.clips, crops=args.crops, sampling_rate=args.sampling_rate)


class OutputError(TimesformerError):
    """An output file or folder that cannot be written."""


def _label(path: str | os.PathLike[str], option: str | None) -> str:
    """How a message names the output: ``--out PATH``, or the path alone."""
    return f"{option} {path}" if option else str(path)


def _kind(path: Path, label: str) -> str:
    """'missing', 'folder', 'file' (anything else that is there) or 'broken link'."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "broken link" if os.path.islink(path) else "missing"
    except NotADirectoryError:
        return "missing"  # a parent is a file, which the caller reports by name
    except OSError as err:
        raise OutputError(f"{label}: cannot look at {path} ({err.strerror})") from None
    return "folder" if stat.S_ISDIR(st.st_mode) else "file"


def _not_writable(folder: Path) -> str | None:
    """Why ``folder`` (which exists) takes no new entries, or None when it does."""
    # os.access asks the kernel with this process's own rights (root's override included) and
    # refuses a read-only mount as well; statvfs tells the two refusals apart.
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "is on a read-only file system" if read_only else "is not writable (permission denied)"


def check_output(
    path: str | os.PathLike[str] | None, option: str | None, *, folder: bool = False
) -> None:
    """Refuse, before any long work, an output that cannot be written.

    The output (a file, or with ``folder`` a folder) may exist, but as the right kind of thing;
    its missing parents are made when it is written, so the nearest one that exists must be a
    writable folder. An existing file is replaced through a temporary file beside it, so its
    folder must be writable too. ``option`` names the option in the message (None: a positional
    argument, named by its path alone). Raises ``OutputError``.
    """
    if path is None:
        return
    target = Path(path)
    label = _label(path, option)
    kind = _kind(target, label)
    if kind == "broken link":
        raise OutputError(f"{label}: is a broken symbolic link")
    if folder and kind == "file":
        raise OutputError(f"{label}: is a file, not a folder")
    if not folder and kind == "folder":
        raise OutputError(f"{label}: is a folder; give a file name")
    # The nearest existing folder the output is written in (the output itself for a folder).
    here = target if folder and kind == "folder" else target.parent
    for above in (here, *here.parents):
        found = _kind(above, label)
        if found == "broken link":
            raise OutputError(f"{label}: {above} is a broken symbolic link")
        if found == "file":
            raise OutputError(f"{label}: {above} is a file, not a folder")
        if found == "folder":
            why = _not_writable(above)
            if why is not None:
                where = "" if above == target else f"{above} "
                raise OutputError(f"{label}: {where}{why}")
            return


@contextlib.contextmanager
def writing(
    path: str | os.PathLike[str], option: str | None, *, folder: bool = False
) -> Iterator[None]:
    """Turn a write that fails part way (a full disk, a folder made read-only meanwhile) into
    one ``OutputError`` line, and remove the empty folders the block made for the output.

    The writers used here are atomic (``checkpoints.io.atomic_path``), so no half-written file
    remains; an ``OSError`` about a file outside the output's folder is not a write error and
    passes through.
    """
    target = Path(path)
    candidates = ((target,) if folder else ()) + tuple(target.parents)
    made = [p for p in candidates if not os.path.lexists(p)]
    try:
        yield
    except (OSError, _SafetensorError) as err:
        name = getattr(err, "filename", None)
        if isinstance(name, str | os.PathLike) and not _about(name, target):
            raise
        for p in made:  # deepest first; a folder that holds anything stays
            with contextlib.suppress(OSError):
                p.rmdir()
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise OutputError(f"{_label(path, option)}: writing failed: {reason}") from err


def _about(name: str | os.PathLike[str], target: Path) -> bool:
    """Whether the file an error names is the output, lies in it, is one of its folders, or is
    a temporary of it (a hidden ``.NAME.*`` beside it, as the atomic writers make)."""
    path, out = Path(os.path.abspath(name)), Path(os.path.abspath(target))
    if path == out or path.is_relative_to(out) or out.is_relative_to(path):
        return True
    if not path.is_relative_to(out.parent):
        return False
    return path.relative_to(out.parent).parts[0].startswith(f".{out.name}.")
