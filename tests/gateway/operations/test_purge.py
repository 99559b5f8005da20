"""Retention as an operator runs it: `talkgate purge --before DATE [--dry-run]` (a real
process) on SQLite and PostgreSQL, leaving no trace of what it removed in the store's files
or in a dump; a running gateway's cached answers follow; and `serve` with
TALKGATE_RETENTION_DAYS purging by itself, counted in its metrics."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from tests.backends import POSTGRES_URL, create_database, drop_database, with_database
from tests.factories import message, talk
from tests.support import (
    READ_KEY,
    WEBHOOK_SECRET,
    env_for,
    gql,
    live_server,
    make_settings,
    serving,
    talkgate,
    value,
)

OLD_MARKERS = ("Zuleika Purgeable", "999.888.777-66", "purgeable-secret-words")
RECENT_MARKER = "Recent Customer Kept"


def old_talk() -> dict[str, Any]:
    body = talk(601)
    body["finished_at"] = "2024-06-01 10:00:00"
    body["customer"] = {
        **body["customer"],
        "id": 9601,
        "name": OLD_MARKERS[0],
        "document_number": OLD_MARKERS[1],
    }
    body["customer_id"] = 9601
    body["talk_histories"] = [message(60101, OLD_MARKERS[2], talk_id=601)]
    return body


def recent_talk() -> dict[str, Any]:
    body = talk(602)
    body["finished_at"] = "2025-06-01 10:00:00"
    body["customer"] = {**body["customer"], "id": 9602, "name": RECENT_MARKER}
    body["customer_id"] = 9602
    body["talk_histories"] = [message(60201, "kept words", talk_id=602)]
    return body


async def deliver(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for body in (old_talk(), recent_talk()):
            response = await client.post(
                "/webhooks/talks", json=body, headers={"X-Webhook-Token": WEBHOOK_SECRET}
            )
            assert response.status_code == 202, response.text


def traces(directory: Path, name: str) -> set[str]:
    """The markers found in the store's files (the database, its -wal and -shm)."""
    found = set()
    for path in directory.glob(name + "*"):
        data = path.read_bytes()
        found |= {m for m in (*OLD_MARKERS, RECENT_MARKER) if m.encode() in data}
    return found


TALKS = "{ talks { totalCount edges { node { databaseId } } } }"


async def test_purge_on_sqlite_leaves_no_trace_and_a_running_gateway_follows(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path)
    app = create_app(make_settings(tmp_path, database_url=env["TALKGATE_DATABASE_URL"]))
    async with live_server(app) as address:
        await deliver(f"http://{address}")
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            before = await gql(client, TALKS, key=READ_KEY)  # kept in the response cache
            assert before["data"]["talks"]["totalCount"] == 2
            dry = await asyncio.to_thread(
                talkgate, tmp_path, "purge", "--before", "2025-01-01", "--dry-run", env=env
            )
            assert dry.returncode == 0, dry.stderr
            assert dry.stdout.splitlines() == [
                f"would purge from {env['TALKGATE_DATABASE_URL']} what finished before"
                " 2025-01-01T03:00:00Z: 1 talks, 1 messages, 1 events, 1 deliveries,"
                " 0 dead letters, 1 customers, 0 agents"
            ]
            assert await gql(client, TALKS, key=READ_KEY) == before
            run = await asyncio.to_thread(
                talkgate, tmp_path, "purge", "--before", "2025-01-01", env=env
            )
            assert run.returncode == 0, run.stderr
            assert "purge: 100.0%  1 talks" in run.stderr
            after = await gql(client, TALKS, key=READ_KEY)
            assert after["data"]["talks"] == {
                "totalCount": 1,
                "edges": [{"node": {"databaseId": "602"}}],
            }
    assert traces(tmp_path, "cli.db") == {RECENT_MARKER}


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    name = await create_database(POSTGRES_URL)
    yield with_database(POSTGRES_URL, name)
    await drop_database(POSTGRES_URL, name)


async def test_purge_on_postgresql_leaves_nothing_in_a_dump(tmp_path: Path, postgres: str) -> None:
    app = create_app(make_settings(tmp_path, database_url=postgres))
    async with live_server(app) as address:
        await deliver(f"http://{address}")
    env = env_for(tmp_path, TALKGATE_DATABASE_URL=postgres)
    run = await asyncio.to_thread(talkgate, tmp_path, "purge", "--before", "2025-01-01", env=env)
    assert run.returncode == 0, run.stderr
    dump = await asyncio.to_thread(
        subprocess.run, ["pg_dump", "--data-only", postgres], capture_output=True, check=True
    )
    found = {m for m in (*OLD_MARKERS, RECENT_MARKER) if m.encode() in dump.stdout}
    assert found == {RECENT_MARKER}


async def test_serve_purges_by_itself_with_retention_days_and_counts_it(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, retention_days=365 * 100))  # nothing is that old
    async with live_server(app) as address:
        await deliver(f"http://{address}")
    app = create_app(make_settings(tmp_path, retention_days=30))
    async with serving(app) as client:
        for _ in range(200):
            if (await gql(client, TALKS, key=READ_KEY))["data"]["talks"]["totalCount"] == 0:
                break
            await asyncio.sleep(0.05)
        # Both were finished long before 30 days ago.
        assert (await gql(client, TALKS, key=READ_KEY))["data"]["talks"]["totalCount"] == 0
        assert await value(client, "talkgate_purged_total", what="talks") == 2
        assert await value(client, "talkgate_purged_total", what="customers") == 2
    assert traces(tmp_path, "talkgate.db") == set()


def test_a_bad_date_is_one_line(tmp_path: Path) -> None:
    run = talkgate(tmp_path, "purge", "--before", "31/01/2025")
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "talkgate: --before '31/01/2025' is not a date (2025-01-31) nor a date and time"
        " (2025-01-31T12:00:00-03:00)"
    ]
