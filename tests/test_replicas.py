"""Two `talkgate serve` processes on one PostgreSQL database and one Redis: a scale-out.

Both replicas start at once on an empty database, so they also race to migrate it. What
one replica takes in, the other serves: talks, subscription events, login tickets.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect

from gateway.auth import key_digest
from gateway.settings import SCOPES
from tests.backends import (
    REDIS_URL,
    throwaway_database,
    unreachable,
)
from tests.factories import snapshot, talk
from tests.support import graphql_data

pytestmark = pytest.mark.slow

WEBHOOK_SECRET = "replicas-webhook-secret-5f2c81"
SECRET_KEY = "replicas-secret-key-0b9e4d7a13"
PUBLIC_URL = "https://gateway.example"
# Key names are this run's own: rate-limit buckets in Redis are per key name, and other
# test runs may share the Redis server.
KEY = f"tgk_replicas_{secrets.token_hex(8)}"
KEY_NAME = f"replicas-{secrets.token_hex(4)}"
LIMITED_KEY_NAME = f"replicas-limited-{secrets.token_hex(4)}"
RATE_LIMIT_PER_MINUTE = 4
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
PUSH_TIMEOUT_S = 1.0
PUSH_ATTEMPTS = 10
PROTOCOL = "graphql-transport-ws"

# Talk ids of this run's own: events reach every talkgate process on the Redis server, and
# another run's event about a talk this database also holds would be pushed here too.
_RUN = 10_000_000 + secrets.randbelow(1_000_000) * 100
TALK_ID = _RUN + 1
MERGED_TALK_ID = _RUN + 50
MERGED_MESSAGE_IDS = [880_010_001 + i for i in range(60)]


@dataclass(frozen=True)
class Replicas:
    """Two running replicas: their base URLs and the files their stderr goes to."""

    a: str
    b: str
    logs: tuple[Path, Path]

    def log_text(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()}" for path in self.logs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_problem(url: str) -> str | None:
    client = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def _environment(database_url: str, key_name: str, **extra: str) -> dict[str, str]:
    """The caller's environment without any TALKGATE_ setting, plus the replicas' settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    talkme = f"http://127.0.0.1:{_free_port()}"  # closed: nothing here calls Talk.me
    entry = {"name": key_name, "sha256": key_digest(KEY), "scopes": sorted(SCOPES)}
    env.update(
        {
            "TALKGATE_DATABASE_URL": database_url,
            "TALKGATE_REDIS_URL": REDIS_URL,
            "TALKGATE_SECRET_KEY": SECRET_KEY,
            "TALKGATE_API_KEYS": json.dumps([entry]),
            "TALKGATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TALKGATE_PUBLIC_URL": PUBLIC_URL,
            "TALKGATE_TALKME_LOGIN_URL": f"{talkme}/login",
            "TALKGATE_TALKME_AGENT_API_URL": talkme,
            "TALKGATE_TALKME_BC_API_URL": talkme,
            "TALKGATE_TALKME_TIMEOUT_S": "1",
            **{f"TALKGATE_{name.upper()}": value for name, value in extra.items()},
        }
    )
    return env


