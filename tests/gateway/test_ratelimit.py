"""Per-key rate limits: a token bucket for each API key, and the 429 when it is empty."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.auth import key_digest
from gateway.http.app import create_app
from gateway.ratelimit import LocalRateLimiter
from gateway.settings import ApiKeyEntry
from tests.clock import FakeClock
from tests.resolvers.helpers import Served, serving, talk_of
from tests.support import (
    AGENT_LOGIN,
    AGENT_PASSWORD,
    ALL_KEY,
    READ_KEY,
    GraphQLSocket,
    live_server,
    make_settings,
    open_socket,
    push,
    talkme_settings,
)

QUERY = {"query": "{ talks { totalCount } }"}


async def take_all(limiter: LocalRateLimiter, key: str, times: int) -> list[float | None]:
    return [await limiter.take(key) for _ in range(times)]


# -- the bucket -----------------------------------------------------------------------------


async def test_a_fresh_key_may_make_per_minute_requests_at_once() -> None:
    limiter = LocalRateLimiter(5, clock=FakeClock())
    assert await take_all(limiter, "k", 5) == [None] * 5


async def test_the_request_past_the_bucket_is_told_how_long_until_the_next_token() -> None:
    limiter = LocalRateLimiter(60, clock=FakeClock())  # one token a second
    await take_all(limiter, "k", 60)
    assert await limiter.take("k") == pytest.approx(1.0)


async def test_the_wait_shrinks_as_the_bucket_refills() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(60, clock=clock)
    await take_all(limiter, "k", 60)
    clock.advance(0.75)
    assert await limiter.take("k") == pytest.approx(0.25)


async def test_a_token_comes_back_every_sixty_seconds_over_per_minute() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(30, clock=clock)  # a token every 2 s
    await take_all(limiter, "k", 30)
    clock.advance(1.5)
    assert await limiter.take("k") == pytest.approx(0.5)
    clock.advance(0.5)
    assert await limiter.take("k") is None
    assert await limiter.take("k") == pytest.approx(2.0)


async def test_a_refused_request_takes_no_token() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(60, clock=clock)
    await take_all(limiter, "k", 60)
    wait = await limiter.take("k")
    assert wait is not None
    for _ in range(10):
        assert await limiter.take("k") is not None
    clock.advance(wait)
    assert await limiter.take("k") is None


async def test_an_idle_key_refills_no_further_than_per_minute() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(4, clock=clock)
    await take_all(limiter, "k", 4)
    clock.advance(3600)
    assert await take_all(limiter, "k", 5) == [None, None, None, None, pytest.approx(15.0)]


async def test_each_key_has_its_own_bucket() -> None:
    limiter = LocalRateLimiter(2, clock=FakeClock())
    await take_all(limiter, "a", 2)
    assert await limiter.take("a") is not None
    assert await take_all(limiter, "b", 2) == [None, None]


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """An app allowing three requests a minute per key, one talk stored."""
    app = create_app(make_settings(tmp_path, rate_limit_per_minute=3))
    async with serving(app) as served:
        assert (await push(served.client, talk_of(7))).status_code == 202
        served.spy.reset()
        yield served


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def spend(client: httpx.AsyncClient, key: str, times: int) -> list[int]:
    responses = [
        await client.post("/graphql", json=QUERY, headers=bearer(key)) for _ in range(times)
    ]
    return [r.status_code for r in responses]


async def test_three_requests_a_minute_pass_and_the_fourth_is_429(served: Served) -> None:
    assert await spend(served.client, READ_KEY, 4) == [200, 200, 200, 429]


async def test_a_rate_limited_request_is_rate_limited_with_retry_after_in_seconds(
    served: Served,
) -> None:
    await spend(served.client, READ_KEY, 3)
    response = await served.client.post("/graphql", json=QUERY, headers=bearer(READ_KEY))
    body = response.json()
    assert "data" not in body  # refused before execution
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert isinstance(retry_after, int)
    assert 1 <= retry_after <= 21  # a token comes back every 20 seconds
    assert response.headers["retry-after"] == str(retry_after)


async def test_a_rate_limited_request_runs_nothing(served: Served) -> None:
    await spend(served.client, READ_KEY, 3)
    served.spy.reset()
    response = await served.client.post("/graphql", json=QUERY, headers=bearer(READ_KEY))
    assert response.status_code == 429
    assert served.spy.counts() == {}


async def test_another_key_still_passes_when_one_is_rate_limited(served: Served) -> None:
    await spend(served.client, READ_KEY, 4)
    assert await spend(served.client, ALL_KEY, 3) == [200, 200, 200]


async def test_a_request_without_a_key_is_401_not_429(served: Served) -> None:
    await spend(served.client, READ_KEY, 4)
    response = await served.client.post("/graphql", json=QUERY)
    assert response.status_code == 401


# -- over WebSocket: the same bucket, one token per operation ------------------------------

PAUSE = "mutation($i: AgentAuthInput!) { pauseAgent(input: $i) { status } }"
PAUSE_INPUT = {"i": {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}}
SUBSCRIBE = "subscription { talkUpdated { id: databaseId } }"


async def outcome(client: GraphQLSocket, op_id: str) -> dict[str, Any]:
    """The first message for `op_id`: its `next` (or `error`); other operations' are skipped."""
    while True:
        received = await client.receive()
        if received.get("id") == op_id and received["type"] in ("next", "error"):
            return received


def rate_limited(received: dict[str, Any]) -> bool:
    if received["type"] != "error":
        return False
    [error] = received["payload"]
    return bool(error["extensions"]["code"] == "RATE_LIMITED")


