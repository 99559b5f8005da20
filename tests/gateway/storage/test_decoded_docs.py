"""Decoded documents are reused only while a row's stored text (or version) is the same.

The cache on its own (gateway/storage/docs.py), then on each backend through the store's
reads: an unchanged row comes back as the very same dict, a changed one with its new
content, and the objects built from documents follow them (schema/building.py). Both stores read
talks and customers by version: every change of their documents must move it, and a commit
landing between a read's two statements must not mix two states of the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest

from gateway.storage import TalkStore
from gateway.storage.docs import DecodedDocs
from gateway.storage.postgres import PostgresStore
from gateway.storage.records import PageRequest, StoreOrder, TalkQuery
from gateway.storage.sqlite import SQLiteStore
from schema.types import customer_from_doc, talk_from_doc
from tests.backends import opened_store
from tests.factories import snapshot
from tests.gateway.storage.support import delivery, scattered_snapshots, tagged_snapshot

TALK = 114800


def text(**fields: object) -> str:
    return orjson.dumps(fields).decode()


def test_the_same_text_gives_the_same_document() -> None:
    docs = DecodedDocs(1 << 20)
    first = docs.decode("talks", 1, text(id=1, status="open"))
    again = docs.decode("talks", 1, text(id=1, status="open"))
    assert again is first
    assert (docs.hits, docs.misses) == (1, 1)


def test_changed_text_is_decoded_again_and_replaces_the_old_document() -> None:
    docs = DecodedDocs(1 << 20)
    old = docs.decode("talks", 1, text(id=1, status="open"))
    new = docs.decode("talks", 1, text(id=1, status="closed"))
    assert new == {"id": 1, "status": "closed"}
    assert old == {"id": 1, "status": "open"}  # a caller holding the old one keeps it
    assert docs.decode("talks", 1, text(id=1, status="closed")) is new


def test_rows_of_other_tables_do_not_share_entries() -> None:
    docs = DecodedDocs(1 << 20)
    talk = docs.decode("talks", 7, text(id=7))
    customer = docs.decode("customers", 7, text(id=7))
    assert customer is not talk
    assert docs.decode("talks", 7, text(id=7)) is talk


def test_a_document_stamped_with_a_version_is_reused_only_at_that_version() -> None:
    docs = DecodedDocs(1 << 20)
    assert docs.cached("talks", 1, 3) is None
    first = docs.decode("talks", 1, text(id=1, status="open"), 3)
    assert docs.cached("talks", 1, 3) is first
    assert docs.cached("talks", 1, 4) is None
    assert docs.cached("customers", 1, 3) is None
    newer = docs.decode("talks", 1, text(id=1, status="closed"), 4)
    assert docs.cached("talks", 1, 4) is newer
    assert docs.cached("talks", 1, 3) is None
    assert (docs.hits, docs.misses) == (2, 2)


def test_many_rows_are_looked_up_at_once_by_version() -> None:
    docs = DecodedDocs(1 << 20)
    one = docs.decode("talks", 1, text(id=1), 3)
    two = docs.decode("talks", 2, text(id=2), 5)
    held, missing = docs.cached_many("talks", [(1, 3), (2, 6), (4, 1)])
    assert held == {1: one}
    assert held[1] is one
    assert missing == {2: 6, 4: 1}  # at another version, and never decoded
    assert docs.cached_many("customers", [(1, 3)]) == ({}, {1: 3})
    assert docs.cached_many("talks", [(2, 5)])[0][2] is two
    assert (docs.hits, docs.misses) == (2, 2)


def test_rows_found_by_a_lookup_of_many_become_the_most_recently_used() -> None:
    one = text(id=1, pad="x" * 80)
    docs = DecodedDocs(len(one) * 4 * 2)  # room for two entries
    a = docs.decode("talks", 1, one, 1)
    docs.decode("talks", 2, text(id=2, pad="y" * 80), 1)
    assert docs.cached_many("talks", [(1, 1)])[0] == {1: a}
    docs.decode("talks", 3, text(id=3, pad="z" * 80), 1)  # over budget: 2 goes, not 1
    assert docs.cached("talks", 1, 1) is a
    assert docs.cached("talks", 2, 1) is None


def test_the_least_recently_used_go_first_when_over_budget() -> None:
    one = text(id=1, pad="x" * 80)
    size = len(one) * 4  # what an entry counts for
    docs = DecodedDocs(size * 2)
    a = docs.decode("talks", 1, one)
    b = docs.decode("talks", 2, text(id=2, pad="y" * 80))
    assert docs.decode("talks", 1, one) is a  # 1 is now the most recently used
    docs.decode("talks", 3, text(id=3, pad="z" * 80))  # over budget: 2 goes
    assert docs.decode("talks", 1, one) is a
    assert docs.decode("talks", 2, text(id=2, pad="y" * 80)) is not b


def test_a_budget_of_zero_keeps_nothing_and_a_huge_row_is_not_kept() -> None:
    off = DecodedDocs(0)
    assert off.decode("talks", 1, text(id=1)) is not off.decode("talks", 1, text(id=1))
    small = DecodedDocs(64)
    huge = text(id=1, pad="x" * 200)
    assert small.decode("talks", 1, huge) is not small.decode("talks", 1, huge)
    assert small.decode("talks", 1, huge) == orjson.loads(huge)


def test_reader_threads_get_correct_documents() -> None:
    docs = DecodedDocs(4096)  # small: entries come and go while threads read

    def read(worker: int) -> bool:
        ok = True
        for i in range(2_000):
            row = (i * 7 + worker) % 40
            version = i % 3
            got = docs.decode("talks", row, text(id=row, version=version))
            ok = ok and got == {"id": row, "version": version}
        return ok

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(read, range(4)))


# -- through the stores -------------------------------------------------------------------


async def page_of_talks(store: TalkStore) -> list[dict[str, object]]:
    pages = await store.talk_pages(
        query=TalkQuery(), page=PageRequest(first=10), order=StoreOrder.ID_ASC
    )
    return [doc for _, doc in pages[None].items]


async def test_an_unchanged_row_is_read_as_the_same_document(store: TalkStore) -> None:
    await store.ingest([delivery(snapshot(TALK, [1, 2]))])
    await store.ingest([delivery(snapshot(TALK + 1, [3]))])
    first = await page_of_talks(store)
    again = await page_of_talks(store)
    assert [a is b for a, b in zip(first, again, strict=True)] == [True, True]
    customer_id = int(str(first[0]["customer_id"]))
    customers = [(await store.customers_by_id([customer_id]))[customer_id] for _ in range(2)]
    assert customers[0] is customers[1]
    # and so is the object built from it, while a changed document gets a new one
    assert talk_from_doc(first[0]) is talk_from_doc(again[0])
    assert customer_from_doc(customers[0]) is customer_from_doc(customers[1])


async def test_a_row_changed_by_a_delivery_is_read_with_its_new_content(
    store: TalkStore,
) -> None:
    await store.ingest([delivery(snapshot(TALK, [1, 2]))])
    before = (await page_of_talks(store))[0]
    messages_before = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=10))
    await store.ingest([delivery(snapshot(TALK, [1, 2, 3], finished=True))])
    after = (await page_of_talks(store))[0]
    assert after is not before
    assert before["finished_at"] is None
    assert after["finished_at"] is not None
    assert talk_from_doc(after) is not talk_from_doc(before)
    assert talk_from_doc(after).finished_at is not None
    messages = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=10))
    assert [m["id"] for _, m in messages_before[TALK].items] == [1, 2]
    assert [m["id"] for _, m in messages[TALK].items] == [1, 2, 3]


# -- documents read by version -------------------------------------------------------------------


async def _rows(
    store: TalkStore, table: str, column: str = "version"
) -> dict[int, tuple[int, str]]:
    """Every row of `table` as (`column`, document text), read past the store's cache."""
    sql = f"SELECT id, {column}, doc FROM {table}"  # noqa: S608
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store._path)) as c:
            return {i: (v, d) for i, v, d in c.execute(sql)}
    assert isinstance(store, PostgresStore)
    return {i: (v, d) for i, v, d in await store._fetch(sql)}


