"""What only PostgreSQL has to prove: replicas at once (migrating, merging), its columns and
indexes, and answers a client cannot tell from SQLite's. The shared suite is the rest of
tests/gateway/storage/."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from gateway.http.app import create_app
from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.ingestor import Body, Ingestor
from gateway.settings import Settings
from gateway.storage import StoreUnavailable, TalkStore, merge, open_store, postgres
from gateway.storage.postgres import PostgresStore
from gateway.storage.postgres_schema import MIGRATIONS
from gateway.storage.records import Delivery, DeliveryOutcome, PageRequest, StoreOrder, TalkQuery
from gateway.storage.sqlite import SQLiteStore
from tests.backends import (
    POSTGRES_URL,
    create_database,
    drop_database,
    empty_store_url,
    opened_store,
    with_database,
)
from tests.factories import Payload, message, talk
from tests.gateway.storage.support import (
    delivery,
    normalized,
    scattered_snapshots,
    tagged_snapshot,
    talk_state,
)
from tests.support import ALL_KEY, gql, make_settings, push

TALK = 114700


@pytest.fixture
async def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty schema of its own in the session's database."""
    return await empty_store_url("postgres", tmp_path, request)


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, each with its own pool: two replicas of the gateway."""
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'reference.db'}")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def sequentially(store: TalkStore, deliveries: list[Delivery]) -> list[DeliveryOutcome]:
    outcomes: list[DeliveryOutcome] = []
    for one in deliveries:
        outcomes += await store.ingest([one])
    return outcomes


async def concurrently(
    replicas: tuple[PostgresStore, PostgresStore], deliveries: list[Delivery]
) -> list[DeliveryOutcome]:
    """Every delivery at once, alternating between the replicas."""
    results = await asyncio.gather(
        *(replicas[n % 2].ingest([one]) for n, one in enumerate(deliveries))
    )
    return [outcome for outcomes in results for outcome in outcomes]


# -- selected by URL ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql://db.example/talkgate", "postgres://db.example/tg"])
def test_a_postgresql_url_selects_the_postgresql_store(url: str) -> None:
    assert Settings(_env_file=None, database_url=url).database_url == url
    assert isinstance(open_store(url), PostgresStore)


def test_the_store_does_not_show_its_url_password() -> None:
    store = PostgresStore("postgresql://talkgate:s3cret-pw@db.example/talkgate")

    assert "s3cret-pw" not in repr(store)


# -- unavailable ----------------------------------------------------------------------------


async def test_a_store_that_cannot_connect_is_unavailable() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=2)

    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.talks_by_id([TALK])


async def test_a_database_that_does_not_exist_is_unavailable(postgres_database: str) -> None:
    store = PostgresStore(with_database(postgres_database, "talkgate_no_such_database"))

    with pytest.raises(StoreUnavailable, match="does not exist"):
        await store.open()


async def test_connections_the_server_dropped_are_replaced(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()

        # The first call may still meet a dead connection: StoreUnavailable, nothing else.
        with contextlib.suppress(StoreUnavailable):
            await store.ping()
        await store.ping()
        assert await store.talks_by_id([TALK]) == {}
    finally:
        await store.close()


async def test_a_connection_given_back_costs_no_reset_query_and_keeps_no_transaction(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg's default reset is a round trip of its own (pg_advisory_unlock_all, CLOSE ALL,
    # UNLISTEN *, RESET ALL) after every store call; the store sets nothing it would undo.
    reset_queries: list[str] = []
    execute = asyncpg.connection.Connection.execute

    async def recorded(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if "UNLISTEN" in query or "RESET ALL" in query:
            reset_queries.append(query)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", recorded)
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.ingest([delivery(talk(TALK))])
        assert list(await store.talks_by_id([TALK])) == [TALK]
        # A transaction left open (no `async with c.transaction()`) is still rolled back.
        async with store._connection() as c:
            await c.execute("BEGIN")
            await c.execute("UPDATE store_generation SET generation = generation + 100")
        generations = set()
        for _ in range(3):  # whichever pooled connection comes next
            async with store._connection() as c:
                assert not c.is_in_transaction()
                generations.add(await c.fetchval("SELECT generation FROM store_generation"))
        [generation] = generations
        assert generation < 100
    finally:
        await store.close()
    assert reset_queries == []


# -- deadlocks ----------------------------------------------------------------------------------


async def test_a_delivery_rolled_back_to_break_a_deadlock_is_stored_by_a_new_attempt(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []
    ingest = PostgresStore._ingest

    async def chosen_as_the_victim_once(
        self: PostgresStore, c: Any, deliveries: Sequence[Delivery]
    ) -> list[DeliveryOutcome]:
        attempts.append(len(attempts) + 1)
        outcomes = await ingest(self, c, deliveries)
        if len(attempts) == 1:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return outcomes

    monkeypatch.setattr(PostgresStore, "_ingest", chosen_as_the_victim_once)
    sent = delivery(talk(TALK))
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        [outcome] = await store.ingest([sent])

        assert attempts == [1, 2]
        assert (outcome.duplicate, outcome.changed_ids) == (False, [TALK])
        assert await store.raw_deliveries(talk_id=TALK) == [sent.body]
    finally:
        await store.close()


async def test_a_delivery_that_keeps_deadlocking_is_unavailable(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_the_victim(
        self: PostgresStore, c: Any, deliveries: Sequence[Delivery]
    ) -> list[DeliveryOutcome]:
        raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(PostgresStore, "_ingest", always_the_victim)
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        with pytest.raises(StoreUnavailable, match="deadlock"):
            await store.ingest([delivery(talk(TALK))])
        assert await store.talks_by_id([TALK]) == {}
    finally:
        await store.close()


# -- migrations ---------------------------------------------------------------------------------


@pytest.fixture
async def empty_database(postgres_database: str) -> AsyncIterator[str]:
    """A database of its own, with nothing in it."""
    name = await create_database(POSTGRES_URL)
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        await drop_database(POSTGRES_URL, name)


async def schema_versions(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT version FROM talkgate_schema_version ORDER BY 1")
    finally:
        await connection.close()
    return [r[0] for r in rows]


async def test_replicas_starting_at_once_migrate_an_empty_database_once(
    empty_database: str,
) -> None:
    stores = [PostgresStore(empty_database) for _ in range(5)]

    await asyncio.gather(*(store.open() for store in stores))

    try:
        assert await schema_versions(empty_database) == list(range(1, len(MIGRATIONS) + 1))
        await stores[0].ingest([delivery(talk(TALK))])
        assert list(await stores[4].talks_by_id([TALK])) == [TALK]
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_opening_a_migrated_database_again_changes_nothing(empty_database: str) -> None:
    for _ in range(3):
        store = PostgresStore(empty_database)
        await store.open()
        await store.close()

    assert await schema_versions(empty_database) == list(range(1, len(MIGRATIONS) + 1))


@contextlib.asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Any]:
    """A connection to the schema of `url`, once a store has opened (migrated) it."""
    store = PostgresStore(url)
    await store.open()
    await store.close()
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_the_tables_have_the_indexes_of_sqlite_and_search_has_a_gin_index(
    postgres_url: str, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    async with migrated(postgres_url) as connection:
        rows = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
    with sqlite3.connect(tmp_path / "reference.db") as reference:
        sqlite_indexes = {
            name
            for (name,) in reference.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND name NOT LIKE 'sqlite_autoindex%'"
            )
        }
    reference.close()
    postgres_indexes = {r["indexname"]: r["indexdef"] for r in rows}

    assert sqlite_indexes <= set(postgres_indexes)
    assert "USING gin (search)" in postgres_indexes["messages_search"]


async def test_raw_bodies_are_compressed_with_lz4_where_the_server_has_it(
    postgres_url: str,
) -> None:
    async with migrated(postgres_url) as connection:
        try:
            async with connection.transaction():
                await connection.execute("CREATE TEMP TABLE probe (b bytea COMPRESSION lz4)")
            has_lz4 = True
        except asyncpg.exceptions.FeatureNotSupportedError:
            has_lz4 = False
        rows = await connection.fetch(
            "SELECT attname, attcompression::text FROM pg_attribute"
            " WHERE attrelid = 'deliveries'::regclass AND attname IN ('body', 'body_json')"
        )

    # "" is the server's default, pglz.
    assert {r["attname"]: r["attcompression"] for r in rows} == dict.fromkeys(
        ("body", "body_json"), "l" if has_lz4 else ""
    )


# -- replicas merging at once -------------------------------------------------------------------


async def test_fifty_snapshots_through_two_replicas_at_once_lose_no_message(
    replicas: tuple[PostgresStore, PostgresStore], sqlite_store: SQLiteStore
) -> None:
    snapshots = scattered_snapshots(TALK, 50, seed=7)
    deliveries = [delivery(s) for s in snapshots]

    outcomes = await concurrently(replicas, deliveries)

    state = await talk_state(replicas[0], TALK)
    normalized_all = [normalized(s) for s in snapshots]
    assert set(state.messages) == {m["id"] for t in normalized_all for m in t.messages}
    assert state.doc == normalized_all[17].doc
    assert all(o.changed_ids == [TALK] for o in outcomes)
    await sequentially(sqlite_store, deliveries)
    assert state == await talk_state(sqlite_store, TALK)
    assert await talk_state(replicas[1], TALK) == state


async def test_bodies_of_several_talks_through_two_replicas_at_once_merge_like_sqlite(
    replicas: tuple[PostgresStore, PostgresStore], sqlite_store: SQLiteStore
) -> None:
    # Six talks, 30 bodies of three talks each, in random order: the replicas lock talks
    # in many overlapping sets at once, and share the customer and the bot agent.
    talk_ids = [TALK + n for n in range(6)]
    pending = {
        t: scattered_snapshots(t, 15, seed=t, base=(t - TALK) * 1000)[::-1] for t in talk_ids
    }
    rng = random.Random(11)
    bodies: list[list[Payload]] = []
    for _ in range(15):
        shuffled = rng.sample(talk_ids, len(talk_ids))
        bodies += [
            [pending[t].pop() for t in shuffled[:3]],
            [pending[t].pop() for t in shuffled[3:]],
        ]
    rng.shuffle(bodies)
    deliveries = [delivery(body) for body in bodies]

    await concurrently(replicas, deliveries)
    await sequentially(sqlite_store, deliveries)

    for talk_id in talk_ids:
        merged, reference = (
            await talk_state(replicas[0], talk_id),
            await talk_state(sqlite_store, talk_id),
        )
        # Which talk's winner wrote the shared customer and agent last depends on timing.
        assert (merged.doc, merged.messages, merged.events) == (
            reference.doc,
            reference.messages,
            reference.events,
        )


def _with_customer(payload: Payload, customer_id: int) -> Payload:
    payload["customer_id"] = customer_id
    payload["customer"]["id"] = customer_id
    return payload


@pytest.mark.parametrize(
    ("finished", "kept"),
    [(False, "CLIENTE other"), (True, "CLIENTE late")],
    ids=["losing-fills-only", "winning-replaces"],
)
async def test_a_customer_another_replica_stores_meanwhile_is_settled_as_if_stored_first(
    replicas: tuple[PostgresStore, PostgresStore],
    monkeypatch: pytest.MonkeyPatch,
    finished: bool,
    kept: str,
) -> None:
    first, second = replicas
    # TALK is stored with customer 501, at rank (unfinished, message 12).
    await first.ingest([delivery(_with_customer(tagged_snapshot(TALK, [11, 12], "early"), 501))])
    # The late snapshot names customer 502, not stored yet: it loses unless finished.
    late = _with_customer(tagged_snapshot(TALK, [11], "late", finished=finished), 502)
    other = _with_customer(tagged_snapshot(TALK + 1, [21], "other"), 502)
    write_batch = postgres._write_batch

    async def once_the_other_replica_committed(
        c: Any, batch: merge.Batch, *, advance: bool
    ) -> None:
        # The late snapshot's batch read customer 502 as missing; now another replica
        # stores it, for another talk (no lock in common), before this batch writes.
        if TALK in batch.talks:
            await second.ingest([delivery(other)])
        await write_batch(c, batch, advance=advance)

    monkeypatch.setattr(postgres, "_write_batch", once_the_other_replica_committed)
    await first.ingest([delivery(late)])

    # As if the other replica's delivery had come first: only a winner replaces it.
    assert (await first.customers_by_id([502]))[502]["name"] == kept


# -- the same answers as SQLite -----------------------------------------------------------------


def varied_talks() -> list[Payload]:
    start = datetime(2025, 9, 1, 12, 0, 0, 123456, tzinfo=UTC)
    payloads = []
    for n in range(12):
        moment = start + timedelta(hours=n // 3 * 7 % 11, microseconds=n * 7)
        payload = talk(
            TALK + n,
            customer_id=900 + n % 4,
            agent_id=30 + n % 3,
            created_at=moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            talk_histories=[
                message((TALK + n) * 10 + i, f"linha {i} do atendimento {n}", talk_id=TALK + n)
                for i in range(n % 4 + 1)
            ],
        )
        payload["customer"].update(id=900 + n % 4, name=f"Cliente Número {n % 4}")
        payloads.append(payload)
    return payloads


@pytest.fixture
async def both(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[TalkStore, TalkStore]]:
    """A SQLite and a PostgreSQL store holding the same talks."""
    async with (
        opened_store("sqlite", tmp_path, request) as lite,
        opened_store("postgres", tmp_path, request) as postgres,
    ):
        for store in (lite, postgres):
            await store.ingest([delivery(varied_talks())])
        yield lite, postgres


@pytest.mark.parametrize("order", list(StoreOrder), ids=lambda o: o.value)
async def test_talk_pages_and_cursors_are_the_same_as_sqlite(
    both: tuple[TalkStore, TalkStore], order: StoreOrder
) -> None:
    async def walk(store: TalkStore) -> list[object]:
        seen: list[object] = []
        after: str | None = None
        while True:
            pages = await store.talk_pages(
                query=TalkQuery(), page=PageRequest(first=5, after=after), order=order
            )
            grouped = await store.talk_pages(
                query=TalkQuery(text="atendimento"),
                page=PageRequest(first=2, after=None),
                order=order,
                group="customer_id",
                group_ids=[903, 900, 999, 900],
            )
            seen += [pages[None].items, pages[None].has_next, grouped]
            if not pages[None].has_next:
                return seen
            after = pages[None].end_cursor

    lite, postgres = both
    assert await walk(postgres) == await walk(lite)


async def test_other_pages_and_counts_are_the_same_as_sqlite(
    both: tuple[TalkStore, TalkStore],
) -> None:
    async def answers(store: TalkStore) -> list[object]:
        messages = await store.message_pages(
            talk_ids=[TALK + 3, TALK + 7, TALK], page=PageRequest(first=2)
        )
        after = messages[TALK + 3].end_cursor
        return [
            messages,
            await store.message_pages(talk_ids=[TALK + 3], page=PageRequest(2, after)),
            await store.customer_page(search="numero", page=PageRequest(first=3)),
            await store.agent_page(page=PageRequest(first=3)),
            await store.count_talks(query=TalkQuery(text="linha 2")),
            await store.count_talks(
                query=TalkQuery(status="FINISHED"), group="agent_id", group_ids=[30, 31, 32]
            ),
            await store.count_customers(search="cliente"),
            await store.count_messages([TALK, TALK + 3]),
            await store.events_by_talk([TALK + 1]),
        ]

    lite, postgres = both
    assert await answers(postgres) == await answers(lite)


# -- search -------------------------------------------------------------------------------------


async def test_a_huge_message_is_kept_whole_and_its_words_found_up_to_the_index_limit(
    postgres_url: str,
) -> None:
    # 200,000 distinct words: over twice what one tsvector can hold.
    text = " ".join(f"palavra{n}" for n in range(200_000))
    payload = talk(TALK, talk_histories=[message(901, text, talk_id=TALK)])
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.ingest([delivery(payload)])

        state = await talk_state(store, TALK)
        found = await store.count_talks(query=TalkQuery(text="palavra7 palavra9000"))
    finally:
        await store.close()
    assert state.messages[901]["message"] == text
    assert found == {None: 1}


# -- the gateway on PostgreSQL -------------------------------------------------------------------

EVERYTHING = """
query Everything($after: String) {
  talks(filter: {text: "atendimento"}, first: 4, after: $after, orderBy: CREATED_AT_ASC) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id: databaseId trackingNumber status createdAt
        customer { id: databaseId name }
        agent { id: databaseId }
        histories(first: 2) { totalCount edges { cursor node { id: databaseId message } } }
        events { id: databaseId }
      }
    }
  }
  customers(search: "numero", first: 2) {
    totalCount
    edges { cursor node { id: databaseId name } }
  }
}
"""


async def gateway_answers(settings: Settings, after: str | None) -> dict[str, Any]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            accepted = await push(c, varied_talks())
            assert accepted.status_code == 202, accepted.text
            assert (await c.get("/readyz")).status_code == 200
            return await gql(c, EVERYTHING, {"after": after}, key=ALL_KEY)


@pytest.mark.parametrize("after", [None, "second-page"])
async def test_the_gateway_on_postgresql_answers_graphql_like_on_sqlite(
    postgres_url: str, tmp_path: Path, after: str | None
) -> None:
    lite = make_settings(tmp_path)
    if after is not None:
        first = await gateway_answers(lite, None)
        after = first["data"]["talks"]["pageInfo"]["endCursor"]
        lite = make_settings(tmp_path / "again")

    on_postgres = await gateway_answers(make_settings(tmp_path, database_url=postgres_url), after)
    on_sqlite = await gateway_answers(lite, after)

    assert "errors" not in on_postgres
    assert on_postgres["data"]["talks"]["edges"]
    assert on_postgres == on_sqlite


# -- raw bodies ---------------------------------------------------------------------------------


async def test_a_raw_body_is_kept_as_exact_bytes_and_as_jsonb(postgres_url: str) -> None:
    spaced = b'{  "weird" : true,\n' + orjson.dumps(talk(TALK))[1:]
    with_nul = delivery(talk(TALK + 1, talk_histories=[message(901, "a\x00b", talk_id=TALK + 1)]))
    assert b"\\u0000" in with_nul.body
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await Ingestor(store, DEFAULT_ZONE).ingest(Body(spaced, "webhook"))
        await store.ingest([with_nul])

        assert await store.raw_deliveries(talk_id=TALK) == [spaced]
        assert await store.raw_deliveries(talk_id=TALK + 1) == [with_nul.body]
        connection = await asyncpg.connect(postgres_url)
        try:
            rows = await connection.fetch(
                "SELECT body_json->>'weird', body_json->>'id', body_json IS NULL"
                " FROM deliveries ORDER BY seq"
            )
        finally:
            await connection.close()
    finally:
        await store.close()

    # jsonb cannot hold \u0000: that body is kept as bytes only.
    assert [tuple(r) for r in rows] == [("true", str(TALK), False), (None, None, True)]
