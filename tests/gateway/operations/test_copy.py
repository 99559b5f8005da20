"""`talkgate copy --to postgresql://...`, run as an operator moving from the embedded SQLite
to PostgreSQL runs it: the copy answers every query as the SQLite store did, talks merged
from deliveries that came out of order included; it refuses a database that is not empty."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.http.app import create_app
from gateway.storage import open_store
from tests.backends import POSTGRES_URL, create_database, drop_database, with_database
from tests.factories import snapshot, talk
from tests.gateway.operations.support import answers
from tests.support import (
    AGENT_LOGIN,
    WEBHOOK_SECRET,
    agent_talk,
    env_for,
    live_server,
    make_settings,
    talkgate,
)


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    name = await create_database(POSTGRES_URL)
    yield with_database(POSTGRES_URL, name)
    await drop_database(POSTGRES_URL, name)


async def fill(base: str) -> None:
    """Talks through the webhook, some of them in several snapshots that come out of order
    (the later one first), an agent's talk, and bodies that end as dead letters."""
    headers = {"X-Webhook-Token": WEBHOOK_SECRET}
    async with httpx.AsyncClient(base_url=base) as client:
        bodies: list[bytes] = [orjson.dumps(talk(n)) for n in range(1, 31)]
        bodies += [
            orjson.dumps(snapshot(77, [7701, 7702, 7703], finished=True)),
            orjson.dumps(snapshot(77, [7701])),
            orjson.dumps(agent_talk(78, 7801)),
            b"not json",
            b'{"id": "seventy"}',
        ]
        for body in bodies:
            await client.post("/webhooks/talks", content=body, headers=headers)


async def test_a_copy_to_postgresql_answers_as_the_sqlite_store_did(
    tmp_path: Path, empty_postgres: str
) -> None:
    sqlite = f"sqlite:///{tmp_path / 'cli.db'}"
    app = create_app(make_settings(tmp_path, database_url=sqlite))
    async with live_server(app) as address:
        await fill(f"http://{address}")
    store = open_store(sqlite)
    await store.open()
    await store.set_agent_status(
        login=AGENT_LOGIN, status="PAUSED", changed_at="2025-09-08T14:01:17Z"
    )
    await store.put_revocation(
        digest="revoked:abc",
        mark="2025-09-08T14:01:17Z",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    await store.close()
    app = create_app(make_settings(tmp_path, database_url=sqlite))
    async with live_server(app) as address:
        expected = await answers(f"http://{address}", AGENT_LOGIN)

    run = await asyncio.to_thread(talkgate, tmp_path, "copy", "--to", empty_postgres)
    assert run.returncode == 0, run.stderr
    [summary] = run.stdout.splitlines()
    assert summary.startswith(f"copied {sqlite} to {empty_postgres} in ")
    assert summary.endswith(
        ": 33 deliveries (32 talks), 2 dead letters, 1 agent status, 1 login link or revocation"
    )
    assert "copy: 100.0%  33 deliveries" in run.stderr

    app = create_app(make_settings(tmp_path, database_url=empty_postgres))
    async with live_server(app) as address:
        assert await answers(f"http://{address}", AGENT_LOGIN) == expected
    copied = open_store(empty_postgres)
    await copied.open()
    try:
        marks = await copied.revocation_marks(digests=["revoked:abc"], now=datetime.now(UTC))
        assert marks == ["2025-09-08T14:01:17Z"]  # a logout in force stays in force
    finally:
        await copied.close()

    again = await asyncio.to_thread(talkgate, tmp_path, "copy", "--to", empty_postgres)
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"talkgate: {empty_postgres} is not empty (it holds talks, deliveries or dead"
        " letters): copy into an empty database; nothing was copied"
    ]


def test_copy_refuses_to_copy_a_store_onto_itself(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    run = talkgate(tmp_path, "copy", "--to", env["TALKGATE_DATABASE_URL"], env=env)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "talkgate: --to names the store being copied: name another, empty one"
    ]


def test_a_target_that_cannot_be_opened_is_named_as_given(tmp_path: Path) -> None:
    missing = with_database(POSTGRES_URL, "talkgate_no_such_database")
    run = talkgate(tmp_path, "copy", "--to", missing)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("talkgate: PostgreSQL at ")
    assert "has no database 'talkgate_no_such_database'" in line
    assert line.endswith("or name another in --to")
