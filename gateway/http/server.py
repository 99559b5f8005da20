"""How `talkgate serve` runs the app under uvicorn: sizes and timeouts at the connection.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) but nothing before a
request's headers are complete: its httptools protocol arms no timer until a response has been
sent, and cancels the keep-alive timer at the first byte of the next request. A client that
opens connections and sends half a header line (slowloris), or nothing, holds each one, and
its file descriptor, for as long as it likes; one that streams header lines has them all
buffered. uvicorn has no setting for either (its h11 protocol caps header size, not time), so
the protocol below adds the two: a deadline for the headers and a cap on their size.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

# Far above any real request's headers (browsers send 1-2 KiB; nginx refuses past 32 KiB by
# default), far below what buffering a stream of header lines costs.
MAX_HEADER_BYTES = 64 * 1024


def _answer(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


_TIMED_OUT = _answer(b"408 Request Timeout", b"the request headers did not arrive in time")
_TOO_LARGE = _answer(b"431 Request Header Fields Too Large", b"the request headers are too large")


class ServeConfig(uvicorn.Config):
    """uvicorn's configuration with the header deadline of HeaderDeadline.

    uvicorn builds the protocol from `config` alone, and `serve --workers N` pickles the
    config into each worker: the deadline rides on it, the protocol class is named by
    reference.
    """

    def __init__(self, app: ASGIApp | str, *, header_timeout_s: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout_s = header_timeout_s


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol; a connection whose request headers are not complete
    `header_timeout_s` after it opened (or after that request's first byte) is closed, and so
    is one that sends more than MAX_HEADER_BYTES of them."""

    # Under a plain uvicorn.Config; a ServeConfig says its own.
    header_timeout_s: ClassVar[float] = 10.0
    _deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _began = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self._deadline is not None
        super().data_received(data)
        # Bytes of a chunk in which the headers completed are not counted (a body may follow).
        if waiting and self._deadline is not None:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._header_bytes = 0
        timeout_s = (
            self.config.header_timeout_s
            if isinstance(self.config, ServeConfig)
            else self.header_timeout_s
        )
        self._deadline = self.loop.call_later(timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._began = False

    def _expired(self) -> None:
        self._deadline = None
        # A connection that never began a request is closed without a word, as uvicorn closes
        # an idle keep-alive one.
        self._refuse(_TIMED_OUT if self._began else b"")

    def _refuse(self, answer: bytes) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if answer:
            self.transport.write(answer)
        self.transport.close()


def uvicorn_config(
    app: ASGIApp | str,
    settings: Settings,
    *,
    port: int | None = None,
    workers: int = 1,
) -> uvicorn.Config:
    """The uvicorn configuration `talkgate serve` runs `app` with (tests serve with it too).

    With `workers` > 1, `app` names a factory ("module:function") each worker calls.
    """
    return ServeConfig(
        app,
        header_timeout_s=settings.header_timeout_s,
        factory=workers > 1,
        workers=workers,
        host=settings.host,
        port=settings.port if port is None else port,
        http=HeaderDeadline,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        # A WebSocket message is held to the limit of an HTTP request body.
        ws_max_size=settings.graphql_max_bytes,
        # Subscription messages are ~100 bytes: compressing each one on its own, for each
        # subscriber, cost a sixth of the event loop in the soak and saved little.
        ws_per_message_deflate=False,
    )
