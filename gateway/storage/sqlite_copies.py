"""Copies of a SQLite store: a backup taken while `serve` writes to it (SQLite's online
backup API, inside one read transaction: a consistent snapshot, copied page by page), and a
restore into a store no process has open (held with an exclusive lock while it is written,
so no `serve` can start on it half-written).

A backup is one self-contained file (rollback journal, not WAL: no -wal or -shm beside it).
The store a restore writes goes back to WAL mode, as talkgate keeps it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from gateway.storage.migrations import SchemaState
from gateway.storage.sqlite_schema import MIGRATIONS

# Pages copied per step of the backup API, between two progress reports (4 MB at 4 KB).
PAGES_PER_STEP = 1024
# The check of a copy: integrity_check, not quick_check, which SQLite 3.40 answers "NULL
# value in delivery_talks.seq" for a WITHOUT ROWID table whose key is not in column order.
_CHECK = "PRAGMA integrity_check(1)"
# (pages done, pages in all)
Progress = Callable[[int, int], None]


class StoreInUse(Exception):
    """Another process has the store open (a running `serve`, `ingest`, ...)."""


class NotAStore(Exception):
    """The file is not a talkgate store this talkgate can restore; the message says why."""


@dataclass(frozen=True, slots=True)
class Contents:
    """What a store file holds, as an operator checks a copy of it."""

    pages: int
    page_size: int
    schema: SchemaState
    talks: int
    deliveries: int
    dead_letters: int

    @property
    def size(self) -> int:
        return self.pages * self.page_size


def _contents(connection: sqlite3.Connection) -> Contents:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    (page_size,) = connection.execute("PRAGMA page_size").fetchone()
    counts = [
        connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        for table in ("talks", "deliveries", "dead_letters")
    ]
    return Contents(pages, page_size, SchemaState.of(version, MIGRATIONS), *counts)


def _copy_pages(source: sqlite3.Connection, target: sqlite3.Connection, progress: Progress) -> None:
    """Every page of `source` into `target`, PAGES_PER_STEP at a time, reporting each step."""
    source.backup(
        target,
        pages=PAGES_PER_STEP,
        progress=lambda _, remaining, total: progress(total - remaining, total),
        sleep=0,
    )


def backup(store_path: str, target: Path, progress: Progress) -> Contents:
    """Copy the store at `store_path` to `target` (which must not exist) as one consistent
    snapshot while others keep writing to it; what the copy holds."""
    if target.exists():
        raise FileExistsError(f"{target} exists: name a new file (a backup never overwrites)")
    if not Path(store_path).exists():
        raise FileNotFoundError(f"there is no store at {store_path}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with closing(sqlite3.connect(store_path, isolation_level=None, timeout=5.0)) as source:
        # One read transaction for the whole copy: a snapshot that commits made meanwhile do
        # not touch, so the copy neither restarts nor mixes two states.
        source.execute("BEGIN")
        contents = _contents(source)
        with closing(sqlite3.connect(partial, isolation_level=None)) as copy:
            _copy_pages(source, copy, progress)
            copy.execute("PRAGMA journal_mode = DELETE")  # one file, nothing beside it
            (check,) = copy.execute(_CHECK).fetchone()
        source.execute("COMMIT")
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise NotAStore(f"the copy does not check out ({check}); nothing was written")
    os.replace(partial, target)
    return contents


def inspect(backup_path: Path) -> Contents:
    """What the backup at `backup_path` holds; NotAStore when it is no talkgate store this
    talkgate can restore (not SQLite, damaged, no schema, or a newer talkgate's)."""
    if not backup_path.is_file():
        raise NotAStore(f"{backup_path} is not a file")
    uri = f"file:{backup_path}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            (check,) = connection.execute(_CHECK).fetchone()
            if check != "ok":
                raise NotAStore(f"{backup_path} is damaged ({check})")
            contents = _contents(connection)
    except sqlite3.DatabaseError as exc:
        raise NotAStore(f"{backup_path} is not a talkgate store ({exc})") from None
    if contents.schema.current == 0:
        raise NotAStore(f"{backup_path} is not a talkgate store (no schema)")
    if contents.schema.newer:
        raise NotAStore(
            f"{backup_path} has schema version {contents.schema.current}, newer than this"
            f" talkgate's {contents.schema.latest}: restore it with that talkgate"
        )
    return contents


def restore(backup_path: Path, store_path: str, progress: Progress) -> Contents:
    """Replace the store at `store_path` (made if missing) by the backup at `backup_path`;
    StoreInUse, changing nothing, when another process has the store open."""
    contents = inspect(backup_path)
    Path(store_path).parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(store_path, isolation_level=None, timeout=0)) as store:
        try:
            # Exclusive locking mode: once taken, the lock stays until this connection closes
            # (no other process can open the store meanwhile); it cannot be taken while one has.
            store.execute("PRAGMA locking_mode = EXCLUSIVE")
            store.execute("BEGIN EXCLUSIVE")
            store.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreInUse(
                    f"another process has the store {store_path} open (a running serve?):"
                    " stop it first; nothing was changed"
                ) from None
            raise
        uri = f"file:{backup_path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as source:
            _copy_pages(source, store, progress)
        store.execute("PRAGMA journal_mode = WAL")
    return contents