@pytest.mark.parametrize("seed", [3, 11])
async def test_every_change_of_a_talk_or_customer_document_moves_its_version(
    store: TalkStore, seed: int
) -> None:
    # What reading by version rests on: a row whose document changed has a new version.
    seen: dict[tuple[str, int], tuple[int, str]] = {}
    changes = 0
    snapshots = scattered_snapshots(TALK, 30, seed=seed)
    for payload in [*snapshots, *snapshots[:5]]:  # redeliveries at the end
        await store.ingest([delivery(payload)])
        for table in ("talks", "customers"):
            for row_id, (version, doc) in (await _rows(store, table)).items():
                before = seen.get((table, row_id))
                if before is not None and before[1] != doc:
                    assert version > before[0], (table, row_id)
                    changes += 1
                seen[table, row_id] = (version, doc)
    assert changes > 5  # the snapshots did change both documents along the way


def _sqlite_commit(path: str, talk_id: int) -> None:
    """Another writer's commit: the talk's document gets a note, and its version moves."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute(
            "UPDATE talks SET version = version + 1,"
            " doc = json_set(doc, '$.status_note', 'moved') WHERE id = ?",
            (talk_id,),
        )


async def _postgres_commit(url: str, talk_id: int) -> None:
    """The same commit, on PostgreSQL."""
    other = await asyncpg.connect(url)
    try:
        await other.execute(
            "UPDATE talks SET version = version + 1,"
            " doc = jsonb_set(doc::jsonb, '{status_note}', to_jsonb('moved'::text))::json"
            " WHERE id = $1",
            talk_id,
        )
    finally:
        await other.close()


async def test_a_commit_between_a_read_s_two_statements_is_read_again_as_one_state(
    store: TalkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.ingest([delivery(snapshot(TALK, [1, 2]))])
    calls: list[list[tuple[int, int]]] = []

    def first_read_of_talks(table: str, stamps: list[tuple[int, int]]) -> bool:
        """Whether this is the first read of talks' documents: then another writer commits
        after the page's ids and versions were read, before their documents are."""
        if table != "talks":
            return False
        calls.append(list(stamps))
        return len(calls) == 1

    if isinstance(store, SQLiteStore):
        sqlite_docs = SQLiteStore._versioned_docs

        def sqlite_in_between(
            self: SQLiteStore, c: sqlite3.Connection, table: str, stamps: list[tuple[int, int]]
        ) -> dict[int, dict[str, object]] | None:
            if first_read_of_talks(table, stamps):
                _sqlite_commit(self._path, TALK)
            return sqlite_docs(self, c, table, stamps)

        monkeypatch.setattr(SQLiteStore, "_versioned_docs", sqlite_in_between)
    else:
        assert isinstance(store, PostgresStore)
        postgres_docs = PostgresStore._versioned_docs

        async def postgres_in_between(
            self: PostgresStore, c: object, table: str, stamps: list[tuple[int, int]]
        ) -> dict[int, dict[str, object]] | None:
            if first_read_of_talks(table, stamps):
                await _postgres_commit(self._url, TALK)
            return await postgres_docs(self, c, table, stamps)

        monkeypatch.setattr(PostgresStore, "_versioned_docs", postgres_in_between)

    [doc] = await page_of_talks(store)
    assert doc["status_note"] == "moved"
    # read twice: the second time as one state (one transaction), at the version committed
    assert [[v for _, v in stamps] for stamps in calls] == [[1], [2]]


