"""Exception types for mistakes a user can make.

The command line turns every ``TimesformerError`` into one line on stderr and a non-zero exit
status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TimesformerError(Exception):
    """Base class of the errors caused by user input (files, configs, arguments)."""


class ConfigError(TimesformerError, ValueError):
    """A model or run configuration that cannot be built (unknown key, wrong type, bad size)."""


class CheckpointError(TimesformerError):
    """A file that is not a checkpoint we can load safely, or whose tensors do not fit the model."""
