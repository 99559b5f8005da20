"""Subscribers holding the same subscription share one execution per event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection

from gateway.graphql.coalesced_streams import CoalescedStreams
from gateway.graphql.endpoint import GraphQLEndpoint
from gateway.http.app import create_app
from gateway.storage.sqlite import SQLiteStore
from tests.factories import talk
from tests.support import (
    ALL_KEY,
    NO_SCOPE_KEY,
    READ_KEY,
    TALK_UPDATED,
    GraphQLSocket,
    event_streams,
    live_server,
    make_settings,
    open_socket,
    post_talk,
)

PII = "subscription { talkUpdated { id: databaseId customer { documentNumber } } }"


def _shared(app: Starlette) -> CoalescedStreams[Any]:
    [route] = [r for r in app.routes if isinstance(r, WebSocketRoute) and r.path == "/graphql"]
    assert isinstance(route.app, GraphQLEndpoint)
    shared: CoalescedStreams[Any] = route.app.view.schema.shared  # type: ignore[attr-defined]
    return shared


async def until_streams(app: Starlette, counts: Sequence[int]) -> None:
    """Wait until the shared streams have these numbers of subscribers (in any order)."""
    for _ in range(1500):
        if sorted(_shared(app).subscriber_counts()) == sorted(counts):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"streams {_shared(app).subscriber_counts()}, not {list(counts)}")


async def until_no_event_stream(address: str) -> None:
    for _ in range(1500):
        if await event_streams(address, "talks") == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the broker still has a subscriber")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Starlette, str]]:
    app = create_app(make_settings(tmp_path))
    async with live_server(app) as address:
        yield app, address


@pytest.fixture
def talk_reads(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[int]]:
    """The ids of every `talks_by_id` read of the SQLite store, in order."""
    reads: list[Sequence[int]] = []
    original = SQLiteStore.talks_by_id

    async def counted(self: SQLiteStore, ids: Sequence[int]) -> dict[int, Any]:
        reads.append(list(ids))
        return await original(self, ids)

    monkeypatch.setattr(SQLiteStore, "talks_by_id", counted)
    return reads


async def subscribed(
    stack: AsyncExitStack, address: str, key: str, query: str, variables: dict[str, Any] | None
) -> GraphQLSocket:
    ws: ClientConnection = await stack.enter_async_context(await open_socket(address))
    client = GraphQLSocket(ws)
    assert (await client.init(key))["type"] == "connection_ack"
    await client.subscribe(query, variables)
    return client


async def test_subscribers_of_the_same_subscription_share_one_read_per_event(
    served: tuple[Starlette, str], talk_reads: list[Sequence[int]]
) -> None:
    app, address = served
    async with AsyncExitStack() as stack:
        clients = [await subscribed(stack, address, READ_KEY, TALK_UPDATED, None) for _ in range(3)]
        await until_streams(app, [3])
        assert await event_streams(address, "talks") == 1
        await post_talk(address, talk(7101))
        events = [await client.receive() for client in clients]
    assert [e["payload"]["data"]["talkUpdated"]["id"] for e in events] == ["7101"] * 3
    assert talk_reads == [[7101]]


async def test_subscribers_with_different_scopes_do_not_share(
    served: tuple[Starlette, str],
) -> None:
    app, address = served
    payload = talk(7102)
    payload["customer"]["document_number"] = "12345678909"
    async with AsyncExitStack() as stack:
        reader = await subscribed(stack, address, READ_KEY, PII, None)
        operator = await subscribed(stack, address, ALL_KEY, PII, None)
        await until_streams(app, [1, 1])
        await post_talk(address, payload)
        seen_by_reader = await reader.receive()
        seen_by_operator = await operator.receive()
    assert seen_by_reader["payload"]["data"]["talkUpdated"]["customer"] == {"documentNumber": None}
    assert seen_by_reader["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert seen_by_operator["payload"]["data"]["talkUpdated"]["customer"] == {
        "documentNumber": "12345678909"
    }
    assert "errors" not in seen_by_operator["payload"]


async def test_subscribers_with_different_variables_do_not_share(
    served: tuple[Starlette, str],
) -> None:
    app, address = served
    async with AsyncExitStack() as stack:
        queue_17 = await subscribed(
            stack, address, READ_KEY, TALK_UPDATED, {"filter": {"queueId": "17"}}
        )
        queue_99 = await subscribed(
            stack, address, READ_KEY, TALK_UPDATED, {"filter": {"queueId": "99"}}
        )
        await until_streams(app, [1, 1])
        await post_talk(address, talk(7103, queue_id=17))
        await post_talk(address, talk(7104, queue_id=99))
        first_17 = await queue_17.receive()
        first_99 = await queue_99.receive()
    assert first_17["payload"]["data"]["talkUpdated"]["id"] == "7103"
    assert first_99["payload"]["data"]["talkUpdated"]["id"] == "7104"


async def test_a_later_subscriber_gets_only_later_events(served: tuple[Starlette, str]) -> None:
    app, address = served
    async with AsyncExitStack() as stack:
        early = await subscribed(stack, address, READ_KEY, TALK_UPDATED, None)
        await until_streams(app, [1])
        await post_talk(address, talk(7105))
        assert (await early.receive())["payload"]["data"]["talkUpdated"]["id"] == "7105"
        late = await subscribed(stack, address, READ_KEY, TALK_UPDATED, None)
        await until_streams(app, [2])
        await post_talk(address, talk(7106))
        seen_late = await late.receive()
        seen_early = await early.receive()
    assert seen_late["payload"]["data"]["talkUpdated"]["id"] == "7106"
    assert seen_early["payload"]["data"]["talkUpdated"]["id"] == "7106"


async def test_the_shared_stream_stops_when_its_last_subscriber_leaves(
    served: tuple[Starlette, str],
) -> None:
    app, address = served
    async with AsyncExitStack() as stack:
        first = await subscribed(stack, address, READ_KEY, TALK_UPDATED, None)
        second = await subscribed(stack, address, READ_KEY, TALK_UPDATED, None)
        await until_streams(app, [2])
        assert await event_streams(address, "talks") == 1
        await first.send({"id": "1", "type": "complete"})
        await until_streams(app, [1])
        assert await event_streams(address, "talks") == 1
        await second.ws.close()
        await until_streams(app, [])
        await until_no_event_stream(address)


async def test_a_refusal_reaches_every_subscriber(served: tuple[Starlette, str]) -> None:
    _, address = served
    async with AsyncExitStack() as stack:
        clients = [
            await subscribed(stack, address, NO_SCOPE_KEY, TALK_UPDATED, None) for _ in range(2)
        ]
        clients += [
            await subscribed(
                stack, address, READ_KEY, "subscription { talkUpdated { nope } }", None
            )
            for _ in range(2)
        ]
        answers = [await client.receive() for client in clients]
    assert [a["type"] for a in answers] == ["error"] * 4
    codes = [a["payload"][0]["extensions"]["code"] for a in answers]
    assert codes == ["FORBIDDEN", "FORBIDDEN", "BAD_USER_INPUT", "BAD_USER_INPUT"]


async def test_a_query_over_the_socket_is_not_shared(served: tuple[Starlette, str]) -> None:
    app, address = served
    async with AsyncExitStack() as stack:
        client = await subscribed(
            stack, address, READ_KEY, "{ talks(first: 1) { totalCount } }", None
        )
        answer = await client.receive()
        assert answer["type"] == "next"
        assert _shared(app).subscriber_counts() == []
        assert (await client.receive())["type"] == "complete"


async def _source(items: asyncio.Queue[int | None]) -> AsyncGenerator[int, None]:
    while (item := await items.get()) is not None:
        yield item


async def test_a_slow_subscriber_loses_its_oldest_items_without_holding_up_the_others() -> None:
    drops: list[None] = []
    shared: CoalescedStreams[int] = CoalescedStreams()
    items: asyncio.Queue[int | None] = asyncio.Queue()

    async def start(request_id: str) -> AsyncGenerator[int, None]:
        return _source(items)

    fast = shared.join("key", start, queue_size=2, on_drop=lambda: drops.append(None))
    slow = shared.join("key", start, queue_size=2, on_drop=lambda: drops.append(None))
    firsts = [asyncio.ensure_future(anext(fast)), asyncio.ensure_future(anext(slow))]
    await items.put(1)
    assert await asyncio.gather(*firsts) == [1, 1]  # the slow one reads nothing more until the end
    seen_fast = []
    for item in (2, 3, 4, 5, 6):
        await items.put(item)
        seen_fast.append(await anext(fast))
    await items.put(None)  # the source ends
    seen_slow = [item async for item in slow]
    assert seen_fast == [2, 3, 4, 5, 6]
    assert seen_slow == [5, 6]
    assert len(drops) == shared.dropped == 3
    assert [item async for item in fast] == []
    assert shared.subscriber_counts() == []


async def test_the_source_is_cancelled_when_the_last_subscriber_leaves() -> None:
    shared: CoalescedStreams[int] = CoalescedStreams()
    items: asyncio.Queue[int | None] = asyncio.Queue()
    closed = asyncio.Event()

    async def source() -> AsyncGenerator[int, None]:
        try:
            async for item in _source(items):
                yield item
        finally:
            closed.set()

    async def start(request_id: str) -> AsyncGenerator[int, None]:
        return source()

    one = shared.join("key", start, queue_size=10)
    two = shared.join("key", start, queue_size=10)
    firsts = [asyncio.ensure_future(anext(one)), asyncio.ensure_future(anext(two))]
    await items.put(1)
    assert await asyncio.gather(*firsts) == [1, 1]
    await one.aclose()
    assert not closed.is_set()
    await two.aclose()
    assert closed.is_set()
    assert shared.subscriber_counts() == []
