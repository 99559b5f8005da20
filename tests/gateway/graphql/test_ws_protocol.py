"""graphql-transport-ws to the letter (github.com/enisdenjo/graphql-ws, PROTOCOL.md), over a
real socket: the handshake, `connection_init`, per-operation errors, and whatever JSON (or
not JSON) a client sends in any place of any message, before or after the ack."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSyntaxError
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.http.app import create_app
from tests.strategies import served_examples
from tests.support import READ_KEY, live_server, make_settings

PROTOCOL = "graphql-transport-ws"
TIMEOUT = 5.0
TALK_UPDATED = "subscription { talkUpdated { id } }"
# Codes the protocol closes a socket with for what the client sent (PROTOCOL.md).
PROTOCOL_CLOSES = {4400, 4401, 4403, 4409, 4429}


@pytest.fixture
async def address(tmp_path: Path) -> AsyncIterator[str]:
    app: Starlette = create_app(make_settings(tmp_path, rate_limit_per_minute=1_000_000))
    async with live_server(app) as served:
        yield served


async def opened(address: str, *subprotocols: str) -> ClientConnection:
    return await connect(
        f"ws://{address}/graphql",
        subprotocols=list(subprotocols or (PROTOCOL,)),  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
    )


async def send(ws: ClientConnection, message: object) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(raw, str), f"a binary frame: {raw!r}"
    received: dict[str, Any] = json.loads(raw)
    return received


async def acked(ws: ClientConnection, payload: object = None) -> None:
    init = {
        "type": "connection_init",
        "payload": payload or {"authorization": f"Bearer {READ_KEY}"},
    }
    await send(ws, init)
    assert (await receive(ws)) == {"type": "connection_ack"}


async def close_code(ws: ClientConnection) -> int:
    try:
        while True:
            await receive(ws)
    except ConnectionClosed as closed:
        received = closed.rcvd
    assert received is not None, "dropped without a close frame (1006)"
    return received.code


# -- the handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize("offered", [("graphql-ws",), ("x-unknown",), ("graphql-ws", "mqtt")])
async def test_a_socket_offering_only_other_subprotocols_is_refused_at_the_handshake(
    address: str, offered: tuple[str, ...]
) -> None:
    # Before: a 101 without Sec-WebSocket-Protocol, then 4406: clients see a failed handshake.
    with pytest.raises(InvalidStatus) as refused:
        await opened(address, *offered)
    assert refused.value.response.status_code == 403


async def test_graphql_transport_ws_among_other_subprotocols_is_chosen(address: str) -> None:
    async with await opened(address, "graphql-ws", PROTOCOL) as ws:
        assert ws.subprotocol == PROTOCOL
        await acked(ws)


async def test_a_socket_offering_no_subprotocol_is_closed_4406(address: str) -> None:
    async with await connect(f"ws://{address}/graphql", open_timeout=TIMEOUT) as ws:
        assert await close_code(ws) == 4406


# -- connection_init -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message", [{"type": "connection_init", "payload": None}, {"type": "connection_init"}]
)
async def test_connection_init_without_parameters_is_taken_as_none(
    tmp_path: Path, message: dict[str, Any]
) -> None:
    # Before: `"payload": null` closed the socket 4400. In the demo, loopback needs no key.
    app = create_app(make_settings(tmp_path, demo=True))
    async with live_server(app) as served, await opened(served) as ws:
        await send(ws, message)
        assert (await receive(ws))["type"] == "connection_ack"


@pytest.mark.parametrize("payload", [[], 1, "x", True, [{"authorization": "Bearer k"}]])
async def test_connection_init_with_a_payload_that_is_not_an_object_closes_4400(
    address: str, payload: object
) -> None:
    async with await opened(address) as ws:
        await send(ws, {"type": "connection_init", "payload": payload})
        assert await close_code(ws) == 4400


# -- errors are the operation's, and typed ---------------------------------------------------

PER_OPERATION = {
    "a syntax error": ("subscription { talkUpdated { id ", None),
    "a validation error": ("subscription { talkUpdated { nope } }", None),
    # Incremental delivery is off: the schema has no @defer, and validation says so.
    "@defer": ("subscription { talkUpdated { id ... @defer { queueId } } }", None),
    "an unknown operation name": ("subscription A { talkUpdated { id } }", "Bsecret"),
    # GraphQL's GetOperation: several operations and no name is an error, as over HTTP
    # (strawberry ran the first, a live subscription).
    "several operations, none named": (
        "subscription A { talkUpdated { id } } subscription B { talkUpdated { queueId } }",
        None,
    ),
    "a query and a subscription, none named": (
        "query Q { __typename } subscription S { talkUpdated { id } }",
        None,
    ),
}


@pytest.mark.parametrize(
    ("query", "operation_name"), list(PER_OPERATION.values()), ids=list(PER_OPERATION)
)
async def test_a_document_that_cannot_run_is_an_error_for_its_operation_only(
    address: str, query: str, operation_name: str | None
) -> None:
    # Before: a syntax error or a missing operation closed the socket 4400 with all on it.
    async with await opened(address) as ws:
        await acked(ws)
        await send(ws, {"id": "keep", "type": "subscribe", "payload": {"query": TALK_UPDATED}})
        payload: dict[str, Any] = {"query": query}
        if operation_name is not None:
            payload["operationName"] = operation_name
        await send(ws, {"id": "bad", "type": "subscribe", "payload": payload})
        error = await receive(ws)
        assert (error["type"], error["id"]) == ("error", "bad"), error
        assert error["payload"], error
        for each in error["payload"]:
            assert each["extensions"]["code"] == "BAD_USER_INPUT", each
            assert "secret" not in each["message"], each
        # The socket and its other subscription are still up: `keep` is still in use.
        await send(ws, {"type": "ping"})
        assert (await receive(ws)) == {"type": "pong"}
        await send(ws, {"id": "keep", "type": "subscribe", "payload": {"query": TALK_UPDATED}})
        assert await close_code(ws) == 4409


async def test_the_subscription_limit_is_a_typed_error_and_the_socket_stays(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, max_subscriptions_per_connection=2))
    async with live_server(app) as served, await opened(served) as ws:
        await acked(ws)
        for op_id in ("1", "2", "3"):
            await send(ws, {"id": op_id, "type": "subscribe", "payload": {"query": TALK_UPDATED}})
        refused = await receive(ws)
        assert (refused["type"], refused["id"]) == ("error", "3"), refused
        [error] = refused["payload"]
        # Before: no `extensions` at all.
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "limit": 2}, error
        assert "limit" in error["message"].lower()
        await send(ws, {"id": "1", "type": "complete"})
        await send(ws, {"id": "3", "type": "subscribe", "payload": {"query": TALK_UPDATED}})
        await send(ws, {"type": "ping"})
        assert (await receive(ws)) == {"type": "pong"}


def test_strawberry_still_closes_the_socket_on_a_syntax_error() -> None:
    """The day this fails, strawberry has the fix of patches/strawberry-graphql-transport-ws
    .patch: drop `_LimitedOperations._get_pre_execution_close_reason` and the other overrides
    it names, and bump the pin."""
    reason = BaseGraphQLTransportWSHandler._get_pre_execution_close_reason(
        GraphQLSyntaxError(None, 0, "Unexpected <EOF>.")  # type: ignore[arg-type]
    )
    assert reason is not None


# -- every JSON value in every place of every message, before and after the ack --------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
VALID = {
    "connection_init": {"type": "connection_init", "payload": {}},
    "ping": {"type": "ping", "payload": {}},
    "pong": {"type": "pong", "payload": {}},
    "subscribe": {
        "id": "x",
        "type": "subscribe",
        "payload": {
            "query": "{ __typename }",
            "variables": {},
            "operationName": None,
            "extensions": {},
        },
    },
    "complete": {"id": "x", "type": "complete"},
}


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """A frame: not JSON, binary, JSON that is no object, or a message with one place
    (the type, the id, the payload or one of its fields) holding any JSON value."""
    kind = draw(
        st.sampled_from(["message", "message", "message", "not an object", "not json", "binary"])
    )
    if kind == "not json":
        return draw(st.sampled_from(["", "{", "nul", "{'type': 'ping'}", "[1,]", "\ufeff{}"]))
    if kind == "binary":
        return json.dumps(VALID[draw(st.sampled_from(sorted(VALID)))]).encode()
    if kind == "not an object":
        return json.dumps(draw(JSON.filter(lambda v: not isinstance(v, dict))))
    message: dict[str, Any] = json.loads(json.dumps(VALID[draw(st.sampled_from(sorted(VALID)))]))
    places = ["type", "id", "payload"] + [f"payload.{k}" for k in message.get("payload") or {}]
    place = draw(st.sampled_from(places))
    value = draw(JSON)
    if place.startswith("payload."):
        message["payload"][place.removeprefix("payload.")] = value
    else:
        message[place] = value
    return json.dumps(message)


def _lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """What an operator reads: talkgate's and strawberry's lines, and any warning or error
    (but for the `keep` subscription's own line)."""
    ours = ("talkgate", "strawberry")
    return [
        r
        for r in records
        if r.getMessage() != "joined a shared subscription"
        and (
            r.levelno >= logging.WARNING
            or r.exc_info
            or (r.levelno >= logging.INFO and r.name.split(".")[0] in ours)
        )
    ]


@served_examples(100, shrink=False)
@given(frame=frames(), after_ack=st.booleans())
async def test_any_frame_closes_with_a_protocol_code_or_leaves_the_socket_up(
    address: str, caplog: pytest.LogCaptureFixture, frame: str | bytes, after_ack: bool
) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        async with await opened(address) as ws:
            if after_ack:
                await acked(ws)
                await send(
                    ws, {"id": "keep", "type": "subscribe", "payload": {"query": TALK_UPDATED}}
                )
            await ws.send(frame)
            await send(ws, {"type": "ping"})
            code: int | None = None
            try:
                while (answer := await receive(ws)) != {"type": "pong"}:
                    # The frame's own operation may answer; `keep` never ends because of it.
                    assert answer.get("id") != "keep", answer
            except ConnectionClosed as closed:
                received = closed.rcvd
                assert received is not None, "dropped without a close frame (1006)"
                code = received.code
        if isinstance(frame, bytes) or not isinstance(_decoded(frame), dict):
            assert code == 4400, (frame, code)
        elif code is not None:
            assert code in PROTOCOL_CLOSES, (frame, code)
        for _ in range(100):  # the access line is written when the server side ends
            if any(r.name == "talkgate.access" for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    lines = _lines(caplog.records)
    assert not [r for r in lines if r.exc_info or r.levelno >= logging.ERROR], lines
    assert len(lines) <= 1, [r.getMessage() for r in lines]


def _decoded(frame: str) -> object:
    try:
        return json.loads(frame)
    except ValueError:
        return None
