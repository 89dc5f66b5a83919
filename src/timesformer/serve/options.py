"""A request's options (``topk``, ``windows``, ``stride``, ...): form fields, JSON values or query
parameters, read into numbers and yes/no values, each refused with a ``BadParameter`` naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from timesformer.serve.errors import BadParameter

__all__ = ["parse_bool", "parse_number"]


def parse_bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    """A yes/no option: JSON true/false, or 1/0, true/false, yes/no, on/off as text."""
    value = options.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise BadParameter(f"{name} must be true or false, got {value!r}")


def parse_number(
    options: Mapping[str, Any],
    name: str,
    kind: type[int] | type[float],
    default: int | float | None,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> Any:
    """An int or float option in [low, high] (``low_open``: (low, high]); ``default`` if absent."""
    value = options.get(name)
    if value is None or value == "":
        return default
    what = "an integer" if kind is int else "a number"
    try:
        # JSON true is an int to Python, and int(2.5) would be 2: both are refused.
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError
        number = kind(value)
        if kind is float and number != number:  # NaN passes every comparison below
            raise ValueError
    except (TypeError, ValueError):
        raise BadParameter(f"{name} must be {what}, got {value!r}") from None
    too_low = low is not None and (number <= low if low_open else number < low)
    if too_low or (high is not None and number > high):
        bound = f"more than {low}" if low_open else f"at least {low}"
        if high is not None:
            bound = f"in ({low}, {high}]" if low_open else f"in [{low}, {high}]"
        raise BadParameter(f"{name} must be {bound}, got {value!r}")
    return number
