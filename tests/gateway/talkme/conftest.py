"""The Talkk.me sandbox, an HTTP client wired to it, and a client with fake time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from gateway.talkme import SandboxState, TalkmeClient, create_sandbox
from tests.clock import FakeClock
from tests.gateway.talkme.support import (
    EXTERNAL_LOGIN_TOKEN,
    LOGIN,
    PASSWORD,
    SANDBOX_URL,
    TOKEN,
    RecordedSleep,
    talkme_settings,
)


@pytest.fixture
def sandbox_app() -> Starlette:
    return create_sandbox(
        {LOGIN: PASSWORD, "5678": "other-agent-pw"},
        token=TOKEN,
        external_login_token=EXTERNAL_LOGIN_TOKEN,
    )


@pytest.fixture
def sandbox(sandbox_app: Starlette) -> SandboxState:
    state: SandboxState = sandbox_app.state.sandbox
    return state


@pytest.fixture
async def http(sandbox_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def talkme(http: httpx.AsyncClient, sleep: RecordedSleep, clock: FakeClock) -> TalkmeClient:
    return TalkmeClient(http, talkme_settings(), sleep=sleep, rng=random.Random(20251), clock=clock)
