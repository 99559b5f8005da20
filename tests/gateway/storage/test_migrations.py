"""Where a store's schema stands, on every backend: a new store has every migration pending,
opening migrates it (or, told not to, changes nothing and refuses), a store part of the way
is taken the rest of it, and a store of a newer schema is refused and left as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from gateway.storage import open_store
from gateway.storage.migrations import Migration, NewerStore, PendingMigrations
from gateway.storage.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from gateway.storage.sqlite import sqlite_path
from gateway.storage.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.backends import BACKENDS, empty_store_url
from tests.factories import talk
from tests.gateway.storage.support import delivery

MIGRATIONS = {"sqlite": SQLITE_MIGRATIONS, "postgres": POSTGRES_MIGRATIONS}


@pytest.fixture(params=BACKENDS)
async def empty(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(backend, URL) of a store that does not exist yet: no file, an empty schema."""
    return request.param, await empty_store_url(request.param, tmp_path, request)


def _file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


async def footprint(url: str) -> Any:
    """What a store holds, to tell whether anything changed: a SQLite file's bytes (None: no
    file), a PostgreSQL schema's tables and the versions recorded."""
    if url.startswith("sqlite:///"):
        return _file_digest(Path(sqlite_path(url)))
    connection = await asyncpg.connect(url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY 1"
        )
        names = [row[0] for row in tables]
        versions = (
            await connection.fetch("SELECT version FROM talkgate_schema_version ORDER BY 1")
            if "talkgate_schema_version" in names
            else []
        )
        return names, [row[0] for row in versions]
    finally:
        await connection.close()


def on_sqlite(url: str, *scripts: str) -> None:
    """Run `scripts` on the SQLite file of `url`, as another program would, and commit."""
    with closing(sqlite3.connect(sqlite_path(url))) as connection:
        for script in scripts:
            connection.executescript(script)
        connection.commit()


async def apply_first(url: str, migrations: tuple[Migration, ...], count: int) -> None:
    """The store at `url` as a talkgate that knew only its first `count` migrations left it."""
    if url.startswith("sqlite:///"):
        scripts = [migration.sql for migration in migrations[:count]]
        on_sqlite(url, *scripts, f"PRAGMA user_version = {count:d}")
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute(
            "CREATE TABLE talkgate_schema_version (version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number, migration in enumerate(migrations[:count], start=1):
            await pg.execute(migration.sql)
            await pg.execute("INSERT INTO talkgate_schema_version (version) VALUES ($1)", number)
    finally:
        await pg.close()


async def mark_newer(url: str, version: int) -> None:
    """The store at `url` as a talkgate knowing `version` migrations left it."""
    if url.startswith("sqlite:///"):
        on_sqlite(url, f"PRAGMA user_version = {version:d}")
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("INSERT INTO talkgate_schema_version (version) VALUES ($1)", version)
    finally:
        await pg.close()


def test_every_migration_says_in_one_line_what_it_adds() -> None:
    for migrations in MIGRATIONS.values():
        for migration in migrations:
            assert migration.summary
            assert "\n" not in migration.summary
            assert len(migration.summary) <= 90
            assert migration.sql.strip()


async def test_a_new_store_has_every_migration_pending_and_reading_so_makes_nothing(
    empty: tuple[str, str],
) -> None:
    backend, url = empty
    before = await footprint(url)
    state = await open_store(url).schema_state()
    assert (state.current, state.latest) == (0, len(MIGRATIONS[backend]))
    assert state.pending == tuple(m.summary for m in MIGRATIONS[backend])
    assert not state.newer
    assert await footprint(url) == before


async def test_not_migrating_refuses_a_store_with_migrations_pending_and_makes_nothing(
    empty: tuple[str, str],
) -> None:
    _, url = empty
    before = await footprint(url)
    with pytest.raises(PendingMigrations) as refused:
        await open_store(url).open(migrate=False)
    assert "run `talkgate migrate` first" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert await footprint(url) == before


async def test_opening_migrates_to_the_latest_and_a_current_store_opens_without_migrating(
    empty: tuple[str, str],
) -> None:
    backend, url = empty
    store = open_store(url)
    await store.open()
    state = await store.schema_state()
    await store.close()
    assert (state.current, state.pending) == (len(MIGRATIONS[backend]), ())
    again = open_store(url)
    await again.open(migrate=False)
    try:
        assert (await again.schema_state()).current == len(MIGRATIONS[backend])
    finally:
        await again.close()


async def test_a_store_part_of_the_way_is_taken_the_rest_keeping_what_it_holds(
    empty: tuple[str, str],
) -> None:
    backend, url = empty
    migrations = MIGRATIONS[backend]
    await apply_first(url, migrations, 1)
    assert (await open_store(url).schema_state()).pending == tuple(
        m.summary for m in migrations[1:]
    )
    with pytest.raises(PendingMigrations):
        await open_store(url).open(migrate=False)
    store = open_store(url)
    await store.open()
    try:
        assert (await store.schema_state()).current == len(migrations)
        await store.ingest([delivery(talk(4242))])
        assert 4242 in await store.talks_by_id([4242])
    finally:
        await store.close()


@pytest.mark.parametrize("migrate", [True, False])
async def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_was(
    empty: tuple[str, str], migrate: bool
) -> None:
    backend, url = empty
    store = open_store(url)
    await store.open()
    await store.close()
    newer = len(MIGRATIONS[backend]) + 3
    await mark_newer(url, newer)
    before = await footprint(url)
    state = await open_store(url).schema_state()
    assert state.newer
    assert state.current == newer
    with pytest.raises(NewerStore) as refused:
        await open_store(url).open(migrate=migrate)
    message = str(refused.value)
    assert f"schema version {newer}" in message
    assert "was not changed" in message
    assert await footprint(url) == before
