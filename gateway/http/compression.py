"""Compressed answers for clients that ask (`Accept-Encoding`): brotli or gzip.

A 100-talk page is ~37 KB of JSON; a phone asking `Accept-Encoding: gzip` gets it in about a
tenth of that. `Compress` (the middleware) chooses the codec once per request (`choose`, by
the header's q-values, brotli first on a tie), notes it in the scope (`ENCODING_KEY`), and
compresses an answer of a compressible type, sent in one piece, at least `minimum` bytes
long, that carries no Content-Encoding yet; it adds `Vary: Accept-Encoding` to every answer
whose form could depend on the header (for a client that asks for no codec, to GETs only:
caches keep no answer to a POST, and a POST without the header costs nothing here).
Streamed answers (subscriptions over HTTP, files) pass as they are.

The response cache compresses once: a cached answer keeps its compressed forms
(`CachedResponse.encoded`), and the hit path sends the one the scope names, already
encoded, so the middleware leaves it alone.

gzip is the standard library's zlib; brotli is Google's own binding (the `brotli` package).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import brotli  # type: ignore[import-untyped]
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENCODING_KEY = "talkgate.encoding"
# The server's preference on a tie: brotli is smaller for JSON at a similar cost.
CODECS = ("br", "gzip")
COMPRESSIBLE = (
    b"application/json",
    b"application/graphql-response+json",
    b"text/",
    b"application/javascript",
    b"image/svg+xml",
)
# Levels for a fast answer: within a few percent of the best sizes for JSON, at a fraction of
# the time (a 37 KB page: brotli 5 ~0.4 ms, gzip 6 ~0.3 ms on the CI machines).
_BROTLI_QUALITY = 5
_GZIP_LEVEL = 6


def choose(accept_encoding: str | None) -> str | None:
    """The codec to answer with for this `Accept-Encoding` (RFC 9110 12.5.3), or None."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, parameters = part.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name] = weight
    if "x-gzip" in weights and "gzip" not in weights:
        weights["gzip"] = weights["x-gzip"]
    wildcard = weights.get("*", 0.0)
    best: str | None = None
    best_weight = 0.0
    for codec in CODECS:
        weight = weights.get(codec, wildcard)
        if weight > best_weight:
            best, best_weight = codec, weight
    return best


def encode(body: bytes, codec: str) -> bytes:
    if codec == "br":
        compressed: bytes = brotli.compress(body, quality=_BROTLI_QUALITY)
        return compressed
    if codec == "gzip":
        return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
    raise ValueError(f"unknown codec {codec!r}")


def compressible(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.lower().startswith(COMPRESSIBLE)


def with_vary(headers: Iterable[tuple[bytes, bytes]], value: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` whose Vary names `value` too (one Vary header, its names kept)."""
    out: list[tuple[bytes, bytes]] = []
    names: list[bytes] = []
    for name, given in headers:
        if name.lower() == b"vary":
            names += [v.strip() for v in given.split(b",") if v.strip()]
        else:
            out.append((name, given))
    if value.lower() not in (n.lower() for n in names):
        names.append(value)
    out.append((b"vary", b", ".join(names)))
    return out


class Compress:
    """The middleware: see the module's docstring."""

    def __init__(self, app: ASGIApp, *, minimum: int) -> None:
        self.app = app
        self.minimum = minimum

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"accept-encoding":
                asked = value if asked is None else asked + b"," + value
        codec = choose(asked.decode("latin-1")) if asked else None
        scope[ENCODING_KEY] = codec
        if codec is None and scope["method"] != "GET":
            # Nothing to encode, and no cache keeps the answer to a POST: no Vary to add.
            await self.app(scope, receive, send)
            return
        start: Message | None = None

        async def sending(message: Message) -> None:
            nonlocal start
            kind = message["type"]
            if kind == "http.response.start":
                start = message
                return
            if kind != "http.response.body" or start is None:
                await send(message)
                return
            head, start = start, None
            head, message = self._encoded(head, message, codec)
            await send(head)
            await send(message)

        await self.app(scope, receive, sending)

    def _encoded(self, head: Message, first: Message, codec: str | None) -> tuple[Message, Message]:
        """The start of an answer and its first body message, encoded when they should be."""
        headers = list(head.get("headers", ()))
        content_type: bytes | None = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name in (b"content-encoding", b"content-range"):
                # Encoded already (a cache hit), or a part of a file: sent as it is.
                return head, first
        if not compressible(content_type) or first.get("more_body", False):
            return head, first  # not a type that shrinks, or streamed
        body: bytes = first.get("body", b"")
        if len(body) < self.minimum:
            return head, first
        headers = with_vary(headers, b"Accept-Encoding")
        if codec is None or head["status"] != 200:
            return {**head, "headers": headers}, first
        encoded = encode(body, codec)
        headers = [
            (n, tagged(v, codec) if n == b"etag" else v)
            for n, v in headers
            if n != b"content-length"
        ]
        headers += [
            (b"content-encoding", codec.encode()),
            (b"content-length", str(len(encoded)).encode()),
        ]
        return {**head, "headers": headers}, {**first, "body": encoded}


def tagged(etag: bytes, codec: str) -> bytes:
    """The entity tag of `codec`'s form of the representation tagged `etag`: each form is a
    representation of its own (RFC 9110 8.8.3), `"abc"` becoming `"abc-gzip"`."""
    if etag.endswith(b'"'):
        return etag[:-1] + b"-" + codec.encode() + b'"'
    return etag
