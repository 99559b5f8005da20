"""The store away (SQLite locked, PostgreSQL unreachable): 503s and typed errors, then recovery."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from gateway.http.app import create_app
from tests.backends import fresh_schema
from tests.factories import snapshot
from tests.support import ALL_KEY, READ_KEY, make_settings, push, serving

TALK_QUERY = "query ($id: ID) { talk(id: $id) { id: databaseId } }"


async def _talk(client: httpx.AsyncClient, talk_id: int) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": TALK_QUERY, "variables": {"id": str(talk_id)}},
        headers={"Authorization": f"Bearer {READ_KEY}"},
    )


def _codes(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def _assert_refused_and_typed(client: httpx.AsyncClient, talk_id: int) -> None:
    """Webhook 503 + Retry-After, GraphQL SERVICE_UNAVAILABLE, /readyz 503: never a 500."""
    delivery, query, ready = await asyncio.gather(
        push(client, snapshot(talk_id, [talk_id * 10])),
        _talk(client, 1),
        client.get("/readyz"),
    )
    assert delivery.status_code == 503, delivery.text
    assert int(delivery.headers["retry-after"]) > 0
    assert _codes(query) == ["SERVICE_UNAVAILABLE"]
    assert "Traceback" not in query.text
    assert ready.status_code == 503


async def _assert_serving(client: httpx.AsyncClient, talk_id: int) -> None:
    delivery = await push(client, snapshot(talk_id, [talk_id * 10]))
    assert delivery.status_code == 202, delivery.text
    query = await _talk(client, talk_id)
    assert _codes(query) == []
    assert query.json()["data"]["talk"] == {"id": str(talk_id)}
    assert (await client.get("/readyz")).status_code == 200


# -- SQLite ---------------------------------------------------------------------------------


@contextmanager
def _write_locked(path: Path) -> Iterator[None]:
    """Another connection's `BEGIN EXCLUSIVE` on the file, held until the block ends.

    In WAL mode it stops writers only: readers go on reading the last commit.
    """
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            held.set()
            release.wait(30)
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        assert held.wait(10), "could not take the lock"
        yield
    finally:
        release.set()
        thread.join(10)


# Another process holding every WAL lock of the -shm file (POSIX locks at bytes 120..127, as
# SQLite's unix VFS lays them out): readers and writers alike get SQLITE_BUSY and give up.
_HOLD_SHM_LOCKS = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 8, 120, 0)
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def _all_locked(path: Path) -> Iterator[None]:
    with subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _HOLD_SHM_LOCKS, f"{path}-shm"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            assert process.stdout.readline().strip() == "locked"
            yield
        finally:
            process.stdin.close()  # the holder reads to EOF, then exits and drops its locks
            process.wait(10)


AGENT_LOGIN = 'mutation { agentLogin(input: {login: "1001", password: "pw"}) { session } }'


@pytest.mark.slow
async def test_a_sqlite_write_lock_beyond_busy_timeout_is_503_then_recovers(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(tmp_path))
    async with serving(app) as client:
        await _assert_serving(client, 1)
        with _write_locked(tmp_path / "talkgate.db"):
            started = time.monotonic()
            delivery, login, query = await asyncio.gather(
                push(client, snapshot(2, [20])),
                client.post(
                    "/graphql",
                    json={"query": AGENT_LOGIN},
                    headers={"Authorization": f"Bearer {ALL_KEY}"},
                ),
                _talk(client, 1),
            )
            assert delivery.status_code == 503, delivery.text
            assert int(delivery.headers["retry-after"]) > 0
            assert _codes(login) == ["SERVICE_UNAVAILABLE"]  # a login ticket is a write
            assert time.monotonic() - started < 15  # busy_timeout (5 s), not a hang
            assert _codes(query) == []  # WAL: a writer does not stop readers
            assert (await client.get("/readyz")).status_code == 200
        await _assert_serving(client, 3)
        # The refused delivery left nothing behind.
        assert (await _talk(client, 2)).json()["data"]["talk"] is None


@pytest.mark.slow
async def test_a_sqlite_file_locked_for_readers_too_is_typed_then_recovers(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(tmp_path))
    async with serving(app) as client:
        await _assert_serving(client, 1)
        with _all_locked(tmp_path / "talkgate.db"):
            await asyncio.wait_for(_assert_refused_and_typed(client, 2), 30)
        await _assert_serving(client, 3)


# -- PostgreSQL through a proxy the test cuts -------------------------------------------------


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


@pytest.mark.slow
async def test_postgres_unreachable_is_typed_and_recovers_without_restart(
    tmp_path: Path, postgres_database: str
) -> None:
    from tests.reliability.support import proxy_to

    url = await fresh_schema(postgres_database)
    target = urlsplit(url)
    async with proxy_to(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        app = create_app(make_settings(tmp_path, database_url=_through(url, proxy.port)))
        async with serving(app) as client:
            await _assert_serving(client, 1)
            proxy.cut()
            for attempt in range(3):  # pooled connections die one by one: each try is typed
                await asyncio.wait_for(_assert_refused_and_typed(client, 10 + attempt), 30)
            proxy.restore()
            deadline = time.monotonic() + 20
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "no recovery after PostgreSQL came back"
                await asyncio.sleep(0.1)
            await _assert_serving(client, 2)


@pytest.mark.slow
async def test_a_full_sqlite_disk_is_503_and_typed_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.storage.sqlite import SQLiteStore

    stores: list[SQLiteStore] = []
    open_writer = SQLiteStore._open_writer

    def capped(self: SQLiteStore) -> None:
        """Open the writer, then let the file grow no further: SQLITE_FULL, as on a full disk."""
        open_writer(self)
        assert self._writer is not None
        (pages,) = self._writer.execute("PRAGMA page_count").fetchone()
        self._writer.execute(f"PRAGMA max_page_count = {pages:d}")
        stores.append(self)

    monkeypatch.setattr(SQLiteStore, "_open_writer", capped)
    app = create_app(make_settings(tmp_path))
    async with serving(app) as client:
        big = snapshot(2, list(range(1020, 1220)))  # ids no other talk here holds
        delivery = await push(client, big)
        assert delivery.status_code == 503, delivery.text
        assert int(delivery.headers["retry-after"]) > 0
        assert (await client.get("/readyz")).status_code == 200  # reads go on
        [store] = stores

        def room() -> None:
            assert store._writer is not None
            store._writer.execute("PRAGMA max_page_count = 1073741823")

        await store._write(room)  # space freed: no restart needed
        assert (await push(client, big)).status_code == 202
        await _assert_serving(client, 3)
