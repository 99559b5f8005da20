"""Shared fixtures: settings on a temporary SQLite file, the app with its lifespan, clients."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from starlette.applications import Starlette

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.storage import TalkStore, open_store
from tests.abuse.bounds import FIGURES as ABUSE_FIGURES
from tests.backends import (
    BACKENDS,
    REDIS_URL,
    empty_store_url,
    require_redis,
    throwaway_database,
)
from tests.support import (
    agent_sandbox,
    make_settings,
    serving,
    talkme_settings,
)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a throwaway database; every PostgreSQL test skips, saying why, without one."""
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Test settings on each store backend: a SQLite file, or a fresh PostgreSQL schema."""
    return make_settings(
        tmp_path, database_url=await empty_store_url(request.param, tmp_path, request)
    )


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process, with the lifespan running."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[TalkStore]:
    """A second, independent view of the app's database: what was really committed."""
    opened = open_store(settings.database_url)
    await opened.open()
    yield opened
    await opened.close()


# -- Talk.me through the sandbox ------------------------------------------------------------


@pytest.fixture
def sandbox() -> Starlette:
    """The Talk.me sandbox, knowing one agent; its controls are `sandbox.state.sandbox`."""
    return agent_sandbox()


@pytest.fixture
async def talkme_client(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway whose Talk.me calls reach the sandbox over ASGI."""
    app = create_app(talkme_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as c:
        yield c


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; skips, saying why, when Redis is not reachable."""
    await require_redis()
    prefix = f"talkgate-test:{secrets.token_hex(4)}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The abuse suite's figures: what each abusive shape cost (tests/abuse/bounds.py)."""
    if ABUSE_FIGURES:
        terminalreporter.section("abuse figures")
        for line in ABUSE_FIGURES:
            terminalreporter.write_line(line)
