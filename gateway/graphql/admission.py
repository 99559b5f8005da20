"""Who may run an operation: the caller's key, their rate-limit token and, for a POST, a body
within its size and its time."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope

from gateway.auth import KeyRing, Principal, principal
from gateway.deadlines import Deadlines
from gateway.errors import (
    BadUserInput,
    RateLimited,
    Unauthenticated,
)
from gateway.graphql.over_http import (
    error_response,
)
from gateway.http.request_body import ClientDisconnect, read_limited
from gateway.metrics import Metrics
from gateway.ratelimit import RateLimiter
from gateway.settings import Settings

PRINCIPAL_KEY = "talkgate.principal"


ANONYMOUS = Principal("anonymous", frozenset())


async def take_token(
    limiter: RateLimiter, principal: Principal, settings: Settings, metrics: Metrics | None
) -> RateLimited | None:
    """One token from the caller's bucket for one operation, whatever its transport (an HTTP
    request, a WebSocket `subscribe`); the refusal when the bucket is empty."""
    wait = await limiter.take(principal.name)
    if wait is None:
        return None
    if metrics is not None:
        metrics.rate_limited.inc()
    seconds = max(1, round(wait + 0.5))
    return RateLimited(
        f"rate limit of {settings.rate_limit_per_minute} operations a minute reached",
        retryAfter=seconds,
    )


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request let through: who sent it and, for a POST, its body."""

    principal: Principal
    body: bytes | None


class Admission:
    """The checks every HTTP operation passes before anything of it is decoded, in order:
    the method, the caller's key (401), their rate-limit token (429) and, for a POST, its
    body, read within its size (413) and its time (408). Each refusal is a GraphQL error in
    the media type negotiated, with its code; what they decide never depends on the
    response cache."""

    def __init__(self, keys: KeyRing, settings: Settings, metrics: Metrics) -> None:
        self.keys = keys
        self.settings = settings
        self.metrics = metrics
        self._body_deadlines = Deadlines(settings.body_timeout_s)

    async def admit(
        self, scope: Scope, receive: Receive, media: str, limiter: RateLimiter
    ) -> Admitted | Response | None:
        """The request let through; else the refusal to send, or None for a client gone
        before its body's end (no one to answer). Sets the scope's PRINCIPAL_KEY."""
        method: str = scope["method"]
        if method not in ("GET", "POST"):
            return error_response(
                405,
                "GraphQL runs here by GET (queries) or POST (queries and mutations)",
                BadUserInput.code,
                media=media,
                headers={"Allow": "GET, POST"},
            )
        caller = self._principal(scope)
        if caller is None:
            return error_response(
                401,
                "a valid API key is required: Authorization: Bearer <key>",
                Unauthenticated.code,
                media=media,
                headers={"WWW-Authenticate": 'Bearer realm="talkgate"'},
            )
        refused = await take_token(limiter, caller, self.settings, self.metrics)
        if refused is not None:
            seconds = refused.extensions["retryAfter"]
            return error_response(
                429,
                refused.message,
                refused.code,
                media=media,
                headers={"Retry-After": str(seconds)},
                retryAfter=seconds,
            )
        scope[PRINCIPAL_KEY] = caller
        if method != "POST":
            return Admitted(caller, None)
        body = await self._body(receive, media)
        if body is None or isinstance(body, Response):
            return body
        return Admitted(caller, body)

    async def _body(self, receive: Receive, media: str) -> bytes | Response | None:
        limit = self.settings.graphql_max_bytes
        try:
            body, size = await self._body_deadlines.within(read_limited(receive, limit))
        except ClientDisconnect:
            return None
        except TimeoutError:
            # A body trickled in slowly holds a connection as a slow header does.
            return error_response(
                408,
                f"the request body did not arrive within {self.settings.body_timeout_s:g} s",
                BadUserInput.code,
                media=media,
                headers={"Connection": "close"},
            )
        if size > limit:
            return error_response(
                413, f"the request body is over {limit} bytes", BadUserInput.code, media=media
            )
        return body

    def _principal(self, scope: Scope) -> Principal | None:
        client = scope.get("client")
        return principal(
            self.keys,
            header(scope, b"authorization"),
            client[0] if client else None,
            demo=self.settings.demo,
        )


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower-case, as ASGI gives names), as Starlette's
    Headers.get reads it."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None
