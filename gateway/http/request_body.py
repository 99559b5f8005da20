"""Reading a request's body no further than a limit: the one reader for every endpoint.

A client may declare any Content-Length, or none, and then send without end; the webhook and
GraphQL over HTTP both read through `read_limited`, which stops one byte past the limit.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive

__all__ = ["ClientDisconnect", "read_limited"]


async def read_limited(receive: Receive, limit: int) -> tuple[bytes, int]:
    """The body read from `receive`, no further than `limit` + 1 bytes (so the caller can
    keep the start of one too large), and how many bytes had arrived when reading stopped:
    more than `limit` means the body is over it. Raises ClientDisconnect when the client goes
    away before the body's end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: max(limit + 1 - (size - len(chunk)), 0)])
            return b"".join(chunks), size
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), size
