"""Class-name lists: the shipped Kinetics-400/600 and Something-Something-v2 sets, or a user file.

Index ``i`` of a list is the class the published checkpoints score at logit ``i``. The shipped
lists are plain text, one name per line, read from the package (no download at run time):

- ``kinetics400`` (400 names) and ``kinetics600`` (600 names): the class names in alphabetical
  order, the order the official Kinetics checkpoints were trained with.
- ``ssv2`` (174 names): the templates of Something-Something-v2 in the integer order of the
  dataset's ``something-something-v2-labels.json`` (which is also alphabetical).

A user file may be a text file (one name per line), a JSON list of names, or a JSON object
mapping names to indices (``{"Approaching something with your camera": "0", ...}``, the layout
of SSv2's ``labels.json``) or indices to names (``{"0": "abseiling", ...}``, like ``id2label``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from timesformer.errors import ConfigError

__all__ = ["LABEL_SETS", "load_labels"]

LABEL_SETS: tuple[str, ...] = ("kinetics400", "kinetics600", "ssv2")


def load_labels(name_or_path: str) -> list[str]:
    """The class names of a shipped set (``LABEL_SETS``) or of a labels file, index order.

    Raises ``ConfigError`` (one line naming the file and the problem) for a missing or unreadable
    file, an empty list, duplicate names, or JSON indices that are not exactly ``0..N-1``.
    """
    if name_or_path in LABEL_SETS:
        text = resources.files(__name__).joinpath(f"{name_or_path}.txt").read_text("utf-8")
        return _check(_parse_text(text, name_or_path), name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(
            f"labels {name_or_path!r} {what}; give a labels file (text: one name per line, "
            f"or JSON) or one of the shipped sets: {', '.join(LABEL_SETS)}"
        )
    try:
        # utf-8-sig: files saved by Windows editors start with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("[", "{")):
        names = _parse_json(text, str(path))
    else:
        names = _parse_text(text, str(path))
    return _check(names, str(path))


def _parse_text(text: str, where: str) -> list[str]:
    """One name per line; trailing blank lines are ignored, blank lines inside are an error."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        # A blank line in the middle would shift every later class by one index.
        if not line:
            raise ConfigError(f"{where}: line {number} is empty (one class name per line)")
    return lines


def _parse_json(text: str, where: str) -> list[str]:
    """A JSON list of names, ``{name: index}`` or ``{index: name}``; indices as ints or strings."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, list):
        for i, name in enumerate(data):
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"{where}: item {i} is {name!r}, not a class name")
        return [name.strip() for name in data]
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: JSON must be a list of names or an object of names and indices, "
            f"not {type(data).__name__}"
        )
    if data and all(_index(k) is not None and isinstance(v, str) for k, v in data.items()):
        pairs = [(_index(k), v) for k, v in data.items()]  # {index: name}
    elif all(isinstance(k, str) and _index(v) is not None for k, v in data.items()):
        pairs = [(_index(v), k) for k, v in data.items()]  # {name: index}, SSv2's labels.json
    else:
        raise ConfigError(
            f"{where}: JSON object must map names to integer indices or integer indices to names"
        )
    by_index: dict[int, str] = {}
    for index, name in pairs:
        assert index is not None  # both branches above checked every index
        if index in by_index:
            raise ConfigError(
                f"{where}: index {index} is given to both {by_index[index]!r} and {name!r}"
            )
        by_index[index] = name.strip()
    expected = range(len(by_index))
    if set(by_index) != set(expected):
        missing = sorted(set(expected) - set(by_index))
        raise ConfigError(
            f"{where}: indices must be 0..{len(by_index) - 1} with none missing "
            f"(missing {missing[:5]}, largest {max(by_index)})"
        )
    return [by_index[i] for i in expected]


def _index(value: object) -> int | None:
    """``value`` as a non-negative class index (an int or a string of digits), else None."""
    if isinstance(value, bool):  # bool is an int subclass; True is not index 1
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    return None


def _check(names: list[str], where: str) -> list[str]:
    """Reject an empty list or repeated names (a repeat makes two logits print the same)."""
    if not names:
        raise ConfigError(f"{where}: no class names in the file")
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise ConfigError(
                f"{where}: class name {name!r} appears twice (classes {first[name]} and {i})"
            )
        first[name] = i
    return names
