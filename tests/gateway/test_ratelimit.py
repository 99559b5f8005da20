"""Per-key rate limits: a token bucket for each API key, and the 429 when it is empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.ratelimit import LocalRateLimiter
from tests.clock import FakeClock
from tests.conftest import ALL_KEY, READ_KEY, make_settings, push
from tests.resolvers.helpers import Served, serving, talk_of

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
    assert body["data"] is None
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
