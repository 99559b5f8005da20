"""Abuse at the GraphQL transport edge: WebSocket operations and the rate limit, nested JSON in
every place a request carries it, WebSocket frame sizes, and connections that never finish
their headers (slowloris). Each shape runs once under its bounds (tests/abuse/bounds.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.http.app import create_app
from gateway.http.server import MAX_HEADER_BYTES
from gateway.nesting import nests_deeper
from gateway.settings import Settings
from tests.abuse.bounds import bounded
from tests.support import (
    PROTOCOL,
    READ_KEY,
    WEBHOOK_SECRET,
    GraphQLSocket,
    live_server,
    make_settings,
    serving,
)

LIMIT = 64  # TALKGATE_MAX_JSON_DEPTH's default
QUERY = "{ talks { totalCount } }"
BEARER = {"Authorization": f"Bearer {READ_KEY}"}


def nested_text(depth: int, kind: str) -> str:
    """JSON text of containers `depth` levels deep: `[[...]]` or `{"a":{"a":...}}`."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@asynccontextmanager
async def live(settings: Settings) -> AsyncIterator[tuple[Starlette, str]]:
    """The app under uvicorn as `talkgate serve` configures it."""
    app = create_app(settings)
    async with live_server(app, settings) as address:
        yield app, address


async def authenticated_socket(address: str, **options: Any) -> Any:
    ws = await connect(
        f"ws://{address}/graphql",
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        **options,
    )
    assert (await GraphQLSocket(ws).init(READ_KEY))["type"] == "connection_ack"
    return ws


async def closed_code(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None, "dropped without a close frame (a crashed handler)"
    return closed.value.rcvd.code, closed.value.rcvd.reason


# -- finding 2: WebSocket operations and the rate limit -------------------------------------


async def test_a_socket_flooding_operations_gets_no_more_than_its_key_allows(
    tmp_path: Path,
) -> None:
    # The shape: 1,500 queries over one socket with a 600-a-minute key.
    settings = make_settings(tmp_path)
    async with live(settings) as (_, address):
        ws = await authenticated_socket(address)
        client = GraphQLSocket(ws)
        outcomes: dict[str, int] = {}
        async with bounded("ws 1,500 queries, 600/min key", seconds=30, peak_mib=64) as figures:
            started = time.perf_counter()
            for n in range(1500):
                await client.subscribe(QUERY, op_id=str(n))
                while True:
                    received = await client.receive()
                    if received["type"] == "error":
                        code = received["payload"][0]["extensions"]["code"]
                        outcomes[code] = outcomes.get(code, 0) + 1
                        break
                    if received["type"] == "next":
                        outcomes["ok"] = outcomes.get("ok", 0) + 1
                    if received["type"] == "complete":
                        break
            elapsed = time.perf_counter() - started
            figures.extra.update(outcomes)
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            after = await http.post("/graphql", json={"query": QUERY}, headers=BEARER)
        await ws.close()
    # 600 at once, then a token every 0.1 s.
    assert set(outcomes) == {"ok", "RATE_LIMITED"}, outcomes
    assert outcomes["ok"] <= 600 + 10 * elapsed + 1, outcomes
    assert outcomes["ok"] + outcomes["RATE_LIMITED"] == 1500
    assert after.status_code in (200, 429)  # a token may have come back meanwhile


# -- finding 5: nested JSON at the HTTP edge ------------------------------------------------

PLACES: dict[str, Callable[[str], tuple[str, str | bytes, int]]] = {
    # Each gives the request (method, body or query string) for a nested JSON text, and how
    # many levels the request's own JSON adds around it.
    "POST variables": lambda t: ("POST", f'{{"query":"{QUERY}","variables":{{"v":{t}}}}}', 2),
    "POST extensions": lambda t: ("POST", f'{{"query":"{QUERY}","extensions":{{"x":{t}}}}}', 2),
    "POST batch": lambda t: ("POST", f'[{{"query":"{QUERY}","variables":{{"v":{t}}}}}]', 3),
    "POST body": lambda t: ("POST", t, 0),
    "GET variables": lambda t: (
        "GET",
        urllib.parse.urlencode({"query": QUERY, "variables": f'{{"v":{t}}}'}),
        1,
    ),
    "GET extensions": lambda t: (
        "GET",
        urllib.parse.urlencode({"query": QUERY, "extensions": f'{{"x":{t}}}'}),
        1,
    ),
}


async def send(client: httpx.AsyncClient, method: str, payload: str | bytes) -> httpx.Response:
    if method == "GET":
        return await client.get(f"/graphql?{payload!s}", headers=BEARER)
    headers = {**BEARER, "content-type": "application/json"}
    return await client.post("/graphql", content=payload, headers=headers)


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(make_settings(tmp_path, rate_limit_per_minute=10_000))) as c:
        yield c


