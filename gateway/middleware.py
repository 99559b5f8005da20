"""ASGI middleware: a request id, one access log line and the HTTP metrics of every request."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import new_request_id, request_id_var
from gateway.metrics import Metrics, route_of

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("talkgate.access")


def loggable_path(path: str) -> str:
    """The path as logged: a login ticket is a credential, so it never reaches the log."""
    if path.startswith("/talkme/launch/"):
        return "/talkme/launch/<ticket>"
    return path


class ObserveRequests:
    """Tags each request with `X-Request-ID` (the client's, if sane), logs its outcome and
    counts it in the metrics, in one wrapper around the app.

    The access line holds the path only: query strings may carry the webhook token.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and status == 500:
                status = 403  # closed before the upgrade was accepted
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            method = scope.get("method", "WS")
            if scope["type"] == "http":
                route = route_of(scope["path"])
                self.metrics.requests.labels(route, method, str(status)).inc()
                self.metrics.latency.labels(route).observe(seconds)
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "path": loggable_path(scope["path"]),
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
            request_id_var.reset(token)
