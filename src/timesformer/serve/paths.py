"""Files on the server that a client may name: only inside the ``--allow-dir`` folders.

A path is resolved with every symbolic link and ``..`` followed, and must then lie inside one of
the folders: a link inside that points outside is refused like a path outside, and the answer
is the same whether or not the file outside exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from timesformer.serve.errors import BadParameter, ForbiddenPath, NotFound

__all__ = ["VIDEO_FIELD", "resolve_allowed"]

VIDEO_FIELD = "video"  # the multipart field of an upload, which the messages point to


def resolve_allowed(raw: Any, allow_dirs: Sequence[Path]) -> Path:
    """The real path of the file a client names, if it lies inside an allowed folder.

    A relative path is read against each allowed folder in turn. Raises ``ForbiddenPath``
    (paths not enabled, or the path leads outside every allowed folder, links and ``..``
    followed), ``NotFound`` (inside, but not a file) or ``BadParameter`` (not a string).
    """
    if not allow_dirs:
        raise ForbiddenPath(
            "paths on the server are not enabled (start the server with --allow-dir DIR); "
            f"upload the video as the multipart field '{VIDEO_FIELD}' instead"
        )
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise BadParameter(f"path must be a non-empty string, got {raw!r}")
    given = Path(raw)
    roots = [Path(os.path.realpath(d)) for d in allow_dirs]
    candidates = [given] if given.is_absolute() else [Path(d) / given for d in allow_dirs]
    inside = []
    for candidate in candidates:
        real = Path(os.path.realpath(candidate))
        if any(real.is_relative_to(root) for root in roots):
            inside.append(real)
    if not inside:
        # Said the same whether or not the file exists: nothing is told about outside files.
        raise ForbiddenPath(f"path {raw!r} is outside the folders this server may read")
    for real in inside:
        if real.is_file():
            return real
    raise NotFound(f"path {raw!r}: no such file in the folders this server may read")