@pytest.mark.parametrize("kind", ["list", "object"])
@pytest.mark.parametrize("place", list(PLACES))
async def test_json_nested_past_the_limit_is_a_400_in_every_place(
    edge: httpx.AsyncClient, place: str, kind: str
) -> None:
    build = PLACES[place]
    _, _, around = build("1")
    # A URL stops at 64 KiB (httpx here, the header cap at the server): 3,000 levels for GET.
    deepest = 3_000 if place.startswith("GET") else 100_000
    for depth in (LIMIT + 1, 255, 256, 1023, 1024, 1025, deepest):
        inner = depth - around
        if inner < 1:
            continue
        method, payload, _ = build(nested_text(inner, kind))
        name = f"{place} {kind} {depth} levels"
        async with bounded(name, seconds=5, peak_mib=48):
            response = await send(edge, method, payload)
        assert response.status_code == 400, (name, response.text[:200])
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT"}, name
        assert f"nested deeper than {LIMIT} levels" in error["message"], name


@pytest.mark.parametrize("kind", ["list", "object"])
@pytest.mark.parametrize("place", [p for p in PLACES if p not in ("POST body", "POST batch")])
async def test_json_nested_up_to_the_limit_runs(
    edge: httpx.AsyncClient, place: str, kind: str
) -> None:
    build = PLACES[place]
    _, _, around = build("1")
    for depth in (LIMIT - 1, LIMIT):
        method, payload, _ = build(nested_text(depth - around, kind))
        response = await send(edge, method, payload)
        assert response.status_code == 200, (place, depth, response.text[:200])
        assert response.json()["data"] == {"talks": {"totalCount": 0}}


async def test_a_body_too_deep_for_orjson_is_a_400_not_a_recursion_error(
    edge: httpx.AsyncClient,
) -> None:
    # Past 1,024 levels orjson refuses the text itself; strawberry's json.loads used to
    # try next and raise RecursionError (a 500).
    for text in ("[" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
        response = await send(edge, "POST", text)
        assert response.status_code == 400, response.text[:200]
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# -- finding 5: nested JSON in WebSocket frames ---------------------------------------------

FRAMES: dict[str, Callable[[str], tuple[str, int]]] = {
    # The frame for a nested text, and the levels the frame's own JSON adds around it.
    "connection_init payload": lambda t: (f'{{"type":"connection_init","payload":{{"a":{t}}}}}', 2),
    "subscribe variables": lambda t: (
        f'{{"id":"1","type":"subscribe","payload":{{"query":"{QUERY}","variables":{{"v":{t}}}}}}}',
        3,
    ),
    "subscribe extensions": lambda t: (
        f'{{"id":"1","type":"subscribe","payload":{{"query":"{QUERY}","extensions":{{"x":{t}}}}}}}',
        3,
    ),
    "whole frame": lambda t: (t, 0),
}


@pytest.mark.parametrize("kind", ["list", "object"])
@pytest.mark.parametrize("frame", list(FRAMES))
async def test_a_frame_nested_past_the_limit_closes_the_socket_4400(
    tmp_path: Path, frame: str, kind: str
) -> None:
    settings = make_settings(tmp_path, rate_limit_per_minute=10_000)
    build = FRAMES[frame]
    _, around = build("1")
    async with live(settings) as (_, address):
        for depth in (LIMIT + 1, 1025, 100_000):
            text, _ = build(nested_text(depth - around, kind))
            if frame == "connection_init payload":
                ws = await connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL])  # type: ignore[list-item]
            else:
                ws = await authenticated_socket(address)
            async with bounded(f"ws {frame} {kind} {depth} levels", seconds=2, peak_mib=48):
                await ws.send(text)
                code, reason = await closed_code(ws)
            assert (code, reason) == (4400, f"JSON nested deeper than {LIMIT} levels is refused")