@pytest.fixture
async def three_a_minute(
    tmp_path: Path, sandbox: Starlette
) -> AsyncIterator[tuple[str, Starlette]]:
    """A live app allowing three operations a minute per key; Talk.me is the sandbox."""
    app = create_app(
        talkme_settings(tmp_path, rate_limit_per_minute=3),
        talkme_transport=httpx.ASGITransport(app=sandbox),
    )
    async with live_server(app) as address:
        yield address, app


@pytest.mark.parametrize(
    ("document", "variables", "key"),
    [(QUERY["query"], {}, READ_KEY), (PAUSE, PAUSE_INPUT, ALL_KEY), (SUBSCRIBE, {}, READ_KEY)],
    ids=["query", "mutation", "subscription"],
)
async def test_each_websocket_operation_takes_a_token_and_the_fourth_is_rate_limited(
    three_a_minute: tuple[str, Starlette], document: str, variables: dict[str, Any], key: str
) -> None:
    address, _ = three_a_minute
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        assert (await client.init(key))["type"] == "connection_ack"
        answers = []
        for op_id in ("1", "2", "3", "4"):
            await client.subscribe(document, variables, op_id=op_id)
            if document is SUBSCRIBE and op_id != "4":
                continue  # a subscription says nothing until an event
            answers.append(await outcome(client, op_id))
    *passed, refused = answers
    assert not any(rate_limited(a) for a in passed), passed
    assert rate_limited(refused), refused
    [error] = refused["payload"]
    assert isinstance(error["extensions"]["retryAfter"], int)
    assert 1 <= error["extensions"]["retryAfter"] <= 21


async def test_a_rate_limited_websocket_mutation_never_reaches_talkme(
    three_a_minute: tuple[str, Starlette], sandbox: Starlette
) -> None:
    address, _ = three_a_minute
    calls = sandbox.state.sandbox.calls
    async with await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        await client.init(ALL_KEY)
        await client.subscribe(PAUSE, PAUSE_INPUT, op_id="1")
        first = await outcome(client, "1")
        assert first["payload"]["data"]["pauseAgent"]["status"] == "PAUSED"
        per_mutation = len(calls)
        for n in range(2, 11):
            await client.subscribe(PAUSE, PAUSE_INPUT, op_id=str(n))
            await outcome(client, str(n))
    assert per_mutation > 0
    assert len(calls) == 3 * per_mutation


async def test_http_and_websocket_draw_from_one_bucket(
    three_a_minute: tuple[str, Starlette],
) -> None:
    address, _ = three_a_minute
    async with (
        httpx.AsyncClient(base_url=f"http://{address}") as http,
        await open_socket(address) as ws,
    ):
        client = GraphQLSocket(ws)
        await client.init(READ_KEY)
        assert await spend(http, READ_KEY, 2) == [200, 200]
        await client.subscribe(QUERY["query"], op_id="1")
        assert not rate_limited(await outcome(client, "1"))
        await client.subscribe(QUERY["query"], op_id="2")
        assert rate_limited(await outcome(client, "2"))
        assert await spend(http, READ_KEY, 1) == [429]


async def test_a_socket_stays_usable_after_a_rate_limited_operation(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, rate_limit_per_minute=60))  # a token a second
    async with live_server(app) as address, await open_socket(address) as ws:
        client = GraphQLSocket(ws)
        await client.init(READ_KEY)
        for op in range(1, 100):  # empty the bucket
            await client.subscribe(QUERY["query"], op_id=str(op))
            refused = await outcome(client, str(op))
            if rate_limited(refused):
                break
        else:
            pytest.fail("99 operations on a 60-a-minute key, none rate limited")
        await client.send({"type": "ping"})
        assert (await client.receive())["type"] == "pong"
        await asyncio.sleep(refused["payload"][0]["extensions"]["retryAfter"])
        await client.subscribe(QUERY["query"], op_id="again")
        again = await outcome(client, "again")
    assert again["type"] == "next"
    assert again["payload"]["data"]["talks"]["totalCount"] == 0


async def test_a_batch_is_refused_whole_for_one_token_and_runs_nothing(served: Served) -> None:
    batch = [QUERY] * 50
    response = await served.client.post("/graphql", json=batch, headers=bearer(READ_KEY))
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "batch" in error["message"]
    assert served.spy.counts() == {}
    assert await spend(served.client, READ_KEY, 3) == [200, 200, 429]


# -- shared by replicas through Redis, over both transports ---------------------------------


async def test_replicas_share_one_bucket_per_key_over_http_and_websocket(tmp_path: Path) -> None:
    from redis.asyncio import Redis

    from tests.backends import REDIS_URL, require_redis

    await require_redis()
    name = f"edge-test-{secrets.token_hex(4)}"  # the bucket is the key's name: this test's own
    key = f"tgk_{name}"

    def replica(folder: str) -> Starlette:
        (tmp_path / folder).mkdir()
        settings = make_settings(
            tmp_path / folder,
            redis_url=SecretStr(REDIS_URL),
            rate_limit_per_minute=3,
            api_keys=(
                ApiKeyEntry(name=name, sha256=key_digest(key), scopes=frozenset({"talks:read"})),
            ),
        )
        return create_app(settings)

    try:
        async with (
            serving(replica("a")) as a,
            live_server(replica("b")) as b,
            await open_socket(b) as ws,
        ):
            client = GraphQLSocket(ws)
            await client.init(key)
            assert await spend(a.client, key, 2) == [200, 200]
            await client.subscribe(QUERY["query"], op_id="1")
            assert not rate_limited(await outcome(client, "1"))
            await client.subscribe(QUERY["query"], op_id="2")
            assert rate_limited(await outcome(client, "2"))
            assert await spend(a.client, key, 1) == [429]
    finally:
        redis = Redis.from_url(REDIS_URL)
        await redis.delete(f"talkgate:rate:{name}")
        await redis.aclose()
