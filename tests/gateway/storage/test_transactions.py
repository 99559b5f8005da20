"""What a store keeps through failures: transactions, text PostgreSQL cannot hold as such,
reopening.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gateway.storage import TalkStore, merge, open_store, postgres
from gateway.storage.postgres import PostgresStore
from gateway.storage.records import (
    TalkQuery,
)
from gateway.storage.sqlite import SQLiteStore
from gateway.storage.sqlite_schema import MIGRATIONS
from tests.backends import BACKENDS, empty_store_url
from tests.factories import message, snapshot, talk
from tests.gateway.storage.support import (
    CUSTOMER,
    TALK,
    customer_ids,
    deliver,
    delivery,
    normalized,
    tagged_snapshot,
    talk_ids,
    talk_state,
)

# -- transactions -------------------------------------------------------------------------------

CRASHING_TALK = 114799


@pytest.fixture
def crash_on_talk(monkeypatch: pytest.MonkeyPatch, store: TalkStore) -> None:
    """Make a batch holding CRASHING_TALK raise inside the write transaction, like a crash
    would: once all of the batch is written, before the commit."""
    if isinstance(store, SQLiteStore):
        write_batch = SQLiteStore._write_batch

        def write_or_crash(self: SQLiteStore, c: sqlite3.Connection, batch: merge.Batch) -> None:
            write_batch(self, c, batch)
            if CRASHING_TALK in batch.talks:
                raise RuntimeError("simulated crash")

        monkeypatch.setattr(SQLiteStore, "_write_batch", write_or_crash)
        return
    assert isinstance(store, PostgresStore)
    write_batch_async = postgres._write_batch

    async def write_or_crash_async(c: Any, batch: merge.Batch, *, advance: bool) -> None:
        await write_batch_async(c, batch, advance=advance)
        if CRASHING_TALK in batch.talks:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(postgres, "_write_batch", write_or_crash_async)


@pytest.mark.usefixtures("crash_on_talk")
async def test_a_batch_failing_midway_leaves_the_previous_state_whole(
    store: TalkStore,
) -> None:
    first = delivery(tagged_snapshot(TALK, [11, 12], "first", event_ids=(71,)))
    await store.ingest([first])
    before = await talk_state(store, TALK)
    advancing = tagged_snapshot(TALK, [11, 12, 13], "second", finished=True, event_ids=(72,))
    advancing["customer"]["name"] = "CHANGED"
    new_talk = snapshot(114798, [31])
    crashing = snapshot(CRASHING_TALK, [41])

    with pytest.raises(RuntimeError, match="simulated crash"):
        await store.ingest([delivery(advancing), delivery([new_talk, crashing])])

    assert await talk_state(store, TALK) == before
    assert await store.count_messages([TALK, 114798, CRASHING_TALK]) == {
        TALK: 2,
        114798: 0,
        CRASHING_TALK: 0,
    }
    assert await store.talks_by_id([114798, CRASHING_TALK]) == {}
    assert await store.raw_deliveries(talk_id=TALK) == [first.body]
    assert await store.raw_deliveries(talk_id=114798) == []


@pytest.mark.usefixtures("crash_on_talk")
async def test_the_store_accepts_deliveries_after_a_failed_batch(store: TalkStore) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        await store.ingest([delivery(snapshot(CRASHING_TALK, [41]))])

    [outcome] = await deliver(store, snapshot(TALK, [11]))

    assert outcome.changed_ids == [TALK]
    assert list(await store.talks_by_id([TALK])) == [TALK]


# -- text PostgreSQL cannot hold as such -------------------------------------------------------


async def test_text_holding_nul_characters_is_kept_whole_and_found(store: TalkStore) -> None:
    payload = talk(
        TALK,
        tracking_number="TN\x00X",
        talk_histories=[message(901, "antes\x00depois fatura", talk_id=TALK)],
    )
    payload["customer"].update(name="ANA\x00BEL", external_id="EXT\x00")
    sent = delivery(payload)

    await store.ingest([sent])

    state = await talk_state(store, TALK)
    assert state.messages[901]["message"] == "antes\x00depois fatura"
    assert state.customer == normalized(payload).customer
    assert await talk_ids(store, TalkQuery(text="depois fatura")) == [TALK]
    assert await talk_ids(store, TalkQuery(tracking_number="TN\x00X")) == [TALK]
    assert await talk_ids(store, TalkQuery(tracking_number="TN")) == []
    found = await store.talk_by_tracking_number("TN\x00X")
    assert found is not None
    assert found["id"] == TALK
    assert await customer_ids(store, "ana") == [CUSTOMER]
    assert await customer_ids(store, "EXT\x00") == [CUSTOMER]
    assert await store.raw_deliveries(talk_id=TALK) == [sent.body]


# -- reopening ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reopening_the_same_store_keeps_the_data(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = await empty_store_url(backend, tmp_path, request)
    first = open_store(url)
    await first.open()
    await deliver(first, tagged_snapshot(TALK, [11, 12], "kept", event_ids=(71,)))
    before = await talk_state(first, TALK)
    await first.close()

    second = open_store(url)
    await second.open()
    try:
        assert await talk_state(second, TALK) == before
        assert await talk_ids(second, TalkQuery(text="kept")) == [TALK]
    finally:
        await second.close()


async def test_reopening_leaves_the_sqlite_schema_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    for _ in range(3):
        opened = SQLiteStore(f"sqlite:///{path}")
        await opened.open()
        await opened.close()

    with sqlite3.connect(path) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        (journal,) = connection.execute("PRAGMA journal_mode").fetchone()
    connection.close()
    assert version == len(MIGRATIONS)
    assert journal == "wal"


async def test_a_store_of_an_earlier_schema_keeps_its_talks_and_pages_from_the_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "earlier.db"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await deliver(store, tagged_snapshot(TALK, [11, 12], "kept", event_ids=(71,)))
    before = await talk_state(store, TALK)
    await store.close()
    # Back to the schema before the page's index held versions and customers (and before
    # every migration after that one: the delivery_talks index by seq).
    step = next(n for n, m in enumerate(MIGRATIONS) if m.summary.startswith("talks_created"))
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "DROP INDEX talks_created; CREATE INDEX talks_created ON talks (created_us, id);"
            f" DROP INDEX delivery_talks_seq; PRAGMA user_version = {step};"
        )
    connection.close()

    again = SQLiteStore(f"sqlite:///{path}")
    await again.open()
    try:
        assert await talk_state(again, TALK) == before
    finally:
        await again.close()
    with sqlite3.connect(path) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        columns = [row[2] for row in connection.execute("PRAGMA index_info(talks_created)")]
        plan = " ".join(
            str(row[3])
            for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT created_us, id, version, customer_id FROM talks"
                " WHERE (created_us, id) < (?, ?) ORDER BY created_us DESC, id DESC LIMIT 101",
                (1 << 60, 1 << 60),
            )
        )
    connection.close()
    assert version == len(MIGRATIONS)
    assert columns == ["created_us", "id", "version", "customer_id"]
    assert "COVERING INDEX talks_created" in plan


def test_stores_opening_one_new_sqlite_file_at_once_all_migrate_it(tmp_path: Path) -> None:
    """`serve --workers N` opens a new file from N processes at once."""
    path = tmp_path / "raced.db"
    openers = 6
    for attempt in range(5):
        url = f"sqlite:///{path.with_name(f'raced-{attempt}.db')}"
        start = threading.Barrier(openers)

        def open_and_close(url: str = url, start: threading.Barrier = start) -> None:
            async def run() -> None:
                store = SQLiteStore(url)
                start.wait()
                await store.open()
                await store.close()

            asyncio.run(run())

        with ThreadPoolExecutor(openers) as pool:
            for opened in [pool.submit(open_and_close) for _ in range(openers)]:
                opened.result()