# -- messages and events, read by arrival on SQLite --------------------------------------------


@pytest.mark.parametrize("seed", [3, 11])
async def test_a_message_or_event_row_holds_one_document_per_arrival(
    store: TalkStore, seed: int
) -> None:
    # What SQLite's reads of messages and events by `rank_arrival` rest on: seen at the same
    # arrival, a row always has the same document; its document changes only with it.
    held: dict[tuple[str, int, int], str] = {}
    last: dict[tuple[str, int], str] = {}
    changes = {"messages": 0, "events": 0}
    snapshots = scattered_snapshots(TALK, 30, seed=seed)
    for n, payload in enumerate(snapshots):
        for event in payload["talk_events"]:
            event["reaction_type_description"] = f"from s{n}"
    for payload in [*snapshots, *snapshots[:5]]:  # redeliveries at the end
        await store.ingest([delivery(payload)])
        for table in ("messages", "events"):
            for row_id, (arrival, doc) in (await _rows(store, table, "rank_arrival")).items():
                assert held.setdefault((table, row_id, arrival), doc) == doc, (table, row_id)
                changes[table] += last.get((table, row_id), doc) != doc
                last[table, row_id] = doc
    # the snapshots did change both kinds of documents along the way
    assert min(changes.values()) > 5, changes


