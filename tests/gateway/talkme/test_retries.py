"""Which failures TalkmeClient repeats, how it waits between attempts, and when it gives up."""

from __future__ import annotations

import random
import socket
import time

import httpx
import pytest

from gateway.talkme import SandboxState, TalkmeClient, TalkmeRejected, TalkmeUnavailable
from tests.clock import FakeClock
from tests.gateway.talkme.support import LOGIN, PASSWORD, RecordedSleep, talkme_settings


async def test_a_wrong_password_is_rejected_after_exactly_one_call(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    with pytest.raises(TalkmeRejected) as caught:
        await talkme.logout(login=LOGIN, password="not-the-password")
    assert caught.value.status == 401
    assert caught.value.detail == "invalid credentials"
    assert len(sandbox.calls) == 1


@pytest.mark.parametrize("status", [400, 403, 409, 422, 429])
async def test_no_4xx_is_retried(talkme: TalkmeClient, sandbox: SandboxState, status: int) -> None:
    sandbox.fail_next(1, status=status)
    with pytest.raises(TalkmeRejected) as caught:
        await talkme.pause(login=LOGIN, password=PASSWORD)
    assert caught.value.status == status
    assert len(sandbox.calls) == 1


async def test_two_503s_then_a_200_succeed_after_three_calls(
    talkme: TalkmeClient, sandbox: SandboxState, sleep: RecordedSleep
) -> None:
    sandbox.fail_next(2, status=503)
    await talkme.resume(login=LOGIN, password=PASSWORD)
    assert len(sandbox.calls) == 3
    assert len(sleep.delays) == 2


async def test_backoff_is_jittered_below_an_exponential_ceiling(
    talkme: TalkmeClient, sandbox: SandboxState, sleep: RecordedSleep
) -> None:
    sandbox.fail_next(3, status=502)
    await talkme.logout(login=LOGIN, password=PASSWORD)
    assert len(sleep.delays) == 3
    for attempt, delay in enumerate(sleep.delays):
        assert 0 <= delay <= 0.1 * 2**attempt
    assert len(set(sleep.delays)) == 3


async def test_persistent_5xx_ends_unavailable_after_the_attempt_limit(
    talkme: TalkmeClient, sandbox: SandboxState, sleep: RecordedSleep
) -> None:
    sandbox.fail_next(100, status=500)
    with pytest.raises(TalkmeUnavailable) as caught:
        await talkme.fetch_audio("20250908-000123")
    assert len(sandbox.calls) == 4
    assert len(sleep.delays) == 3
    assert caught.value.reason == "answered 500 after 4 attempt(s)"


async def test_retries_stop_when_three_timeouts_worth_of_time_are_spent(
    http: httpx.AsyncClient, sandbox: SandboxState, clock: FakeClock
) -> None:
    # Each wait (with the attempt before it) is made to last one full timeout.
    sleep = RecordedSleep(clock, advances_by=1.0)
    talkme = TalkmeClient(
        http, talkme_settings(talkme_timeout_s=1.0), sleep=sleep, rng=random.Random(3), clock=clock
    )
    sandbox.fail_next(100, status=503)
    with pytest.raises(TalkmeUnavailable, match="after 3 attempt"):
        await talkme.logout(login=LOGIN, password=PASSWORD)
    assert len(sandbox.calls) == 3


async def test_a_slow_upstream_ends_unavailable_within_three_timeouts(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    talkme = TalkmeClient(http, talkme_settings(talkme_timeout_s=0.2), rng=random.Random(5))
    sandbox.delay(5.0)
    started = time.monotonic()
    with pytest.raises(TalkmeUnavailable, match="timed out"):
        await talkme.pause(login=LOGIN, password=PASSWORD)
    assert time.monotonic() - started < 3 * 0.2 + 0.3
    assert len(sandbox.calls) >= 2


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_refused_connection_ends_unavailable_after_retries(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    settings = talkme_settings(talkme_agent_api_url=url, talkme_bc_api_url=url)
    sleep = RecordedSleep()
    async with httpx.AsyncClient() as http:
        talkme = TalkmeClient(http, settings, sleep=sleep, rng=random.Random(8))
        with pytest.raises(TalkmeUnavailable, match="connection failed") as caught:
            await talkme.logout(login=LOGIN, password=PASSWORD)
    assert caught.value.reason == "connection failed (ConnectError) after 4 attempt(s)"
    assert len(sleep.delays) == 3
