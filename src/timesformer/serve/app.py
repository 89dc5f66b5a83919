"""The FastAPI application: ``/healthz``, ``/v1/predict``, ``/v1/explain`` and the page at ``/``.

Every request that runs the model passes the ``Gate`` first (503 with Retry-After when it is
full, before the upload is read), gets its video (``uploads.received_video``: an upload streamed
to a file, or an allowed path), and does its work in a thread of its own (``jobs``), the model
itself running on the ``Batcher``'s thread. The event loop only moves bytes. Each refusal is an
``ApiError``: a 4xx (or 503) with ``{"error": MESSAGE, "code": CODE}``; anything else a request
raises is logged with its traceback and answered with a 500 of the same shape, and the server
carries on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from timesformer.inference.rollout import HEAD_FUSIONS
from timesformer.serve.access import AccessLog
from timesformer.serve.batching import Batcher, Gate
from timesformer.serve.errors import ApiError, BadParameter, error_body
from timesformer.serve.jobs import DecodeSlots, explain_video, predict_video
from timesformer.serve.model import ServedModel
from timesformer.serve.options import parse_bool, parse_number
from timesformer.serve.settings import ServeSettings
from timesformer.serve.uploads import options_of, received_video

__all__ = ["STATIC", "create_app"]

log = logging.getLogger("timesformer.serve")
STATIC = Path(__file__).parent / "static"

# The request bodies, for /openapi.json: the handlers read them themselves, as a stream.
_VIDEO_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["video"],
                    "properties": {"video": {"type": "string", "format": "binary"}},
                    "additionalProperties": {"type": "string"},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["path"],
                    "properties": {"path": {"type": "string"}},
                }
            },
        },
    }
}


class _Server:
    """What the routes share: the model, its thread, the gate and the decoding slots."""

    def __init__(self, served: ServedModel, settings: ServeSettings) -> None:
        self.served = served
        self.settings = settings
        self.gate = Gate(settings.queue_size, workers=settings.workers)
        self.slots = DecodeSlots(settings.workers)
        self.batcher: Batcher | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    def start(self) -> None:
        if self.batcher is None:
            self.batcher = Batcher(
                self.served.logits,
                window=self.settings.batch_window_ms / 1000,
                max_batch=self.settings.max_batch,
                in_progress=lambda: self.gate.inside,
            )

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None

    async def run_job(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``job(served, batcher, slots, *args, **kwargs)`` (``jobs.predict_video`` or
        ``explain_video``) in a thread of the request pool: one per admitted request, since
        threads waiting on the model must not keep others from decoding."""
        if self._limiter is None:  # made here: anyio wants a running event loop
            self._limiter = anyio.CapacityLimiter(self.settings.queue_size)
        self.start()
        call = functools.partial(job, self.served, self.batcher, self.slots, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)


async def _answer(work: Callable[[], Awaitable[Response]]) -> Response:
    """The response of ``work``, or the JSON error it raised; never an exception out."""
    try:
        return await work()
    except ApiError as err:
        return JSONResponse(error_body(str(err), err.code), err.status, headers=err.headers())
    except ClientDisconnect:
        log.info("the client went away during its upload")
        return JSONResponse(error_body("the client disconnected", "disconnected"), 400)
    except Exception:
        log.exception("a request failed")
        return JSONResponse(error_body("internal error (see the server's log)", "internal"), 500)


def create_app(served: ServedModel, settings: ServeSettings) -> FastAPI:
    """The application serving ``served`` with ``settings`` (its model thread starts with the
    application's lifespan, or at the first request)."""
    server = _Server(served, settings.check())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        server.start()
        yield
        server.stop()

    app = FastAPI(
        title="timesformer serve",
        summary="Video classification, window timelines and attention maps with TimeSformer.",
        lifespan=lifespan,
        # Swagger UI and ReDoc fetch their scripts from a CDN; the schema alone stays.
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = server
    app.add_middleware(AccessLog)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return JSONResponse(error_body(str(err.detail), code), err.status_code, err.headers)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """The model is loaded and the server answers: the model, its classes and settings."""
        queue = {"in_progress": server.gate.inside, "limit": server.gate.limit}
        batcher = server.batcher
        passes = {
            "forward_passes": batcher.batches if batcher else 0,
            "jobs": batcher.jobs if batcher else 0,
        }
        return {"status": "ok", **served.info(), "queue": queue, "batching": passes}

    @app.get("/v1/labels")
    async def labels() -> dict[str, Any]:
        """The model's class names, in index order."""
        return {"labels": served.predictor.labels}

    @app.post("/v1/predict", openapi_extra=_VIDEO_BODY)
    async def predict(request: Request) -> Response:
        """Top-k classes of a video (an upload in field ``video`` or a JSON ``path``), whole or
        window by window; options ``topk``, ``windows``, ``stride`` as form fields, JSON keys or
        query parameters."""

        async def work() -> Response:
            with server.gate.enter():
                async with _video(request, settings) as video:
                    options = options_of(request, video)
                    topk = parse_number(options, "topk", int, 5, low=1)
                    windows = parse_bool(options, "windows", False)
                    stride = parse_number(options, "stride", float, None, low=0, low_open=True)
                    if stride is not None and not windows:
                        raise BadParameter("stride needs windows=true")
                    result = await server.run_job(
                        predict_video,
                        video.path,
                        video.name,
                        topk=topk,
                        windows=windows,
                        stride=stride,
                    )
            return JSONResponse(result)

        return await _answer(work)

    @app.post("/v1/explain", openapi_extra=_VIDEO_BODY)
    async def explain(request: Request) -> Response:
        """Attention rollout of one centred clip as a PNG grid (``format=gif``: animated GIF);
        options ``head_fusion`` (mean, max, min) and ``discard_ratio`` in [0, 1)."""

        async def work() -> Response:
            with server.gate.enter():
                async with _video(request, settings) as video:
                    options = options_of(request, video)
                    fusion = str(options.get("head_fusion") or "mean")
                    if fusion not in HEAD_FUSIONS:
                        raise BadParameter(
                            f"head_fusion must be one of {', '.join(HEAD_FUSIONS)}, got {fusion!r}"
                        )
                    ratio = parse_number(options, "discard_ratio", float, 0.0, low=0, high=1)
                    if ratio >= 1:
                        raise BadParameter(f"discard_ratio must be in [0, 1), got {ratio}")
                    kind = str(options.get("format") or "png").lower()
                    if kind not in ("png", "gif"):
                        raise BadParameter(f"format must be png or gif, got {kind!r}")
                    picture = await server.run_job(
                        explain_video,
                        video.path,
                        video.name,
                        head_fusion=fusion,
                        discard_ratio=ratio,
                        gif=kind == "gif",
                        scratch=settings.upload_dir,
                    )
            return Response(picture, media_type=f"image/{kind}")

        return await _answer(work)

    return app


def _video(request: Request, settings: ServeSettings):
    """The request's video (see ``uploads.received_video``) under the server's limits."""
    return received_video(
        request,
        upload_dir=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
        allow_dirs=settings.allow_dirs,
    )
