"""read_limited: the one body reader, over any split of a body into ASGI messages."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.http.request_body import ClientDisconnect, read_limited


def _receiver(messages: list[dict[str, Any]]) -> Any:
    given_out = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(given_out)

    return receive


def _split(body: bytes, cuts: list[int]) -> list[dict[str, Any]]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    chunks = [body[a:b] for a, b in pairwise(points)] or [b""]
    return [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]


@settings(max_examples=300, deadline=None, database=None)
@given(
    body=st.binary(max_size=64),
    cuts=st.lists(st.integers(0, 64), max_size=6),
    limit=st.integers(0, 70),
)
def test_any_split_reads_the_body_or_its_first_limit_plus_one_bytes(
    body: bytes, cuts: list[int], limit: int
) -> None:
    read, size = asyncio.run(read_limited(_receiver(_split(body, cuts)), limit))
    if len(body) <= limit:
        assert (read, size) == (body, len(body))
    else:
        # Stopped at the message that went over: the start kept, the rest never asked for.
        assert read == body[: limit + 1]
        assert limit < size <= len(body)


def test_a_client_gone_before_the_end_is_a_disconnect_not_a_short_body() -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"query":', "more_body": True},
        {"type": "http.disconnect"},
    ]
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_limited(_receiver(messages), 1000))


def test_nothing_past_the_message_that_goes_over_is_read() -> None:
    messages = [
        {"type": "http.request", "body": b"12345", "more_body": True},
        {"type": "http.request", "body": b"67890", "more_body": True},
    ]  # a third receive would raise StopIteration
    assert asyncio.run(read_limited(_receiver(messages), 7)) == (b"12345678", 10)
