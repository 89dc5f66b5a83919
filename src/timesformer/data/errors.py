"""Errors raised by the data pipeline.

Both derive from ``TimesformerError``, so the command line reports them as one line. Both survive a
round trip through ``pickle`` (DataLoader workers send exceptions to the main process that way).
"""

from __future__ import annotations

import os

from timesformer.errors import TimesformerError


class VideoDecodeError(TimesformerError):
    """A file that cannot be opened or decoded as a video.

    The message names the file and the reason: ``cannot decode 'a.mp4': no video stream``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        # One argument is a whole message (how DataLoader re-raises a worker's exception).
        message = str(path) if reason is None else f"cannot decode '{os.fspath(path)}': {reason}"
        super().__init__(message)
        self.path = os.fspath(path) if reason is not None else None
        self.reason = reason

    def __reduce__(self):  # keep (path, reason) rather than the formatted message
        if self.reason is None:
            return (type(self), (str(self),))
        return (type(self), (self.path, self.reason))


class DatasetError(TimesformerError):
    """A dataset that cannot be used: an unreadable list file, no videos, or no video decodes."""