@pytest.mark.parametrize("frame", ["subscribe variables", "subscribe extensions"])
async def test_a_frame_nested_up_to_the_limit_runs(tmp_path: Path, frame: str) -> None:
    settings = make_settings(tmp_path)
    text, _ = FRAMES[frame](nested_text(LIMIT - 3, "list"))
    async with live(settings) as (_, address):
        ws = await authenticated_socket(address)
        await ws.send(text)
        received = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.close()
    assert received["type"] == "next", received
    assert received["payload"]["data"] == {"talks": {"totalCount": 0}}


# -- finding 11: WebSocket messages are held to the HTTP body limit -------------------------


async def test_a_websocket_message_over_the_body_limit_closes_the_socket_1009(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    limit = settings.graphql_max_bytes
    head = f'{{"id":"1","type":"subscribe","payload":{{"query":"{QUERY}","variables":{{"pad":"'
    tail = '"}}}'

    def padded(size: int) -> str:
        return head + "x" * (size - len(head) - len(tail)) + tail

    async with live(settings) as (_, address):
        ws = await authenticated_socket(address, max_size=None)
        await ws.send(padded(limit))  # exactly the limit: taken
        received = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert received["type"] == "next", received
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "complete"
        async with bounded("ws message of the body limit + 1 byte", seconds=5, peak_mib=64):
            await ws.send(padded(limit + 1))
            code, _ = await closed_code(ws)
        assert code == 1009  # message too big
        # 16 MiB (uvicorn's default limit) is refused the same way, not read whole.
        ws = await authenticated_socket(address, max_size=None)
        huge = padded(16 * 1024 * 1024)
        # The client's own copies of the message (encoded, framed) count in the peak.
        async with bounded("ws message of 16 MiB", seconds=10, peak_mib=80):
            with contextlib.suppress(ConnectionClosed):  # closed while it is being sent
                await ws.send(huge)
            code, _ = await closed_code(ws)
        assert code == 1009


# -- finding 11: slowloris ------------------------------------------------------------------


async def is_closed(reader: asyncio.StreamReader) -> bytes | None:
    """What the server sent before closing, or None while the connection is still open."""
    try:
        data = await asyncio.wait_for(reader.read(), 0.2)
    except TimeoutError:
        return None
    except ConnectionError:  # reset: what it sent may be lost with it
        return b""
    return data


async def test_connections_that_never_finish_their_headers_are_closed_after_the_timeout(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, header_timeout_s=1.0)
    async with live(settings) as (_, address):
        host, port = address.split(":")
        async with bounded("50 slowloris + 10 silent connections", seconds=8, peak_mib=32):
            half = []
            for n in range(50):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{n}: aa".encode())
                await writer.drain()
                half.append((reader, writer))
            silent = [await asyncio.open_connection(host, int(port)) for _ in range(10)]
            async with httpx.AsyncClient(base_url=f"http://{address}") as http:
                assert (await http.get("/healthz")).status_code == 200  # others still served
            await asyncio.sleep(0.3)
            early = await asyncio.gather(*(is_closed(r) for r, _ in half + silent))
            assert early == [None] * 60  # not yet
            await asyncio.sleep(1.0)
            answers = await asyncio.gather(*(is_closed(r) for r, _ in half + silent))
        for _, writer in half + silent:
            writer.close()
    assert None not in answers, f"{answers.count(None)} of 60 connections still open"
    assert all(a is not None and a.startswith(b"HTTP/1.1 408") for a in answers[:50]), answers
    assert answers[50:] == [b""] * 10


async def test_trickling_header_bytes_does_not_extend_the_deadline(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, header_timeout_s=1.0)
    async with live(settings) as (_, address):
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = None
        while answer is None and time.monotonic() - started < 5:
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                break
            answer = await is_closed(reader)
        writer.close()
    assert time.monotonic() - started < 2.5
    assert answer is None or answer.startswith(b"HTTP/1.1 408")


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, keep_alive_timeout_s=1, header_timeout_s=10.0)
    async with live(settings) as (_, address):
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"}"), 5)
        assert first.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(1.5)
        assert await is_closed(reader) == b""
        writer.close()
        # Half a second request after a response: the header deadline takes over.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        await asyncio.sleep(1.5)
        assert await is_closed(reader) is not None
        writer.close()


