"""Redis away: talkgate serves from its own process, says so once, and shares again after."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from gateway.http.app import create_app
from tests.backends import REDIS_URL, require_redis
from tests.factories import snapshot
from tests.reliability.support import proxy_to
from tests.support import (
    ALL_KEY,
    NO_SCOPE_KEY,
    READ_KEY,
    WEBHOOK_SECRET,
    GraphQLSocket,
    live_server,
    make_settings,
    until_subscribed,
)

PER_MINUTE = 3


async def _redis_up(http: httpx.AsyncClient) -> str:
    text = (await http.get("/metrics", headers={"Authorization": f"Bearer {ALL_KEY}"})).text
    return next(
        line.split()[1] for line in text.splitlines() if line.startswith("talkgate_redis_up ")
    )


async def _until_redis_up(http: httpx.AsyncClient, value: str) -> None:
    deadline = time.monotonic() + 15
    while await _redis_up(http) != value:
        assert time.monotonic() < deadline, f"talkgate_redis_up never became {value}"
        await asyncio.sleep(0.05)


async def _push(http: httpx.AsyncClient, talk_id: int) -> None:
    response = await http.post(
        "/webhooks/talks",
        json=snapshot(talk_id, [talk_id * 10]),
        headers={"X-Webhook-Token": WEBHOOK_SECRET},
    )
    assert response.status_code == 202, response.text


async def _typename(http: httpx.AsyncClient) -> list[str]:
    response = await http.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": f"Bearer {NO_SCOPE_KEY}"},
    )
    assert response.status_code in (200, 429), response.text
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


@pytest.mark.slow
async def test_while_redis_is_away_talkgate_serves_alone_and_shares_again_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await require_redis()
    direct = Redis.from_url(REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
    host, port = direct.connection_pool.connection_kwargs["host"], 6379
    port = int(direct.connection_pool.connection_kwargs.get("port", port))
    watcher = direct.pubsub()
    caplog.set_level(logging.INFO, logger="talkgate.redis")
    try:
        async with proxy_to(host, port) as proxy:
            settings = make_settings(
                tmp_path,
                redis_url=SecretStr(f"redis://127.0.0.1:{proxy.port}/0"),
                rate_limit_per_minute=PER_MINUTE,
            )
            app = create_app(settings)
            async with (
                live_server(app) as address,
                httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
                connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"]) as ws,  # type: ignore[list-item]
            ):
                await _until_redis_up(http, "1.0")
                socket = GraphQLSocket(ws)
                assert (await socket.init(READ_KEY))["type"] == "connection_ack"
                await socket.subscribe("subscription { talkUpdated { id: databaseId } }")
                await until_subscribed(address, "talks")

                proxy.cut()
                await _until_redis_up(http, "0.0")
                for talk_id in (801, 802):  # events published here still reach subscribers
                    await _push(http, talk_id)
                    event = await socket.receive()
                    assert event["payload"]["data"]["talkUpdated"] == {"id": str(talk_id)}
                codes = [await _typename(http) for _ in range(PER_MINUTE + 1)]
                assert codes[:PER_MINUTE] == [[]] * PER_MINUTE
                assert codes[PER_MINUTE] == ["RATE_LIMITED"]  # limits still apply, per replica
                warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
                assert sum("events stay in this replica" in w for w in warnings) == 1
                assert sum("rate limits are counted per replica" in w for w in warnings) == 1

                proxy.restore()
                await _until_redis_up(http, "1.0")
                await watcher.subscribe("talkgate:talks")
                assert (await watcher.get_message(timeout=5))["type"] == "subscribe"
                await _push(http, 803)
                event = await socket.receive()
                assert event["payload"]["data"]["talkUpdated"] == {"id": "803"}
                shared = await watcher.get_message(ignore_subscribe_messages=True, timeout=5)
                assert shared is not None, "the event did not go through Redis"
                assert json.loads(shared["data"])["id"] == 803
                assert any("Redis is back" in r.getMessage() for r in caplog.records)
    finally:
        await watcher.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2
        await direct.aclose()
