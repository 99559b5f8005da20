"""SQLiteStore.generation between commits: read from the wal-index header (storage/wal.py),
without a statement, and still fresh when another connection or process commits."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.ingestor import Body, Ingestor
from gateway.storage.sqlite import SQLiteStore
from gateway.storage.wal import WalIndexHeader
from tests.factories import talk


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'wal.db'}")
    await opened.open()
    await Ingestor(opened, DEFAULT_ZONE).ingest(Body(orjson.dumps(talk(1)), "test"))
    yield opened
    await opened.close()


def statements(store: SQLiteStore) -> list[str]:
    """The statements the loop's reader runs from now on."""
    seen: list[str] = []
    store._loop_reader().set_trace_callback(seen.append)
    return seen


async def test_while_nothing_commits_the_generation_takes_no_statement(
    store: SQLiteStore,
) -> None:
    first = await store.generation()
    assert await store.generation() == first  # this one notes the header it read before
    ran = statements(store)
    for _ in range(5):
        assert await store.generation() == first
    assert ran == []


async def test_a_commit_through_another_connection_is_seen_at_once(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store.generation()
    before = await store.generation()
    other = SQLiteStore(f"sqlite:///{tmp_path / 'wal.db'}")
    await other.open()
    try:
        await Ingestor(other, DEFAULT_ZONE).ingest(Body(orjson.dumps(talk(2)), "other"))
    finally:
        await other.close()
    after = await store.generation()
    assert after != before
    assert after == await by_statement(store)


async def by_statement(store: SQLiteStore) -> str:
    """The generation as the statement reads it."""
    row = (
        store._loop_reader()
        .execute("SELECT (SELECT id FROM store_identity), (SELECT max(seq) FROM deliveries)")
        .fetchone()
    )
    return f"{row[0]}.{row[1] or 0}"


async def test_a_commit_by_another_process_is_seen_at_once(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store.generation()
    before = await store.generation()
    script = textwrap.dedent(
        f"""
        import asyncio, orjson
        from gateway.ingest.ingestor import Body, Ingestor
        from gateway.ingest.coercers import DEFAULT_ZONE
        from gateway.storage.sqlite import SQLiteStore
        from tests.factories import talk

        async def main():
            store = SQLiteStore("sqlite:///{tmp_path / "wal.db"}")
            await store.open()
            await Ingestor(store, DEFAULT_ZONE).ingest(Body(orjson.dumps(talk(3)), "cli"))
            await store.close()

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    assert await store.generation() != before


async def test_a_commit_that_leaves_the_deliveries_gives_the_same_generation_again(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store.generation()
    before = await store.generation()
    ran = statements(store)
    other = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    other.execute("CREATE TABLE IF NOT EXISTS unrelated (x)")
    other.execute("INSERT INTO unrelated VALUES (1)")
    other.close()
    assert await store.generation() == before
    assert len(ran) == 1  # the header moved: read again, and found the same


async def test_after_a_reopen_the_generation_is_read_afresh(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store.generation()
    before = await store.generation()
    await store.close()
    await store.open()
    assert await store.generation() == before
    await Ingestor(store, DEFAULT_ZONE).ingest(Body(orjson.dumps(talk(4)), "test"))
    assert await store.generation() != before


def test_a_file_not_in_wal_mode_has_no_header_to_read(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "rollback.db", isolation_level=None)
    connection.execute("CREATE TABLE t (x)")
    assert WalIndexHeader.of(connection, str(tmp_path / "rollback.db")) is None
    connection.close()


def test_the_header_moves_with_each_commit_of_any_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "plain.db")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("PRAGMA journal_mode = WAL")
    reader.execute("CREATE TABLE t (x)")
    reader.execute("SELECT count(*) FROM t").fetchone()
    header = WalIndexHeader.of(reader, path)
    assert header is not None
    writer = sqlite3.connect(path, isolation_level=None)
    seen = {header.read()}
    for n in range(20):
        writer.execute("INSERT INTO t VALUES (?)", (n,))
        seen.add(header.read())
    writer.execute("PRAGMA wal_checkpoint(RESTART)")  # the next commit restarts the WAL
    writer.execute("INSERT INTO t VALUES (20)")
    seen.add(header.read())
    assert len(seen) == 22  # every commit, the one after the restart included
    unchanged = header.read()
    reader.execute("SELECT count(*) FROM t").fetchone()  # reads change nothing
    assert header.read() == unchanged
    header.close()
    writer.close()
    reader.close()
