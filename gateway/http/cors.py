"""Browsers on other origins: CORS by Starlette's CORSMiddleware, with refusals that explain.

Origins allowed are those of TALKGATE_CORS_ORIGINS; in the demo, also any page served from
this machine (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`: a frontend's dev
server), since the demo answers to loopback only. A preflight from any other origin is
answered 403 with one line naming the setting that would allow it, rather than Starlette's
`400 Disallowed CORS origin` or, with no CORS at all, GraphQL's `405 GraphQL only supports GET
and POST requests`. Requests without an Origin (servers, curl, PipeRun) pass straight on.

The writes such an origin may then send are let through by SameOriginWrites with the same
rule (`allows_origin`).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SETTING = "TALKGATE_CORS_ORIGINS"
# A page served from this machine, on any port.
LOOPBACK_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"


class ExplainedCORS(CORSMiddleware):
    """CORSMiddleware for `origins` (and `origin_pattern`, a regular expression an origin
    must match whole), whose refused preflights say why and what allows them."""

    def __init__(
        self, app: ASGIApp, *, origins: Collection[str], origin_pattern: str | None = None
    ) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_origin_regex=origin_pattern,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
        self._open = bool(origins) or origin_pattern is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The fast way on: no Origin, or nothing allowed and not a preflight.
        if scope["type"] != "http" or (not self._open and scope["method"] != "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if not any(name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin):
            because = f"the origin {origin} is not allowed: add it to {SETTING}"
        else:
            asked = request_headers.get("access-control-request-headers") or ""
            method = request_headers["access-control-request-method"]
            because = (
                f"only GET and POST, with the headers Authorization, Content-Type and"
                f" X-Request-ID, are allowed (asked: {method}"
                + (f" with {asked}" if asked else "")
                + ")"
            )
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name.startswith("access-control-") or name == "vary"
        }
        return PlainTextResponse(f"CORS preflight refused: {because}", 403, headers=kept)


def allows_origin(origins: Collection[str], origin_pattern: str | None, origin: str) -> bool:
    """Whether ExplainedCORS with these allows `origin` (for SameOriginWrites)."""
    return origin in origins or (
        origin_pattern is not None and re.fullmatch(origin_pattern, origin) is not None
    )
