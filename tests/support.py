"""What the tests share that is not a fixture: the test keys and settings, the gateway served
(over ASGI or on a port), and its clients: HTTP, graphql-transport-ws, the `talkgate`
command, and /metrics read as Prometheus would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from gateway.auth import key_digest
from gateway.settings import ApiKeyEntry, Settings
from gateway.signatures import secret_bytes, sign
from gateway.storage.sqlite import SQLiteStore
from gateway.talkme import create_sandbox
from tests.factories import Payload, talk

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


def graphql_data(response: httpx.Response) -> dict[str, Any]:
    """The `data` of a GraphQL answer, asserting HTTP 200 and no errors."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def signed_headers(
    secret: str, body: bytes, *, msg_id: str = "msg_1", at: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed with `secret` at `at` (by default, now)."""
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret_bytes(secret), msg_id, timestamp, body),
        "content-type": "application/json",
    }


async def push(
    client: httpx.AsyncClient, payload: object, *, token: str = WEBHOOK_SECRET
) -> httpx.Response:
    """POST a payload to the webhook with the shared secret in X-Webhook-Token."""
    return await client.post("/webhooks/talks", json=payload, headers={"X-Webhook-Token": token})


TALKME_URL = "http://talkme.sandbox"
TALKME_TOKEN = "tok-account-4e1f0b"
TALKME_EXTERNAL_TOKEN = "ext-login-93ac7d"
AGENT_LOGIN = "1234"
AGENT_PASSWORD = "agent-pw-7Hq2x"
SECRET_KEY = "secret-key-for-tests-4d8a1c9e7b"
PUBLIC_URL = "https://gateway.example"
AGENT_LOGIN_MUTATION = """
mutation Login($input: AgentCredentialsInput!) {
  agentLogin(input: $input) { launchUrl expiresAt session }
}"""


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
        "public_url": PUBLIC_URL,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


def agent_sandbox() -> Starlette:
    """A new Talk.me sandbox knowing one agent, AGENT_LOGIN, and the test tokens; its controls
    are `sandbox.state.sandbox`."""
    return create_sandbox(
        {AGENT_LOGIN: AGENT_PASSWORD},
        token=TALKME_TOKEN,
        external_login_token=TALKME_EXTERNAL_TOKEN,
    )


def agent_talk(talk_id: int, user_id: int) -> Payload:
    """A talk whose messages were written by the Talk.me agent AGENT_LOGIN (user `user_id`)."""
    payload = talk(talk_id)
    for history in payload["talk_histories"]:
        user = dict(history["user"])
        user.update(id=user_id, login=AGENT_LOGIN, name="Ana Agente", is_bot=False)
        history["user"] = user
        history["user_id"] = user_id
    return payload


async def push_agent_talk(client: httpx.AsyncClient, talk_id: int, user_id: int) -> None:
    """Make the gateway know the agent AGENT_LOGIN: post its talk to the webhook."""
    response = await push(client, agent_talk(talk_id, user_id))
    assert response.status_code == 202, response.text


def launch_path(launch_url: str) -> str:
    """The path of a launch link `agentLogin` handed out on PUBLIC_URL."""
    assert launch_url.startswith(PUBLIC_URL + "/talkme/launch/"), launch_url
    return launch_url.removeprefix(PUBLIC_URL)


@asynccontextmanager
async def serving(
    app: Starlette,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` with its lifespan running."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
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


PROTOCOL = "graphql-transport-ws"
TIMEOUT = 5.0


class GraphQLSocket:
    """A minimal graphql-transport-ws client."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        # Browser clients (graphql-ws) accept only text frames.
        assert isinstance(raw, str), f"a binary frame: {raw!r}"
        received: dict[str, Any] = json.loads(raw)
        return received

    async def init(self, key: str | None) -> dict[str, Any]:
        payload = {"authorization": f"Bearer {key}"} if key else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, op_id: str = "1"
    ) -> None:
        await self.send(
            {
                "id": op_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )


async def open_socket(address: str, *, subprotocol: str = PROTOCOL) -> ClientConnection:
    return await connect(f"ws://{address}/graphql", subprotocols=[subprotocol])  # type: ignore[list-item]


async def post_talk(address: str, payload: object) -> None:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        response = await client.post(
            "/webhooks/talks", json=payload, headers={"X-Webhook-Token": WEBHOOK_SECRET}
        )
        assert response.status_code == 202, response.text


TALK_UPDATED = """subscription($filter: TalkFilter) {
  talkUpdated(filter: $filter) { id: databaseId queueId histories { totalCount } customer { name } }
}"""


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any TALKGATE_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env["TALKGATE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


def talkgate(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console entry point
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=tmp_path,
        env=env or env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def open_cli_store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'cli.db'}")
    await store.open()
    return store


Labels = dict[str, str]


async def scrape(client: httpx.AsyncClient) -> list[tuple[str, Labels, float]]:
    """Every sample /metrics exposes: (name, labels, value)."""
    response = await client.get("/metrics", headers=bearer(ALL_KEY))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


async def value(client: httpx.AsyncClient, metric: str, /, **labels: str) -> float:
    """The value of the one sample `metric` whose labels are exactly `labels` (0 when absent)."""
    found = [v for n, ls, v in await scrape(client) if n == metric and ls == labels]
    assert len(found) <= 1
    return found[0] if found else 0.0


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


OPERATIONS = "talkgate_graphql_operations_total"
