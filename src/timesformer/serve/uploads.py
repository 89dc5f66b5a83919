"""What a request carries: its video, an upload or a path on the server, and its options.

An upload is streamed straight from the socket to a file in the upload folder, so a large video
never sits in memory, and refused as soon as it passes the size limit (at once when its
``Content-Length`` says so). ``received_video`` deletes that file however the request ends. A
JSON ``{"path": ...}`` names a file on the server, allowed or not by ``paths.resolve_allowed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from timesformer.serve.errors import BadRequest, MissingField, TooLarge, UnsupportedMedia
from timesformer.serve.paths import VIDEO_FIELD, resolve_allowed

__all__ = ["UPLOAD_PREFIX", "VideoRequest", "options_of", "received_video"]

UPLOAD_PREFIX = "timesformer-upload-"
FIELD_LIMIT = 64 * 2**10  # bytes of one form field other than the video
JSON_LIMIT = 2**20  # bytes of a JSON body
# Multipart framing and the small fields around the video, allowed over the video's own limit.
FRAMING_SLACK = 2**20


@dataclass
class VideoRequest:
    """A request's video and options.

    Attributes:
        path: the file to decode (an upload in the upload folder, or a resolved allowed path).
        name: how the answer names it: the upload's file name, or the path as the client gave it.
        fields: the options sent with it (form fields or JSON keys), as sent.
        upload: whether ``path`` is an upload, deleted when the request ends.
    """

    path: Path
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    upload: bool = False


def options_of(request: Request, video: VideoRequest) -> dict[str, Any]:
    """The query string's options, overridden by the body's."""
    return {**dict(request.query_params), **video.fields}


@contextlib.asynccontextmanager
async def received_video(
    request: Request,
    *,
    upload_dir: Path | None,
    max_bytes: int,
    allow_dirs: Sequence[Path],
) -> AsyncIterator[VideoRequest]:
    """The request's video: a multipart upload (field ``video``) or a JSON ``{"path": ...}``.

    Raises an ``ApiError`` for a body it cannot use. An uploaded file is deleted on leaving the
    block, whatever happens in it, and at once when reading the upload fails."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes + FRAMING_SLACK:
            raise TooLarge(_too_large(max_bytes, int(declared)))
        form = _Multipart(request.headers["content-type"], upload_dir, max_bytes)
        try:
            async for chunk in request.stream():
                form.write(chunk)
            form.finish()
        except BaseException:
            form.discard()
            raise
        try:
            yield VideoRequest(form.path, form.filename, form.fields, upload=True)
        finally:
            form.discard()
    elif kind == "application/json":
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > JSON_LIMIT:
                raise BadRequest(f"the JSON body is over {JSON_LIMIT // 2**10} KiB")
        try:
            doc = json.loads(bytes(body) or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest(f"the body is not valid JSON: {err}") from None
        if not isinstance(doc, dict):
            raise BadRequest('the JSON body must be an object, e.g. {"path": "clip.mp4"}')
        if "path" not in doc:
            raise MissingField(_missing())
        path = resolve_allowed(doc["path"], allow_dirs)
        fields = {k: v for k, v in doc.items() if k != "path"}
        yield VideoRequest(path, str(doc["path"]), fields)
    elif not kind:
        raise MissingField(_missing())
    else:
        raise UnsupportedMedia(
            f"content type {kind!r} is not accepted: send multipart/form-data with the field "
            f"'{VIDEO_FIELD}', or application/json with a 'path'"
        )


def _missing() -> str:
    return (
        f"no video: send it as the multipart field '{VIDEO_FIELD}', or a file on the server as "
        'JSON {"path": ...}'
    )


def _too_large(limit: int, size: int | None = None) -> str:
    got = f" ({size / 2**20:.1f} MiB)" if size is not None else ""
    return f"the upload is over the limit of {limit / 2**20:.4g} MiB{got}"


class _Multipart:
    """A streaming multipart/form-data parser: the ``video`` part goes to a file, the other
    parts (small fields) to ``fields``."""

    def __init__(self, content_type: str, upload_dir: Path | None, max_bytes: int) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise BadRequest("the multipart body has no boundary in its Content-Type")
        self.upload_dir = upload_dir
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.filename = "upload"
        self.size = 0
        self._file: IO[bytes] | None = None
        self._ended = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._part: str | None = None  # field name of the part being read
        self._data = bytearray()
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as err:
            raise BadRequest(f"the multipart body cannot be read: {err}") from None

    def finish(self) -> None:
        """Check the body is complete and has the video."""
        if not self._ended:
            raise BadRequest("the multipart body ends before its closing boundary (truncated?)")
        if self.path is None:
            raise MissingField(_missing())

    def discard(self) -> None:
        """Close and delete the upload's file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    # The parser's callbacks, in the order it calls them for each part.
    def _part_begin(self) -> None:
        self._disposition, self._part, self._data = b"", None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if b"name" not in params:
            raise BadRequest("a multipart part has no name in its Content-Disposition")
        self._part = params[b"name"].decode("utf-8", "replace")
        if self._part != VIDEO_FIELD:
            return
        if self.path is not None:
            raise BadRequest(f"more than one '{VIDEO_FIELD}' field: send one video per request")
        filename = params.get(b"filename", b"").decode("utf-8", "replace")
        self.filename = os.path.basename(filename.replace("\\", "/")) or "upload"
        # Keep a plain extension: some containers are told apart by it.
        suffix = Path(self.filename).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ".bin"
        fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=suffix, dir=self.upload_dir)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == VIDEO_FIELD:
            assert self._file is not None
            self.size += end - start
            if self.size > self.max_bytes:
                raise TooLarge(_too_large(self.max_bytes))
            # Written here, in the event loop: a chunk to the page cache takes microseconds.
            self._file.write(data[start:end])
            return
        self._data += data[start:end]
        if len(self._data) > FIELD_LIMIT:
            raise BadRequest(
                f"field {self._part!r} is over {FIELD_LIMIT // 2**10} KiB; the video goes in "
                f"the field '{VIDEO_FIELD}'"
            )

    def _part_end(self) -> None:
        if self._part == VIDEO_FIELD:
            assert self._file is not None
            self._file.close()
            self._file = None
        elif self._part is not None:
            self.fields[self._part] = self._data.decode("utf-8", "replace")

    def _end(self) -> None:
        self._ended = True
