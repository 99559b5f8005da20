"""`talkgate serve` as deployed: a real uvicorn process on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.reliability.support import serve_env, start_serve
from tests.support import READ_KEY


async def test_subscriptions_are_not_compressed_message_by_message(tmp_path: Path) -> None:
    served = await start_serve(tmp_path, serve_env(f"sqlite:///{tmp_path / 'talkgate.db'}"))
    try:
        address = served.base.removeprefix("http://")
        async with connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            compression="deflate",  # what browsers offer
        ) as ws:
            assert ws.response is not None
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
    finally:
        served.kill()


async def test_serve_closes_a_connection_that_never_finishes_its_headers(tmp_path: Path) -> None:
    env = serve_env(f"sqlite:///{tmp_path / 'talkgate.db'}", TALKGATE_HEADER_TIMEOUT_S="1")
    served = await start_serve(tmp_path, env)
    try:
        host, port = served.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        served.kill()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 0.8 < time.monotonic() - started < 3


async def test_serve_holds_websocket_messages_to_the_http_body_limit(tmp_path: Path) -> None:
    env = serve_env(f"sqlite:///{tmp_path / 'talkgate.db'}", TALKGATE_GRAPHQL_MAX_BYTES="4096")
    served = await start_serve(tmp_path, env)
    try:
        address = served.base.removeprefix("http://")
        async with connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            max_size=None,
        ) as ws:
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {READ_KEY}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"type": "ping", "payload": {"pad": "x" * 4096}}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
    finally:
        served.kill()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