@pytest.fixture
async def sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[TalkStore]:
    async with opened_store("sqlite", tmp_path, request) as opened:
        yield opened


async def _messages_and_events(store: TalkStore) -> tuple[list[dict[str, object]], ...]:
    pages = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=10))
    events = await store.events_by_talk([TALK])
    return [doc for _, doc in pages[TALK].items], events[TALK]


async def test_sqlite_reads_unchanged_messages_and_events_from_the_cache(
    sqlite_store: TalkStore,
) -> None:
    store = sqlite_store
    assert isinstance(store, SQLiteStore)
    first = tagged_snapshot(TALK, [1, 2], "a", event_ids=(7,))
    await store.ingest([delivery(first)])
    messages, events = await _messages_and_events(store)
    hits = store.docs.hits
    again, events_again = await _messages_and_events(store)
    assert [a is b for a, b in zip(messages, again, strict=True)] == [True, True]
    assert events_again[0] is events[0]
    assert store.docs.hits == hits + 3  # and no document text read
    # A winning snapshot rewrites both messages and the event; message 3 is new.
    await store.ingest([delivery(tagged_snapshot(TALK, [1, 2, 3], "b", event_ids=(7,)))])
    later, events_later = await _messages_and_events(store)
    assert [m["message"] for m in later] == [f"message {i} from b" for i in (1, 2, 3)]
    assert events_later == events_again  # the event's document did not change...
    assert events_later[0] is not events_again[0]  # ...but its rank did: read again
    # A losing snapshot (an older latest message) changes nothing: still the same dicts.
    await store.ingest([delivery(tagged_snapshot(TALK, [1], "c", event_ids=(7,)))])
    last, events_last = await _messages_and_events(store)
    assert [a is b for a, b in zip(later, last, strict=True)] == [True, True, True]
    assert events_last[0] is events_later[0]


async def test_sqlite_reads_message_text_in_chunks_of_bound_variables(
    sqlite_store: TalkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sqlite_store.ingest([delivery(snapshot(TALK, [1, 2, 3, 4, 5]))])
    monkeypatch.setattr("gateway.storage.sqlite._VARIABLES", 2)
    pages = await sqlite_store.message_pages(talk_ids=[TALK], page=PageRequest(first=4))
    assert [m["id"] for _, m in pages[TALK].items] == [1, 2, 3, 4]
    assert pages[TALK].has_next


async def test_sqlite_reads_messages_again_as_one_state_when_a_commit_comes_between(
    sqlite_store: TalkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    assert isinstance(store, SQLiteStore)
    await store.ingest([delivery(snapshot(TALK, [1, 2]))])
    calls: list[list[tuple[int, int]]] = []
    versioned_docs = SQLiteStore._versioned_docs

    def in_between(
        self: SQLiteStore, c: sqlite3.Connection, table: str, stamps: list[tuple[int, int]]
    ) -> dict[int, dict[str, object]] | None:
        if table == "messages":
            calls.append(list(stamps))
            if len(calls) == 1:  # another writer commits after the stamps were read
                with closing(sqlite3.connect(self._path, isolation_level=None)) as other:
                    other.execute(
                        "UPDATE messages SET rank_arrival = rank_arrival + 1,"
                        " doc = json_set(doc, '$.message', 'moved') WHERE id = 2"
                    )
        return versioned_docs(self, c, table, stamps)

    monkeypatch.setattr(SQLiteStore, "_versioned_docs", in_between)
    pages = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=10))
    assert [m["message"] for _, m in pages[TALK].items][1] == "moved"
    # read twice: the second time as one state, at the arrival committed
    [(_, one), (_, two)], [(_, one_again), (_, moved)] = calls
    assert (one_again, moved) == (one, two + 1)
