"""SIGTERM under load: in-flight requests finish, new ones are refused, sockets close cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.settings import Settings
from tests.reliability.support import Served, serve_env, start_serve, wait_exit
from tests.support import ALL_KEY, READ_KEY, GraphQLSocket

GRACE_S = 3.0
UPSTREAM_DELAY_S = 1.5

PAUSE = """mutation {
  pauseAgent(input: {credentials: {login: "1001", password: "agent-pw"}}) { login status }
}"""


class SlowUpstream:
    """A Talk.me stand-in on loopback that answers every POST with success, slowly."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.received = asyncio.Event()
        self.port = 0
        self.handlers: set[asyncio.Task[object]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.received.set()
            await asyncio.sleep(self.delay_s)
            body = json.dumps({"success": True}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def slow_upstream(delay_s: float) -> AsyncIterator[SlowUpstream]:
    upstream = SlowUpstream(delay_s)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream.port = int(server.sockets[0].getsockname()[1])
    try:
        yield upstream
    finally:
        server.close()
        for handler in upstream.handlers:  # still sleeping: their client is gone
            handler.cancel()
        await asyncio.gather(*upstream.handlers, return_exceptions=True)
        await server.wait_closed()


async def sigterm_during_a_pause(
    http: httpx.AsyncClient, served: Served, upstream: SlowUpstream
) -> tuple[asyncio.Task[httpx.Response], float]:
    """POST PAUSE and, once the upstream holds its call, SIGTERM the server: the request still
    in flight, and when the signal was sent (time.monotonic)."""
    in_flight = asyncio.create_task(
        http.post("/graphql", json={"query": PAUSE}, headers={"Authorization": f"Bearer {ALL_KEY}"})
    )
    await asyncio.wait_for(upstream.received.wait(), 10)
    served.process.send_signal(signal.SIGTERM)
    return in_flight, time.monotonic()


def test_the_grace_period_is_a_setting() -> None:
    assert Settings(_env_file=None).shutdown_grace_s == 30
    assert Settings(_env_file=None, shutdown_grace_s=2.5).shutdown_grace_s == 2.5


@pytest.mark.slow
async def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_in_time(
    tmp_path: Path,
) -> None:
    async with slow_upstream(UPSTREAM_DELAY_S) as upstream:
        upstream_url = f"http://127.0.0.1:{upstream.port}"
        env = serve_env(
            f"sqlite:///{tmp_path / 'talkgate.db'}",
            TALKGATE_SHUTDOWN_GRACE_S=str(GRACE_S),
            TALKGATE_TALKME_AGENT_API_URL=upstream_url,
            TALKGATE_TALKME_BC_API_URL=upstream_url,
            TALKGATE_TALKME_TOKEN="tok-graceful-1",
            TALKGATE_TALKME_EXTERNAL_LOGIN_TOKEN="ext-graceful-1",
            TALKGATE_TALKME_TIMEOUT_S="5",
        )
        served = await start_serve(tmp_path, env)
        try:
            address = served.base.removeprefix("http://")
            async with (
                httpx.AsyncClient(base_url=served.base, timeout=10) as http,
                connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"]) as ws,  # type: ignore[list-item]
            ):
                socket = GraphQLSocket(ws)
                assert (await socket.init(READ_KEY))["type"] == "connection_ack"
                await socket.subscribe("subscription { talkUpdated { id: databaseId } }")
                in_flight, stopped_at = await sigterm_during_a_pause(http, served, upstream)

                # New connections are refused while the in-flight request is still running.
                deadline = stopped_at + UPSTREAM_DELAY_S
                async with httpx.AsyncClient(base_url=served.base, timeout=1) as fresh:
                    while True:
                        try:
                            await fresh.get("/healthz")
                        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                            # Refused: no connection, or one taken from the backlog and closed
                            # without an answer. Either way the request was not served.
                            break
                        assert time.monotonic() < deadline, "still accepting after SIGTERM"
                        await asyncio.sleep(0.02)
                assert not in_flight.done()

                response = await asyncio.wait_for(in_flight, GRACE_S + 5)
                assert response.status_code == 200, response.text
                assert response.json()["data"]["pauseAgent"] == {
                    "login": "1001",
                    "status": "PAUSED",
                }

                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), GRACE_S + 5)
                assert closed.value.rcvd is not None, "the socket was dropped without a close frame"
                assert closed.value.rcvd.code in (1001, 1012)

            code = await wait_exit(served.process, GRACE_S + 5)
            assert code is not None, f"still running {GRACE_S + 5} s after SIGTERM"
            assert time.monotonic() - stopped_at < GRACE_S + 5
            # uvicorn re-raises the signal it handled once it has shut down cleanly.
            assert code in (0, -signal.SIGTERM), served.log()
            assert "Traceback" not in served.log()
        finally:
            served.kill()


@pytest.mark.slow
async def test_a_request_outlasting_the_grace_period_does_not_hold_the_exit(
    tmp_path: Path,
) -> None:
    grace_s = 1.0
    async with slow_upstream(30.0) as upstream:
        upstream_url = f"http://127.0.0.1:{upstream.port}"
        env = serve_env(
            f"sqlite:///{tmp_path / 'talkgate.db'}",
            TALKGATE_SHUTDOWN_GRACE_S=str(grace_s),
            TALKGATE_TALKME_BC_API_URL=upstream_url,
            TALKGATE_TALKME_TIMEOUT_S="20",
        )
        served = await start_serve(tmp_path, env)
        try:
            async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
                stuck, stopped_at = await sigterm_during_a_pause(http, served, upstream)
                code = await wait_exit(served.process, grace_s + 5)
                assert code is not None, "the grace period did not bound the shutdown"
                assert time.monotonic() - stopped_at < grace_s + 5
                # The cut request ends (whatever its answer), it does not hang the client.
                await asyncio.wait_for(asyncio.gather(stuck, return_exceptions=True), 5)
        finally:
            served.kill()
