"""One access-log line per request, with the time it took, as an ASGI middleware.

uvicorn's own access log has no duration, so ``timesformer serve`` turns it off and logs this
instead: ``CLIENT "METHOD PATH HTTP/V" STATUS BYTES SECONDS`` on the ``timesformer.serve.access``
logger, once the response is sent (or the request failed: then status 500).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AccessLog"]

log = logging.getLogger("timesformer.serve.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AccessLog:
    """Wrap an ASGI app; log each HTTP request when it ends."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, sent = 500, 0

        async def sending(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope.get("path", "") + (f"?{query}" if query else "")
            log.info(
                '%s "%s %s HTTP/%s" %d %d %.3f s',
                who,
                scope.get("method", "-"),
                target,
                scope.get("http_version", "1.1"),
                status,
                sent,
                time.perf_counter() - start,
            )
