"""Subscriptions over a real WebSocket (graphql-transport-ws) on a loopback server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.replicas.pubsub import LocalFanout
from tests.factories import message, talk
from tests.support import (
    AGENT_LOGIN,
    AGENT_PASSWORD,
    ALL_KEY,
    NO_SCOPE_KEY,
    READ_KEY,
    TALK_UPDATED,
    GraphQLSocket,
    live_server,
    make_settings,
    open_socket,
    post_talk,
    talkme_settings,
    until_subscribed,
)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[str]:
    """The address of a gateway on its own SQLite file."""
    async with live_server(create_app(make_settings(tmp_path))) as address:
        yield address


@asynccontextmanager
async def talk_subscriber(
    address: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[GraphQLSocket]:
    """A socket acknowledged for READ_KEY and subscribed to TALK_UPDATED, once the gateway
    at `address` counts the subscription."""
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        assert (await client.init(READ_KEY))["type"] == "connection_ack"
        await client.subscribe(TALK_UPDATED, variables)
        await until_subscribed(address, "talks")
        yield client


async def test_a_delivered_talk_reaches_its_subscriber(served: str) -> None:
    address = served
    async with talk_subscriber(address) as client:
        await post_talk(address, talk(7001))
        event = await client.receive()
    assert event["type"] == "next"
    assert event["payload"]["data"]["talkUpdated"] == {
        "id": "7001",
        "queueId": "17",
        "histories": {"totalCount": 3},
        "customer": {"name": "JONAS"},
    }


async def test_a_filter_lets_only_matching_talks_through(served: str) -> None:
    address = served
    async with talk_subscriber(address, {"filter": {"queueId": "99", "text": "boleto"}}) as client:
        await post_talk(address, talk(7002, queue_id=99))  # no "boleto" in its messages
        await post_talk(address, talk(7003, queue_id=5))
        wanted = talk(7004, queue_id=99)
        wanted["talk_histories"].append(message(7004_01, "segunda via do boleto", talk_id=7004))
        await post_talk(address, wanted)
        event = await client.receive()
    assert event["payload"]["data"]["talkUpdated"]["id"] == "7004"


async def test_a_redelivery_that_changes_nothing_is_not_pushed(
    served: str,
) -> None:
    address = served
    async with talk_subscriber(address) as client:
        await post_talk(address, talk(7005))
        await post_talk(address, talk(7005))  # the same body again
        await post_talk(address, talk(7006))
        first = await client.receive()
        second = await client.receive()
    ids = [e["payload"]["data"]["talkUpdated"]["id"] for e in (first, second)]
    assert ids == ["7005", "7006"]


async def test_each_event_is_read_fresh_not_from_an_earlier_event(
    served: str,
) -> None:
    address = served
    async with talk_subscriber(address) as client:
        await post_talk(address, talk(7007))
        renamed = talk(7008)
        renamed["customer"]["name"] = "JONAS RENAMED"
        await post_talk(address, renamed)
        await client.receive()
        second = await client.receive()
    assert second["payload"]["data"]["talkUpdated"]["customer"]["name"] == "JONAS RENAMED"


@pytest.mark.parametrize("key", [None, "tgk_wrong"], ids=["missing", "wrong"])
async def test_a_socket_without_a_valid_key_gets_no_ack_and_is_closed_4403(
    served: str, key: str | None
) -> None:
    address = served
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        payload = {"authorization": f"Bearer {key}"} if key else {}
        await client.send({"type": "connection_init", "payload": payload})
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_subscribing_before_the_ack_closes_the_socket_4401(
    served: str,
) -> None:
    address = served
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        await client.subscribe(TALK_UPDATED)
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_the_key_scopes_apply_to_what_is_pushed(served: str) -> None:
    address = served
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        assert (await client.init(NO_SCOPE_KEY))["type"] == "connection_ack"
        await client.subscribe(TALK_UPDATED)
        answer = await client.receive()
    # Refused before any event: the protocol's `error` message, with our typed error.
    assert answer["type"] == "error", answer
    assert answer["payload"][0]["extensions"]["code"] == "FORBIDDEN", answer


async def test_the_legacy_graphql_ws_protocol_is_refused(served: str) -> None:
    address = served
    with pytest.raises(Exception, match=r"subprotocol|4406|rejected"):
        async with await open_socket(address, subprotocol="graphql-ws") as ws:
            await GraphQLSocket(ws).init(READ_KEY)


async def test_subscriptions_per_connection_are_capped(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, max_subscriptions_per_connection=2))
    async with live_server(app) as address, await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        await client.init(READ_KEY)
        for op_id in ("1", "2", "3"):
            await client.subscribe(TALK_UPDATED, op_id=op_id)
        refused = await client.receive()
    assert refused["id"] == "3"
    assert refused["type"] == "error"
    assert "limit" in refused["payload"][0]["message"].lower()


async def test_a_slow_subscriber_loses_its_oldest_events_counted() -> None:
    # The app hands the fanout this counter as its on_drop (gateway/http/app.py); a socket
    # client cannot be made slow on purpose, as the kernel's buffers take what it leaves.
    metrics = Metrics()
    fanout = LocalFanout(2, metrics.dropped_events.inc)
    async with fanout.subscription("talks") as slow:
        for talk_id in range(1, 6):
            fanout.deliver("talks", {"id": talk_id})
        kept = [await slow.next(), await slow.next()]
    assert kept == [{"id": 4}, {"id": 5}]
    exposed = generate_latest(metrics.registry).decode()
    assert "talkgate_subscription_events_dropped_total 3.0" in exposed


async def test_agent_status_changes_are_pushed(tmp_path: Path, sandbox: Starlette) -> None:
    app = create_app(talkme_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    query = "subscription($l: String) { agentStatusChanged(login: $l) { login status changedAt } }"
    async with live_server(app) as address, await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        await client.init(READ_KEY)
        await client.subscribe(query, {"l": AGENT_LOGIN})
        await until_subscribed(address, "agent-status")
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            response = await http.post(
                "/graphql",
                json={
                    "query": "mutation($i: AgentAuthInput!) { pauseAgent(input: $i) { status } }",
                    "variables": {
                        "i": {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}
                    },
                },
                headers={"Authorization": f"Bearer {ALL_KEY}"},
            )
            assert response.json()["data"]["pauseAgent"]["status"] == "PAUSED"
        event = await client.receive()
    pushed = event["payload"]["data"]["agentStatusChanged"]
    assert pushed["login"] == AGENT_LOGIN
    assert pushed["status"] == "PAUSED"
    assert pushed["changedAt"].endswith("Z")


async def test_a_websocket_session_is_logged_as_switched_protocols(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    address = served
    with caplog.at_level(logging.INFO, logger="talkgate.access"):
        async with await open_socket(address) as ws:
            await GraphQLSocket(ws).init(READ_KEY)
        for _ in range(100):  # the access line is written when the server side ends
            if any(r.__dict__.get("method") == "WS" for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    [line] = [r for r in caplog.records if r.__dict__.get("method") == "WS"]
    assert line.__dict__["status"] == 101


# Frames strawberry's handler used to trip over (TypeError: the socket dropped, no close code).
MALFORMED = {
    "an array": "[]",
    "a number": "1",
    "a string": '"subscribe"',
    "null": "null",
    "a type that is not a string": '{"type": ["subscribe"]}',
    "an unknown type": json.dumps({"type": "x" * 300}),
    "a payload that is a list": '{"id": "1", "type": "subscribe", "payload": []}',
    "a query that is a number": '{"id": "1", "type": "subscribe", "payload": {"query": 1}}',
    "variables that are a list": json.dumps(
        {"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": [1]}}
    ),
    "an operation name that is a number": json.dumps(
        {"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "operationName": 5}}
    ),
    "an id that is a list": json.dumps(
        {"id": [1], "type": "subscribe", "payload": {"query": "{ __typename }"}}
    ),
    "an id too long for a close reason": json.dumps(
        {"id": "i" * 200, "type": "subscribe", "payload": {"query": "{ __typename }"}}
    ),
    "a complete with a list for id": '{"id": [], "type": "complete"}',
}


@pytest.mark.parametrize("frame", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_a_malformed_message_closes_the_socket_4400(served: str, frame: str) -> None:
    address = served
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        assert (await client.init(READ_KEY))["type"] == "connection_ack"
        await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None, "dropped without a close frame"
    assert closed.value.rcvd.code == 4400
