"""ASGI middleware: a request id, one access log line and the HTTP metrics of every request;
and what a browser may not make the gateway do: answer to a foreign Host name (DNS
rebinding), write on behalf of a foreign Origin, or take a body not declared as JSON."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BadUserInput, Forbidden
from gateway.graphql.over_http import JSON, error_body, negotiate
from gateway.logs import new_request_id, request_id_var
from gateway.metrics import Metrics, route_of

_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
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
        incoming = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value
                break
        request_id = incoming.decode("latin-1") if _SAFE_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
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
                metrics = self.metrics
                metrics.add(metrics.requests, route, method, str(status))
                metrics.observe(metrics.latency, seconds, route)
            if access_log.isEnabledFor(logging.INFO):  # its fields made only to be written
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


# -- what browsers may not make the gateway do ----------------------------------------------

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Methods that may change state; GET, HEAD and OPTIONS never do here.
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PORT = re.compile(r":[0-9]{1,5}", re.ASCII)
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _only(scope: Scope, name: bytes) -> str | None:
    """The value of a header sent exactly once (latin-1), else None: a repeated Host, Origin
    or Content-Type is ambiguous, so it counts as wrong."""
    found: bytes | None = None
    for key, value in scope["headers"]:
        if key == name:
            if found is not None:
                return None
            found = value
    return found.decode("latin-1") if found is not None else None


def host_name(host: str) -> str | None:
    """The name in a Host header value, lower-cased and without its port; None when the value
    is not `name`, `name:port`, `[v6]` or `[v6]:port`."""
    host = host.lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, port = host[: end + 1], host[end + 1 :]
    else:
        name, colon, port = host.partition(":")
        port = colon + port
    if not name or (port and not _PORT.fullmatch(port)):
        return None
    return name


def _refuse(scope: Scope, status: int, message: str, code: str) -> ASGIApp:
    """The answer to a refused request: GraphQL's error shape on /graphql, else the webhook's;
    a WebSocket is closed before it is accepted (403 to the upgrade)."""
    if scope["type"] == "websocket":

        async def close(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})

        return close
    media = JSON
    if scope["path"] == "/graphql":
        body = error_body(message, code)
        media = negotiate(_only(scope, b"accept")) or JSON
    else:
        body = orjson.dumps({"error": message, "code": code})

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", media.encode()), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


class AllowedHosts:
    """Answers 400 (closes a WebSocket) unless the Host header names one of `hosts`, with any
    port: `example.com`, `*.example.com` (its subdomains), `10.0.0.5`, `[::1]`.

    A page that rebinds its own name to 127.0.0.1 reaches the gateway with its name as Host;
    in the demo, open to this machine, that would give it every scope. starlette's
    TrustedHostMiddleware does not fit: it cuts the port at the first `:`, so `[::1]:8000`
    never matches, and it compares names case-sensitively.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str], *, hint: str) -> None:
        self.app = app
        hosts = [h.lower() for h in hosts]
        self.names = frozenset(h for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self.hint = hint

    def allows(self, host: str | None) -> bool:
        name = host_name(host) if host is not None else None
        if name is None:
            return False
        # `*.example.com` admits `a.example.com`, not `example.com` nor `.example.com`.
        return name in self.names or any(
            name.endswith(suffix) and len(name) > len(suffix) for suffix in self.suffixes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.allows(_only(scope, b"host")):
            message = f"this gateway does not answer to that Host: {self.hint}"
            await _refuse(scope, 400, message, BadUserInput.code)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, without a default port."""
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].lower()
    scheme = scheme.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return f"{scheme}://{netloc}"


class SameOriginWrites:
    """Answers 403 to a request that may change state (POST, PUT, PATCH, DELETE) or a
    WebSocket upgrade sent with an Origin other than the gateway's own (the request's scheme
    and Host, or `public`) or one of `trusted` (TALKGATE_CORS_ORIGINS). `Origin: null` is
    always refused; no Origin (curl, PipeRun, servers) passes.

    Browsers send a cross-site form or `text/plain` POST without asking, and apply no CORS to
    WebSockets; where the gateway trusts where a request comes from rather than a key it
    carries (the demo), either would act with every scope.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted: Iterable[str] = (),
        trusted_pattern: str | None = None,
        public: str | None = None,
        exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.trusted = frozenset(origin_of(o) for o in (*trusted, *([public] if public else [])))
        # Origins a regular expression admits whole for HTTP requests (the demo's:
        # gateway.http.cors.LOOPBACK_ORIGINS, the pages its CORS admits).
        self.trusted_pattern = re.compile(trusted_pattern) if trusted_pattern else None
        self.exempt = frozenset(exempt)

    def foreign(self, scope: Scope) -> bool:
        for key, _ in scope["headers"]:
            if key == b"origin":
                break
        else:
            return False  # no Origin: the usual case, found without a list
        given = [v for k, v in scope["headers"] if k == b"origin"]
        if len(given) > 1:
            return True
        origin: str = given[0].decode("latin-1").lower()
        if origin == "null":
            return True
        if origin in self.trusted:
            return False
        if (
            self.trusted_pattern is not None
            and scope["type"] == "http"  # WebSockets: strawberry's own origin check too
            and self.trusted_pattern.fullmatch(origin)
        ):
            return False
        host = _only(scope, b"host")
        if host is None:
            return True
        scheme: str = scope["scheme"]
        scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        # Browsers send an origin as `scheme://host[:port]`, lower-case, no default port.
        return origin != origin_of(origin) or origin != origin_of(f"{scheme}://{host}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checked = scope["type"] == "websocket" or (
            scope["type"] == "http" and scope["method"] in _WRITES
        )
        if checked and scope["path"] not in self.exempt and self.foreign(scope):
            message = (
                "cross-origin request refused: its Origin is not this gateway's"
                " (TALKGATE_PUBLIC_URL) nor one of TALKGATE_CORS_ORIGINS"
            )
            await _refuse(scope, 403, message, Forbidden.code)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class JsonBodies:
    """Answers 415 to a request that may change state unless its Content-Type is
    `application/json` (parameters such as `charset=utf-8` aside).

    The GraphQL-over-HTTP specification requires it of POST /graphql. Elsewhere it keeps out
    what a browser sends cross-site without asking first (`text/plain`, forms, multipart).
    """

    def __init__(self, app: ASGIApp, *, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _WRITES
            and scope["path"] not in self.exempt
            and not is_json(_only(scope, b"content-type"))
        ):
            message = "the body must be sent as Content-Type: application/json"
            await _refuse(scope, 415, message, BadUserInput.code)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def is_json(content_type: str | None) -> bool:
    if content_type == "application/json":  # as nearly every client sends it
        return True
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"
