"""The errors a request can get: each an HTTP status, a short code and a message naming the problem.

They are ``TimesformerError`` subclasses (user mistakes, not bugs). ``app`` turns each into a JSON
body ``{"error": MESSAGE, "code": CODE}`` with its status; anything else a request raises is a
bug, logged with its traceback and answered with a 500 of the same shape, and the server goes on.
"""

from __future__ import annotations

from typing import Any

from timesformer.errors import TimesformerError

__all__ = [
    "ApiError",
    "BadParameter",
    "BadRequest",
    "BadVideo",
    "Busy",
    "ForbiddenPath",
    "MissingField",
    "NotFound",
    "TooLarge",
    "UnsupportedMedia",
    "error_body",
]


class ApiError(TimesformerError):
    """A request the server refuses: ``status`` and ``code`` say how, the message says why."""

    status: int = 400
    code: str = "bad_request"

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After`` for ``Busy``)."""
        return {}


class BadRequest(ApiError):
    """A body that cannot be read: broken multipart, JSON that does not parse."""


class MissingField(ApiError):
    """No video in the request: neither a multipart field ``video`` nor a JSON ``path``."""

    code = "missing_field"


class BadParameter(ApiError):
    """An option out of range or of the wrong type (topk, stride, format, ...)."""

    code = "bad_parameter"


class UnsupportedMedia(ApiError):
    """A body that is neither ``multipart/form-data`` nor ``application/json``."""

    status = 415
    code = "unsupported_media_type"


class TooLarge(ApiError):
    """An upload over ``--max-upload-mb``."""

    status = 413
    code = "too_large"


class ForbiddenPath(ApiError):
    """A JSON ``path`` outside every ``--allow-dir`` (or paths not enabled at all)."""

    status = 403
    code = "forbidden_path"


class NotFound(ApiError):
    """A JSON ``path`` under an allowed folder that is not a file."""

    status = 404
    code = "not_found"


class BadVideo(ApiError):
    """A file that does not decode as a video (not a video, truncated, no video stream)."""

    status = 422
    code = "bad_video"


class Busy(ApiError):
    """The request queue is full; ``retry_after`` seconds is when a slot is likely free."""

    status = 503
    code = "busy"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def error_body(message: str, code: str) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": message, "code": code}