def _wait_ready(processes: list[subprocess.Popen[bytes]], bases: list[str]) -> None:
    """Returns once every replica answers /readyz with 200; raises if one exits or is late."""
    waiting = dict(zip(bases, processes, strict=True))
    deadline = time.monotonic() + START_TIMEOUT_S
    while waiting:
        for base, process in list(waiting.items()):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    del waiting[base]
                    continue
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"replica {base} exited with {process.returncode}")
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"replicas {sorted(waiting)} not ready in time")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def _pair(directory: Path, env: dict[str, str]) -> Iterator[Replicas]:
    """Two `talkgate serve` processes with `env`, started at once; stopped on the way out."""
    ports = [_free_port(), _free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    logs = (directory / "replica-a.log", directory / "replica-b.log")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port, log_path in zip(ports, logs, strict=True):
            with log_path.open("w") as log:
                processes.append(
                    subprocess.Popen(  # noqa: S603 - our own console entry point
                        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
                        cwd=directory,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
        running = Replicas(a=bases[0], b=bases[1], logs=logs)
        try:
            _wait_ready(processes, bases)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{running.log_text()}") from None
        yield running
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A new, empty database for this module; skips, saying why, without PostgreSQL or Redis."""
    with throwaway_database() as url:
        problem = _redis_problem(REDIS_URL)
        if problem is not None:
            unreachable("Redis", REDIS_URL, problem)
        yield url


@pytest.fixture(scope="module")
def replicas(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Two replicas started together on the empty database: they also race to migrate it."""
    env = _environment(database_url, KEY_NAME)
    with _pair(tmp_path_factory.mktemp("replicas"), env) as running:
        yield running


# -- clients ----------------------------------------------------------------------------------


async def gql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST a GraphQL operation to a replica; the `data`, asserting there are no errors."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    return graphql_data(response)


async def post_talk(client: httpx.AsyncClient, payload: object) -> httpx.Response:
    return await client.post(
        "/webhooks/talks", json=payload, headers={"X-Webhook-Token": WEBHOOK_SECRET}
    )


class GraphQLSocket:
    """A minimal graphql-transport-ws client of one replica."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, wait_s: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), wait_s)
        received: dict[str, Any] = json.loads(raw)
        return received

    async def subscribe(self, query: str, variables: dict[str, Any]) -> None:
        """Authenticate, wait for the acknowledgement, then start one subscription."""
        payload = {"authorization": f"Bearer {KEY}"}
        await self.send({"type": "connection_init", "payload": payload})
        ack = await self.receive()
        assert ack["type"] == "connection_ack", ack
        await self.send(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )

    async def pushed_after(self, act: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
        """The first event that follows `act(attempt)`, repeating it while none arrives.

        graphql-transport-ws does not acknowledge `subscribe`: an event caused before the
        server has set the subscription up is not pushed, so the cause is made again.
        """
        for attempt in range(PUSH_ATTEMPTS):
            await act(attempt)
            try:
                message = await self.receive(PUSH_TIMEOUT_S)
            except TimeoutError:
                continue
            assert message["type"] == "next", message
            return message
        raise AssertionError(f"nothing pushed after {PUSH_ATTEMPTS} attempts")


async def open_socket(base: str) -> ClientConnection:
    url = base.replace("http://", "ws://", 1) + "/graphql"
    return await connect(url, subprotocols=[PROTOCOL])  # type: ignore[list-item]


# -- a talk taken in by one replica is served by the other -----------------------------------

TALK_UPDATED = (
    "subscription { talkUpdated { id: databaseId trackingNumber histories { totalCount } } }"
)
TALK = (
    "query($id: ID!) { talk(id: $id) { id: databaseId trackingNumber histories { totalCount } } }"
)


async def test_a_talk_posted_to_one_replica_is_read_and_pushed_on_the_other(
    replicas: Replicas,
) -> None:
    posted: list[int] = []

    async def post_one(attempt: int) -> None:
        talk_id = TALK_ID + attempt
        async with httpx.AsyncClient(base_url=replicas.a, timeout=10) as client:
            response = await post_talk(client, talk(talk_id))
        assert response.status_code == 202, response.text
        posted.append(talk_id)

    async with await open_socket(replicas.b) as ws:
        socket_b = GraphQLSocket(ws)
        await socket_b.subscribe(TALK_UPDATED, {})
        event = await socket_b.pushed_after(post_one)

    pushed = event["payload"]["data"]["talkUpdated"]
    assert int(pushed["id"]) in posted
    assert pushed["histories"] == {"totalCount": 3}
    read = await gql(replicas.b, TALK, {"id": str(TALK_ID)})
    assert read["talk"] == {
        "id": str(TALK_ID),
        "trackingNumber": f"TN{TALK_ID}",
        "histories": {"totalCount": 3},
    }


# -- a login ticket made on one replica is redeemed, once, on the other ---------------------

AGENT_LOGIN = "mutation($i: AgentCredentialsInput!) { agentLogin(input: $i) { launchUrl } }"


async def test_a_login_link_from_one_replica_opens_once_on_the_other(
    replicas: Replicas,
) -> None:
    login = f"agent-{secrets.token_hex(4)}"
    password = "agent-pw-Replicas-9"

    async def launch_on_b() -> None:
        data = await gql(replicas.a, AGENT_LOGIN, {"i": {"login": login, "password": password}})
        launch_url: str = data["agentLogin"]["launchUrl"]
        assert launch_url.startswith(f"{PUBLIC_URL}/talkme/launch/")
        path = launch_url.removeprefix(PUBLIC_URL)
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(replicas.b + path)
            again = await client.get(replicas.a + path)
        assert page.status_code == 200, page.text
        assert 'id="talkme-login"' in page.text
        assert f'name="login" value="{login}"' in page.text
        assert again.status_code == 410, again.text

    # Serving the page confirms nothing (Talk.me answers the browser), so no status event.
    await launch_on_b()


# -- concurrent snapshots of one talk on both replicas merge without losing a message ------

MERGED = """query($id: ID!) {
  talk(id: $id) {
    finishedAt status queueId isCritical
    histories(first: 100) { totalCount edges { node { id: databaseId } } }
  }
}"""
FINISHED_QUEUE_ID = 4242


def _snapshots() -> list[dict[str, Any]]:
    """50 snapshots of one talk, each with its own subset of the 60 messages; one finished.

    The finished one does not hold the latest message, so only "finished beats unfinished"
    makes its top-level fields win.
    """
    rng = random.Random(20250908)
    ids = MERGED_MESSAGE_IDS
    subsets: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    while len(subsets) < 50:
        index = len(subsets)
        # Snapshot i surely holds messages i and i + 50, so every message is somewhere.
        chosen = set(rng.sample(ids[:-1], rng.randint(3, 25))) | {ids[index]}
        if index + 50 < len(ids):
            chosen.add(ids[index + 50])
        key = tuple(sorted(chosen))
        if key not in seen:
            seen.add(key)
            subsets.append(list(key))
    finished = 17
    subsets[finished] = [i for i in subsets[finished] if i != ids[-1]]
    assert set().union(*map(set, subsets)) == set(ids)
    assert len({tuple(s) for s in subsets}) == 50
    return [
        snapshot(
            MERGED_TALK_ID,
            subset,
            finished=index == finished,
            queue_id=FINISHED_QUEUE_ID if index == finished else 100 + index,
            is_critical=index == finished,
        )
        for index, subset in enumerate(subsets)
    ]


async def test_concurrent_snapshots_on_both_replicas_merge_every_message(
    replicas: Replicas,
) -> None:
    payloads = _snapshots()
    async with (
        httpx.AsyncClient(base_url=replicas.a, timeout=30) as a,
        httpx.AsyncClient(base_url=replicas.b, timeout=30) as b,
    ):
        responses = await asyncio.gather(
            *(
                post_talk(a if index % 2 == 0 else b, payload)
                for index, payload in enumerate(payloads)
            )
        )
    statuses = [response.status_code for response in responses]
    assert statuses == [202] * 50, f"{statuses}\n{replicas.log_text()}"

    for base in (replicas.a, replicas.b):
        merged = (await gql(base, MERGED, {"id": str(MERGED_TALK_ID)}))["talk"]
        histories = merged["histories"]
        assert histories["totalCount"] == 60
        assert [int(edge["node"]["id"]) for edge in histories["edges"]] == MERGED_MESSAGE_IDS
        assert merged["finishedAt"] == "2025-09-08T14:30:00Z"
        assert merged["status"] == "FINISHED"
        assert merged["queueId"] == str(FINISHED_QUEUE_ID)
        assert merged["isCritical"] is True


# -- the rate limit of a key is one budget across replicas ----------------------------------


@pytest.fixture(scope="module")
def limited_replicas(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """Two more replicas on the same database, allowing only a few requests a minute."""
    env = _environment(
        database_url, LIMITED_KEY_NAME, rate_limit_per_minute=str(RATE_LIMIT_PER_MINUTE)
    )
    with _pair(tmp_path_factory.mktemp("limited"), env) as running:
        yield running


async def test_the_rate_limit_of_a_key_is_shared_by_the_replicas(
    limited_replicas: Replicas,
) -> None:
    bases = [limited_replicas.a, limited_replicas.b] * 3
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=10) as client:
        for base in bases:
            answers.append(
                await client.post(
                    f"{base}/graphql",
                    json={"query": "{ __typename }"},
                    headers={"Authorization": f"Bearer {KEY}"},
                )
            )
    # Counted per replica, each would let all three of its requests through.
    assert [a.status_code for a in answers] == [200] * 4 + [429] * 2, [a.text for a in answers]
    refused = answers[-1].json()
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(answers[-1].headers["Retry-After"]) >= 1
