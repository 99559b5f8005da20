"""Sharing through a real Redis: events, rate limits and login tickets across replicas."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette

from gateway.http.app import create_app
from gateway.recordings import FetchedRecording, RecordingCache, Recordings
from gateway.replicas.pubsub import LocalFanout
from gateway.replicas.redis_shared import (
    RedisBroker,
    RedisRateLimiter,
    RedisRecordings,
    RedisTicketVault,
)
from tests.backends import REDIS_URL
from tests.support import AGENT_LOGIN, AGENT_PASSWORD, ALL_KEY, gql, serving, talkme_settings


@pytest.fixture
async def clients() -> AsyncIterator[tuple[Redis, Redis]]:
    """Two connections, as two replicas would have."""
    first, second = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_an_event_published_on_one_replica_reaches_subscribers_on_both(
    redis_prefix: str, clients: tuple[Redis, Redis]
) -> None:
    fanouts = LocalFanout(), LocalFanout()
    brokers = [
        RedisBroker(client, fanout, prefix=redis_prefix)
        for client, fanout in zip(clients, fanouts, strict=True)
    ]
    for broker in brokers:
        await broker.start()
        await asyncio.wait_for(broker.wait_listening(), 5)
    try:
        async with (
            fanouts[0].subscription("talks") as here,
            fanouts[1].subscription("talks") as there,
        ):
            await brokers[0].publish("talks", {"id": 42})
            assert await asyncio.wait_for(there.next(), 5) == {"id": 42}
            # The publishing replica hears it once, through Redis like every other.
            assert await asyncio.wait_for(here.next(), 5) == {"id": 42}
            await asyncio.sleep(0.1)
            assert here._queue.empty()
    finally:
        for broker in brokers:
            await broker.close()


async def test_events_stay_local_when_redis_is_unreachable_and_it_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{closed_port}/0", socket_connect_timeout=0.2)
    fanout = LocalFanout()
    health: list[bool] = []
    broker = RedisBroker(client, fanout, prefix="x:", on_health=health.append)
    await broker.start()
    try:
        async with fanout.subscription("talks") as subscription:
            with caplog.at_level(logging.WARNING, logger="talkgate.redis"):
                await broker.publish("talks", {"id": 1})
                await broker.publish("talks", {"id": 2})
            assert await asyncio.wait_for(subscription.next(), 5) == {"id": 1}
            assert await asyncio.wait_for(subscription.next(), 5) == {"id": 2}
    finally:
        await broker.close()
        await client.aclose()
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert health == [False]


async def test_rate_limit_buckets_are_shared_between_replicas(
    redis_prefix: str, clients: tuple[Redis, Redis]
) -> None:
    first = RedisRateLimiter(clients[0], per_minute=4, prefix=redis_prefix)
    second = RedisRateLimiter(clients[1], per_minute=4, prefix=redis_prefix)
    answers = [await limiter.take("crm") for limiter in (first, second, first, second, first)]
    assert answers[:4] == [None, None, None, None]
    assert answers[4] is not None
    assert 0 < answers[4] <= 15  # one token comes back every 15 s at 4 a minute
    assert await second.take("another-key") is None


async def test_a_ticket_put_on_one_replica_is_taken_once_on_another(
    redis_prefix: str, clients: tuple[Redis, Redis]
) -> None:
    here = RedisTicketVault(clients[0], prefix=redis_prefix)
    there = RedisTicketVault(clients[1], prefix=redis_prefix)
    now = datetime.now(UTC)
    await here.put_ticket(digest="d1", sealed="sealed-1", expires_at=now + timedelta(seconds=60))
    taken = await asyncio.gather(
        there.take_ticket(digest="d1", now=now), here.take_ticket(digest="d1", now=now)
    )
    assert sorted(taken, key=str) == [None, "sealed-1"]


async def test_an_expired_ticket_is_gone(redis_prefix: str, clients: tuple[Redis, Redis]) -> None:
    vault = RedisTicketVault(clients[0], prefix=redis_prefix)
    now = datetime.now(UTC)
    await vault.put_ticket(digest="d2", sealed="s", expires_at=now + timedelta(milliseconds=50))
    await asyncio.sleep(0.2)
    assert await vault.take_ticket(digest="d2", now=datetime.now(UTC)) is None


async def test_a_login_link_made_on_one_replica_opens_on_the_other(
    redis_prefix: str, tmp_path: Path, sandbox: Starlette
) -> None:
    # Each "replica" has its own SQLite file: only Redis joins them.
    def replica(name: str) -> Starlette:
        (tmp_path / name).mkdir()
        settings = talkme_settings(tmp_path / name, redis_url=SecretStr(REDIS_URL))
        return create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))

    async with serving(replica("a")) as a, serving(replica("b")) as b:
        body = await gql(
            a,
            "mutation($i: AgentCredentialsInput!) { agentLogin(input: $i) { launchUrl } }",
            {"i": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}},
            key=ALL_KEY,
        )
        path = body["data"]["agentLogin"]["launchUrl"].removeprefix("https://gateway.example")
        assert (await b.get(path)).status_code == 200
        assert (await a.get(path)).status_code == 410


class CountingSource:
    """An AudioSource that answers at once and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch_audio(self, protocol: str) -> str:
        self.calls.append(protocol)
        return f"https://rec.example/{protocol}.mp3"


async def test_a_recording_fetched_by_one_replica_is_reused_by_another(
    redis_prefix: str, clients: tuple[Redis, Redis]
) -> None:
    sources = CountingSource(), CountingSource()
    replicas = [
        Recordings(
            source,
            RecordingCache(300),
            concurrency=4,
            shared=RedisRecordings(client, 300, prefix=redis_prefix),
        )
        for source, client in zip(sources, clients, strict=True)
    ]
    first = await replicas[0].fetch("P-77")
    second = await replicas[1].fetch("P-77")
    assert second == first
    assert (sources[0].calls, sources[1].calls) == (["P-77"], [])


async def test_recordings_are_not_shared_past_their_ttl(
    redis_prefix: str, clients: tuple[Redis, Redis]
) -> None:
    shared = RedisRecordings(clients[0], 0.05, prefix=redis_prefix)
    await shared.put(
        FetchedRecording("P-78", "https://rec.example/P-78.mp3", "2026-01-01T00:00:00Z")
    )
    assert await shared.get("P-78") is not None
    await asyncio.sleep(0.2)
    assert await shared.get("P-78") is None


async def test_talkgate_ingest_announces_changed_talks_to_running_replicas(
    redis_prefix: str, tmp_path: Path
) -> None:
    import json
    import sys

    from tests.factories import talk

    listener = Redis.from_url(REDIS_URL)
    fanout = LocalFanout()
    broker = RedisBroker(listener, fanout)  # the default prefix, as `talkgate ingest` uses
    await broker.start()
    await asyncio.wait_for(broker.wait_listening(), 5)
    talk_id = 880_000 + secrets.randbelow(10_000)
    path = tmp_path / "backfill.ndjson"
    path.write_text(json.dumps(talk(talk_id)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env |= {
        "TALKGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "TALKGATE_REDIS_URL": REDIS_URL,
    }
    try:
        async with fanout.subscription("talks") as events:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "ingest", str(path), env=env, cwd=tmp_path
            )
            assert await asyncio.wait_for(process.wait(), 60) == 0
            seen: list[object] = []
            while talk_id not in seen:  # other tests may publish on the same channel
                seen.append((await asyncio.wait_for(events.next(), 5))["id"])
    finally:
        await broker.close()
        await listener.aclose()