async def test_a_stream_of_header_lines_is_cut_at_the_header_cap(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with live(settings) as (_, address):
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        async with bounded("20 MB of header lines", seconds=5, peak_mib=16) as figures:
            try:
                for n in range(2000):
                    writer.write(f"X-Pad-{n}: {'a' * 10_000}\r\n".encode())
                    await asyncio.wait_for(writer.drain(), 2)
                    sent += 10_000
            except (ConnectionError, TimeoutError):
                pass
            answer = await is_closed(reader)
            figures.extra["sent"] = sent
        writer.close()
        # Still writing when the server answered and closed: the answer may be lost to a reset.
        assert answer is not None, "still open"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer
        assert sent < 4 * MAX_HEADER_BYTES + 1024 * 1024  # the socket buffers hold some more
        # All at once, then waiting for the answer: it arrives.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES + 1))
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer


async def test_ordinary_requests_pass_the_header_checks(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, header_timeout_s=1.0)
    async with live(settings) as (_, address):
        host, port = address.split(":")
        # Headers in two writes a little apart, then a body of the full size in one write.
        reader, writer = await asyncio.open_connection(host, int(port))
        body = json.dumps({"query": QUERY, "variables": {"pad": "x" * 900_000}}).encode()
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.3)
        writer.write(
            f"Authorization: Bearer {READ_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = await asyncio.wait_for(reader.readuntil(b"}}}"), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        # A WebSocket session outlives the header deadline.
        ws = await authenticated_socket(address)
        await asyncio.sleep(1.3)
        await GraphQLSocket(ws).subscribe(QUERY)
        received = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.close()
    assert received["type"] == "next"


async def test_a_socket_that_never_sends_connection_init_is_closed_4408(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, header_timeout_s=1.0)
    async with live(settings) as (_, address):
        ws = await connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL])  # type: ignore[list-item]
        started = time.monotonic()
        code, _ = await closed_code(ws)
    assert code == 4408
    assert time.monotonic() - started < 3


# -- the decoder every body and frame goes through ------------------------------------------

json_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=40,
)


@given(json_values, st.integers(min_value=1, max_value=8), st.integers(0, 3000))
def test_decoding_refuses_exactly_the_values_nested_past_the_limit(
    value: object, limit: int, wrapped: int
) -> None:
    # Wrapped in up to 3,000 more lists: past orjson's own 1,024 and Python's recursion limit.
    from gateway.nesting import TooDeep, decode_limited

    text = "[" * wrapped + json.dumps(value) + "]" * wrapped
    deep = nests_deeper(json.loads(text), limit) if wrapped < 500 else True
    try:
        decode_limited(text, limit)
    except TooDeep:
        assert deep
    else:
        assert not deep


@pytest.mark.parametrize(
    ("path", "credential"),
    [
        ("/graphql", f"Authorization: Bearer {READ_KEY}"),
        ("/webhooks/talks", f"X-Webhook-Token: {WEBHOOK_SECRET}"),
    ],
)
async def test_a_body_trickled_past_the_body_timeout_is_a_408(
    tmp_path: Path, path: str, credential: str
) -> None:
    settings = make_settings(tmp_path, body_timeout_s=1.0)
    async with live(settings) as (_, address):
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{credential}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        started = time.monotonic()
        async with bounded(f"a body trickled for 1 s to {path}", seconds=5, peak_mib=16):
            answer = b""
            with contextlib.suppress(ConnectionError):
                while not answer and time.monotonic() - started < 4:
                    writer.write(b" ")
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        answer = await asyncio.wait_for(reader.read(4096), 0.2)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 s" in answer
    if path == "/graphql":
        assert b'"code":"BAD_USER_INPUT"' in answer
    assert time.monotonic() - started < 3
