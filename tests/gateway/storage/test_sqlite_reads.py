"""SQLite reads on the event loop, within a budget (SQLiteStore._read).

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.storage import sqlite as sqlite_module
from gateway.storage.protocol import StoreUnavailable
from gateway.storage.records import (
    PageRequest,
    StoreOrder,
    TalkQuery,
)
from gateway.storage.sqlite import SQLiteStore
from tests.factories import talk
from tests.gateway.storage.support import (
    TALK,
    deliver,
    ids_in,
)

# -- SQLite reads on the event loop, within a budget (SQLiteStore._read) ---------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'loop.db'}")
    await opened.open()
    await deliver(opened, *(talk(TALK + n) for n in range(30)))
    yield opened
    await opened.close()


def _threaded_reads(monkeypatch: pytest.MonkeyPatch, store: SQLiteStore) -> list[str]:
    """The names of the threads that open a reader connection from now on."""
    seen: list[str] = []
    reader = store._reader

    def recorded() -> sqlite3.Connection:
        seen.append(threading.current_thread().name)
        return reader()

    monkeypatch.setattr(store, "_reader", recorded)
    return seen


async def _page_ids(store: SQLiteStore) -> list[int]:
    pages = await store.talk_pages(
        query=TalkQuery(), page=PageRequest(first=25), order=StoreOrder.CREATED_AT_DESC
    )
    return ids_in(pages[None])


async def test_a_page_is_read_on_the_loop_and_a_longer_read_on_a_thread(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded = _threaded_reads(monkeypatch, sqlite_store)
    on_the_loop = await _page_ids(sqlite_store)
    assert threaded == []
    # A budget the same page cannot stay within (whatever number of SQLite steps its
    # statements take): interrupted, read again on a thread.
    monkeypatch.setattr("gateway.storage.sqlite._STEPS_PER_CALL", 1)
    monkeypatch.setattr("gateway.storage.sqlite.LOOP_READ_STEPS", 0)
    assert await _page_ids(sqlite_store) == on_the_loop
    assert threaded
    assert all(name != threading.main_thread().name for name in threaded)
    assert not sqlite_store._loop_reader().in_transaction


async def test_counts_are_read_on_a_thread(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite counts a table's rows in one step the budget cannot interrupt."""
    threaded = _threaded_reads(monkeypatch, sqlite_store)
    counted = await sqlite_store.count_talks(query=TalkQuery())
    assert counted == {None: 30}
    assert threaded


@pytest.mark.parametrize("budget", [0, 1, 2, 3, 5, 8])
async def test_a_read_interrupted_anywhere_leaves_the_loop_s_connection_clean(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    """Wherever the budget runs out (inside a read transaction of several statements
    included), the answer is the thread's, and the next write is seen by the next read."""
    monkeypatch.setattr("gateway.storage.sqlite._STEPS_PER_CALL", 1)
    monkeypatch.setattr("gateway.storage.sqlite.LOOP_READ_STEPS", budget)
    before = await _page_ids(sqlite_store)
    assert len(before) == 25
    assert not sqlite_store._loop_reader().in_transaction
    await deliver(sqlite_store, talk(TALK + 100))
    monkeypatch.undo()
    assert list(await sqlite_store.talks_by_id([TALK + 100])) == [TALK + 100]
    assert len(await _page_ids(sqlite_store)) == 25


async def test_a_read_interrupted_inside_its_transaction_leaves_none_open(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of several statements in one read transaction (_consistently's second try),
    interrupted at the budget: the loop's connection is left outside any transaction, so
    the next read there sees commits made since."""

    def in_one_transaction(c: sqlite3.Connection) -> int:
        # _consistently commits in a `finally`, itself interrupted past the budget; this
        # work leaves its transaction to whoever interrupts it, and runs out of budget at
        # once once it is in (the handler the store set, replaced by one that stops all).
        c.execute("BEGIN")
        c.set_progress_handler(lambda: True, 1)
        return int(c.execute("SELECT count(*) FROM talks WHERE id > 0").fetchone()[0])

    assert sqlite_store._on_the_loop(in_one_transaction) is sqlite_module._TOO_LONG
    assert not sqlite_store._loop_reader().in_transaction


async def test_after_the_file_was_found_busy_reads_skip_the_loop_for_a_while(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locked by another process, SQLite may retry and sleep for seconds inside a read (10 s
    seen with every shared-memory lock held): once the file was found busy, reads wait on
    the reader threads, not on the loop, for BUSY_PAUSE_S."""

    class Busy:
        in_transaction = False

        def execute(self, *_: object) -> None:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error

        def set_progress_handler(self, *_: object) -> None:
            pass

    real = sqlite_store._loop_reader
    monkeypatch.setattr(sqlite_store, "_loop_reader", Busy)
    with pytest.raises(StoreUnavailable):
        await sqlite_store.generation()
    monkeypatch.setattr(sqlite_store, "_loop_reader", real)
    threaded = _threaded_reads(monkeypatch, sqlite_store)
    assert len(await _page_ids(sqlite_store)) == 25
    assert threaded  # on a thread while the pause lasts
    sqlite_store._busy_until = 0.0  # as when BUSY_PAUSE_S has passed
    threaded.clear()
    assert len(await _page_ids(sqlite_store)) == 25
    assert threaded == []  # back on the loop once it is over
