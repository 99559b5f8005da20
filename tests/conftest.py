"""Shared fixtures: settings on a temporary SQLite file, the app with its lifespan, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.auth import key_digest
from gateway.http.app import create_app
from gateway.settings import ApiKeyEntry, Settings
from gateway.storage import TalkStore, open_store
from gateway.talkme import create_sandbox
from tests.abuse.bounds import FIGURES as ABUSE_FIGURES
from tests.backends import (
    BACKENDS,
    POSTGRES_URL,
    UNREACHABLE,
    create_database,
    drop_database,
    empty_store_url,
    run_apart,
    unreachable,
    with_database,
)

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
READ_KEY = "tgk_test_reader"
ALL_KEY = "tgk_test_everything"
NO_SCOPE_KEY = "tgk_test_no_talks"
PUSH_KEY = "tgk_test_pusher"

KEYS = {
    READ_KEY: ("reader", {"talks:read"}),
    ALL_KEY: (
        "operator",
        {
            "talks:read",
            "customers:pii",
            "recordings:read",
            "agents:control",
            "webhooks:write",
            "admin",
        },
    ),
    NO_SCOPE_KEY: ("recordings-only", {"recordings:read"}),
    PUSH_KEY: ("pusher", {"webhooks:write"}),
}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for one test: its own SQLite file, the test keys and webhook secret."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'talkgate.db'}",
        "api_keys": tuple(
            ApiKeyEntry(name=name, sha256=key_digest(key), scopes=frozenset(scopes))
            for key, (name, scopes) in KEYS.items()
        ),
        "webhook_secret": SecretStr(WEBHOOK_SECRET),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a throwaway database; every PostgreSQL test skips, saying why, without one."""
    try:
        name = run_apart(lambda: create_database(POSTGRES_URL))
    except UNREACHABLE as exc:
        unreachable("PostgreSQL", POSTGRES_URL, repr(exc))
    yield with_database(POSTGRES_URL, name)
    run_apart(lambda: drop_database(POSTGRES_URL, name))


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


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    key: str | None = READ_KEY,
) -> dict[str, Any]:
    """POST a GraphQL operation; returns the decoded JSON body (asserting HTTP 200)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def push(
    client: httpx.AsyncClient, payload: object, *, token: str = WEBHOOK_SECRET
) -> httpx.Response:
    """POST a payload to the webhook with the shared secret in X-Webhook-Token."""
    return await client.post("/webhooks/talks", json=payload, headers={"X-Webhook-Token": token})


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[TalkStore]:
    """A second, independent view of the app's database: what was really committed."""
    opened = open_store(settings.database_url)
    await opened.open()
    yield opened
    await opened.close()


# -- Talk.me through the sandbox ------------------------------------------------------------

TALKME_URL = "http://talkme.sandbox"
TALKME_TOKEN = "tok-account-4e1f0b"
TALKME_EXTERNAL_TOKEN = "ext-login-93ac7d"
AGENT_LOGIN = "1234"
AGENT_PASSWORD = "agent-pw-7Hq2x"
SECRET_KEY = "secret-key-for-tests-4d8a1c9e7b"


@pytest.fixture
def sandbox() -> Starlette:
    """The Talk.me sandbox, knowing one agent; its controls are `sandbox.state.sandbox`."""
    return create_sandbox(
        {AGENT_LOGIN: AGENT_PASSWORD},
        token=TALKME_TOKEN,
        external_login_token=TALKME_EXTERNAL_TOKEN,
    )


def talkme_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings with Talk.me pointed at the sandbox, short timeouts and a SECRET_KEY."""
    values: dict[str, Any] = {
        "talkme_login_url": f"{TALKME_URL}/login",
        "talkme_agent_api_url": TALKME_URL,
        "talkme_bc_api_url": TALKME_URL,
        "talkme_token": SecretStr(TALKME_TOKEN),
        "talkme_external_login_token": SecretStr(TALKME_EXTERNAL_TOKEN),
        "talkme_timeout_s": 0.5,
        "secret_key": SecretStr(SECRET_KEY),
        "public_url": "https://gateway.example",
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


@asynccontextmanager
async def serving(
    app: Starlette,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` with its lifespan running."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def talkme_client(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway whose Talk.me calls reach the sandbox over ASGI."""
    app = create_app(talkme_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as c:
        yield c


@asynccontextmanager
async def live_server(app: Starlette, settings: Settings | None = None) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free loopback port (lifespan included); yields its base URL.

    With `settings` (the app's), uvicorn runs as `talkgate serve` runs it: its sizes and
    timeouts (gateway/http/server.py)."""
    import asyncio

    import uvicorn

    from gateway.http.server import uvicorn_config

    if settings is not None:
        config = uvicorn_config(app, settings.model_copy(update={"host": "127.0.0.1"}), port=0)
    else:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # start-up failed: raise its error
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def event_streams(address: str, topic: str, *, key: str | None = ALL_KEY) -> int:
    """How many event streams the gateway at `address` holds on `topic`, as its /metrics
    says (`talkgate_event_streams`): what an operator sees, read with an admin key (None:
    none, as the demo answers loopback without one)."""
    from prometheus_client.parser import text_string_to_metric_families

    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "talkgate_event_streams" and sample.labels == {"topic": topic}
    )


async def until_subscribed(
    address: str, topic: str, count: int = 1, *, key: str | None = ALL_KEY
) -> None:
    """Wait until the gateway at `address` has `count` event streams on `topic`: a client's
    subscribe frame is sent before the server registers it, and events in between are not
    delivered. `key` reads /metrics (as `event_streams`)."""
    import asyncio

    for _ in range(1500):
        if await event_streams(address, topic, key=key) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no subscriber on {topic}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The abuse suite's figures: what each abusive shape cost (tests/abuse/bounds.py)."""
    if ABUSE_FIGURES:
        terminalreporter.section("abuse figures")
        for line in ABUSE_FIGURES:
            terminalreporter.write_line(line)
