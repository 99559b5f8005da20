"""The shared store: PostgreSQL through an asyncpg pool, for several replicas at once.

Every `ingest()` is one transaction that first takes a transaction-scoped advisory lock
per talk it carries, in ascending key order: deliveries of the same talk reaching two
replicas at once merge one after the other, each reading the rank the other committed,
so no message is lost and `merge` applies exactly as in SQLite. Deliveries of different
talks do not wait for each other, except on a customer or agent document both change.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import orjson

from gateway.storage import cursor, merge
from gateway.storage.docs import DecodedDocs
from gateway.storage.documents import MAX_ERRORS, Doc, talk_status
from gateway.storage.migrations import SchemaState, newer_store, pending_migrations
from gateway.storage.postgres_schema import MIGRATIONS, schema_version
from gateway.storage.postgres_schema import migrate as migrate_schema
from gateway.storage.protocol import ReadsById, StoreUnavailable, TalkGroup
from gateway.storage.records import (
    ID_CONFLICT,
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    Page,
    PageRequest,
    Purged,
    Refusal,
    StoredDelivery,
    StoreOrder,
    TalkPages,
    TalkQuery,
    dead_letter_reason,
    refuse_repeats,
)
from gateway.storage.rounds import Rounds
from gateway.storage.text import bounded_search, query_words, search_key, tokens
from gateway.utc import now_iso

# Failures that say "not now" rather than "wrong": the caller may retry later.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # A pooled connection the server has just dropped can fail this way once; the pool
    # then replaces it.
    asyncpg.exceptions.InternalClientError,
)
# A transaction PostgreSQL rolled back to break a deadlock; running it again succeeds.
_RETRIED = (asyncpg.exceptions.TransactionRollbackError,)
_ATTEMPTS = 5


async def _nothing_to_reset(connection: Any) -> None:
    """The pool's reset of a connection given back: nothing beyond what asyncpg always does
    (roll back a transaction left open, drop listeners). The store takes only
    transaction-scoped advisory locks and sets, listens to and declares nothing outside a
    transaction, so asyncpg's default (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *,
    RESET ALL) would only add a round trip to every store call."""


# Tables whose rows carry a version that moves with every change of their document
# (`merge.Batch`): their documents are cached by version, and read only when not cached.
_VERSIONED = frozenset({"talks", "customers"})

T = TypeVar("T")

# First key of the two-key advisory locks taken per talk: "talk" in ASCII.
_TALK_LOCK = int.from_bytes(b"talk", "big")

# ORDER BY clause, keyset condition (placeholders filled in order), sort values in a cursor.
_TALK_ORDERS: dict[StoreOrder, tuple[str, str, int]] = {
    StoreOrder.CREATED_AT_DESC: ("created_us DESC, id DESC", "(created_us, id) < ({}, {})", 2),
    StoreOrder.CREATED_AT_ASC: ("created_us ASC, id ASC", "(created_us, id) > ({}, {})", 2),
    StoreOrder.ID_DESC: ("id DESC", "id < {}", 1),
    StoreOrder.ID_ASC: ("id ASC", "id > {}", 1),
}


def _micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1_000_000)


def _micros_of(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def _text(value: str | None) -> str | None:
    """`value` as PostgreSQL text can hold it: NUL, which text refuses, becomes U+FFFD.
    Applied to stored columns and to the values they are looked up by alike."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def _jsonb_holds(body: bytes) -> bool:
    """Whether jsonb can hold the body: UTF-8 without a \\u0000 escape, which jsonb refuses."""
    if b"\\u0000" in body:
        return False
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


# A tsvector holds at most 1 MiB; the words of this many bytes of text always fit.
_SEARCH_BYTES = 128 * 1024


def _search_text(message: str | None) -> str:
    """The words of a message to index, as to_tsvector input: only the first 128 KiB of
    them in a huge message, since a tsvector that does not fit would fail the delivery."""
    text = " ".join(tokens(message))
    if len(text) * 4 <= _SEARCH_BYTES:
        return text
    data = text.encode()
    if len(data) <= _SEARCH_BYTES:
        return text
    # Cut after the last whole word within the limit.
    head = data[: _SEARCH_BYTES + 1].decode(errors="ignore")
    return head[: max(head.rfind(" "), 0)]


def _lock_key(talk_id: int) -> int:
    """The talk's advisory lock key: its id folded into int4 (a clash only waits longer)."""
    return (talk_id + 2**31) % 2**32 - 2**31


class PostgresStore(ReadsById):
    """TalkStore on PostgreSQL; `url` is a postgresql:// (or postgres://) DSN."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        acquire_timeout: float = 10.0,
        doc_cache_bytes: int = 32 * 2**20,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("a PostgreSQL URL starts with postgresql:// or postgres://")
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._acquire_timeout = acquire_timeout
        self._pool: Any = None
        # Documents of talks, messages, events, customers, agents and channels as last read.
        self.docs = DecodedDocs(doc_cache_bytes)
        self._generations = Rounds(self._read_generation)

    def __repr__(self) -> str:
        # The URL may carry a password: never show it.
        return f"<PostgresStore {'open' if self._pool is not None else 'closed'}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout,
                reset=_nothing_to_reset,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
        try:
            async with pool.acquire(timeout=self._acquire_timeout) as connection:
                if migrate:
                    await migrate_schema(connection)
                else:
                    # Nothing is made or changed: a store not at this talkgate's schema is
                    # refused.
                    state = SchemaState.of(await schema_version(connection), MIGRATIONS)
                    if state.newer:
                        raise newer_store(state)
                    if state.pending:
                        raise pending_migrations(state)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _UNAVAILABLE):
                raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        async with self._connection() as c:
            await c.fetchval("SELECT 1")

    async def schema_state(self) -> SchemaState:
        if self._pool is not None:
            async with self._connection() as c:
                return SchemaState.of(await schema_version(c), MIGRATIONS)
        try:
            connection = await asyncpg.connect(self._url, timeout=self._connect_timeout)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
        try:
            return SchemaState.of(await schema_version(connection), MIGRATIONS)
        finally:
            await connection.close()

    async def generation(self) -> str:
        # Asked on every response cache hit: callers arriving together share one read, each
        # given one begun after it asked (gateway/storage/rounds.py).
        return await self._generations()

    async def _read_generation(self) -> str:
        async with self._connection() as c:
            row = await c.fetchrow("SELECT store_id, generation FROM store_generation")
        return f"{row[0]}.{row[1]}"

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is not open")
        try:
            async with pool.acquire(timeout=self._acquire_timeout) as connection:
                yield connection
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._connection() as c:
            rows: list[Any] = await c.fetch(sql, *args)
            return rows

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._connection() as c:
            return await c.fetchrow(sql, *args)

    async def _consistently(self, attempt: Callable[[Any], Awaitable[T | None]]) -> T:
        """What `attempt` reads in more than one statement, each with a snapshot of its own:
        None when a commit came between them. Then it runs again in one read-only
        REPEATABLE READ transaction, which sees one snapshot throughout; never first, for
        BEGIN and COMMIT cost two more round trips."""
        async with self._connection() as c:
            answer = await attempt(c)
            if answer is not None:
                return answer
            async with c.transaction(isolation="repeatable_read", readonly=True):
                answer = await attempt(c)
        if answer is None:
            raise AssertionError("a row moved within one snapshot")
        return answer

    async def _versioned_docs(
        self, c: Any, table: str, stamps: Sequence[tuple[int, int]]
    ) -> dict[int, Doc] | None:
        """The documents of `table`'s rows at the versions in `stamps` ((id, version) pairs
        just read): those the cache holds at that version, and the others' text read now.
        None when one of them moved to another version in between (see `_consistently`)."""
        docs, missing = self.docs.cached_many(table, stamps)
        if not missing:
            return docs
        rows = await c.fetch(
            f"SELECT id, version, doc FROM {table} WHERE id = ANY($1::bigint[])",  # noqa: S608
            list(missing),
        )
        return self.docs.read_at(table, docs, missing, rows)

    # -- writes ----------------------------------------------------------------------------

    async def ingest(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        attempt = 1
        while True:
            try:
                async with self._connection() as c, c.transaction():
                    return await self._ingest(c, deliveries)
            except _RETRIED as exc:
                if attempt == _ATTEMPTS:
                    raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
            await asyncio.sleep(0.01 * attempt)
            attempt += 1

    async def _ingest(self, c: Any, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        keys = sorted({_lock_key(t.id) for d in deliveries for t in d.talks})
        # unnest yields the sorted keys in order, so every ingest locks in the same order.
        await c.execute(
            "SELECT pg_advisory_xact_lock($1::int4, k) FROM unnest($2::int4[]) AS k",
            _TALK_LOCK,
            keys,
        )
        sequences = await _add_deliveries(c, deliveries)
        outcomes = [
            DeliveryOutcome(d.key, seq is None, [t.id for t in d.talks], [])
            for d, seq in zip(deliveries, sequences, strict=True)
        ]
        accepted = [
            (index, delivery, seq)
            for index, (delivery, seq) in enumerate(zip(deliveries, sequences, strict=True))
            if seq is not None
        ]
        if not accepted:
            return outcomes
        # As in SQLite: the whole batch is planned from one bulk read and written with a few
        # bulk statements, the snapshots merging in arrival order as if stored one at a time.
        # The talks' rows cannot move meanwhile (their locks are held); a customer, agent or
        # channel row another replica writes meanwhile is settled by each statement's own
        # conditions, as `merge` wants, though the batch may then count it as a change.
        batch = merge.Batch()
        await _load(c, batch, merge.wanted(t for _, d, _ in accepted for t in d.talks))
        refused: list[int] = []
        for index, delivery, sequence in accepted:
            errors, count = batch.id_conflicts(delivery.talks, MAX_ERRORS)
            if count:
                # Refused whole: its raw row goes, a dead letter holds the body instead.
                refused.append(sequence)
                reason = dead_letter_reason(ID_CONFLICT, len(errors), count)
                dead_letter_id = await _add_dead_letter(
                    c, delivery.source, reason, errors, delivery.body, len(delivery.body), False
                )
                outcome = outcomes[index]
                refusal = Refusal(ID_CONFLICT, errors, count, dead_letter_id)
                outcomes[index] = DeliveryOutcome(outcome.key, False, outcome.talk_ids, [], refusal)
                continue
            outcomes[index].changed_ids.extend(batch.merge_body(delivery.talks, sequence))
        refuse_repeats(deliveries, outcomes)
        if refused:
            await c.execute(
                "WITH dt AS (DELETE FROM delivery_talks WHERE seq = ANY($1::bigint[]))"
                " DELETE FROM deliveries WHERE seq = ANY($1::bigint[])",
                refused,
            )
        await _write_batch(c, batch, advance=any(o.changed_ids for o in outcomes))
        return outcomes

    async def add_dead_letter(
        self,
        *,
        source: str,
        reason: str,
        errors: list[dict[str, str]],
        body: bytes,
        body_size: int,
        truncated: bool = False,
        received_at: str | None = None,
    ) -> int:
        async with self._connection() as c:
            return await _add_dead_letter(
                c, source, reason, errors, body, body_size, truncated, received_at
            )

    # -- reads -----------------------------------------------------------------------------

    async def dead_letters(
        self, *, limit: int = 100, before_id: int | None = None, reason: str | None = None
    ) -> list[DeadLetter]:
        where, params = _dead_letter_filter(before_id, reason)
        rows = await self._fetch(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters{where}"  # noqa: S608
            f" ORDER BY id DESC LIMIT ${len(params) + 1}",
            *params,
            limit,
        )
        return [_dead_letter(r) for r in rows]

    async def count_dead_letters(self, *, reason: str | None = None) -> int:
        where, params = _dead_letter_filter(None, reason)
        rows = await self._fetch(f"SELECT count(*) FROM dead_letters{where}", *params)  # noqa: S608
        return int(rows[0][0])

    async def dead_letters_by_id(self, ids: Sequence[int]) -> list[DeadLetter]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = await self._fetch(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters"  # noqa: S608
            " WHERE id = ANY($1::bigint[])",
            wanted,
        )
        found = {r[0]: _dead_letter(r) for r in rows}
        return [found[i] for i in wanted if i in found]

    async def update_dead_letter(
        self, letter_id: int, *, reason: str, errors: list[dict[str, str]]
    ) -> None:
        async with self._connection() as c:
            await c.execute(
                "UPDATE dead_letters SET reason = $1, errors = $2 WHERE id = $3",
                reason,
                orjson.dumps(errors).decode(),
                letter_id,
            )

    async def remove_dead_letters(self, ids: Sequence[int]) -> int:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        async with self._connection() as c:
            done = await c.execute("DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", wanted)
        return int(done.split()[-1])

    async def raw_deliveries(self, *, talk_id: int) -> list[bytes]:
        rows = await self._fetch(
            "SELECT d.body FROM delivery_talks dt JOIN deliveries d ON d.seq = dt.seq"
            " WHERE dt.talk_id = $1 ORDER BY dt.seq",
            talk_id,
        )
        return [bytes(r[0]) for r in rows]

    async def purge(self, *, before: str, limit: int | None = 500, dry: bool = False) -> Purged:
        async with self._connection() as c:
            transaction = c.transaction()
            await transaction.start()
            try:
                purged = await _purge(c, before, None if dry else limit)
            except BaseException:
                await transaction.rollback()
                raise
            if dry:
                await transaction.rollback()
            else:
                await transaction.commit()
        return purged

    async def count_finished_before(self, before: str) -> int:
        rows = await self._fetch(
            f"SELECT count(*) FROM talks WHERE {_FINISHED_BEFORE}",  # noqa: S608 - fixed
            before,
        )
        return int(rows[0][0])

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL's own VACUUM reclaims what a purge removed."""

    async def stored_deliveries(
        self, *, after_seq: int = 0, limit: int = 500
    ) -> list[StoredDelivery]:
        rows = await self._fetch(
            "SELECT seq, key, source, body FROM deliveries WHERE seq > $1 ORDER BY seq LIMIT $2",
            after_seq,
            limit,
        )
        return [StoredDelivery(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    async def count_deliveries(self) -> int:
        rows = await self._fetch("SELECT count(*) FROM deliveries")
        return int(rows[0][0])

    async def agent_status_rows(self) -> list[tuple[str, str, str]]:
        rows = await self._fetch("SELECT login, status, changed_at FROM agent_status ORDER BY 1")
        return [(r[0], r[1], r[2]) for r in rows]

    async def login_rows(self, *, now: datetime) -> list[tuple[str, str, datetime]]:
        rows = await self._fetch(
            "SELECT digest, sealed, expires_us FROM login_tickets WHERE expires_us >= $1",
            _micros_of(now),
        )
        return [(r[0], r[1], datetime.fromtimestamp(r[2] / 1e6, UTC)) for r in rows]

    async def _docs_by_id(self, table: str, ids: Sequence[int]) -> dict[int, Doc]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        if table in _VERSIONED:

            async def attempt(c: Any) -> dict[int, Doc] | None:
                rows = await c.fetch(
                    f"SELECT id, version FROM {table} WHERE id = ANY($1::bigint[])",  # noqa: S608
                    wanted,
                )
                return await self._versioned_docs(c, table, [(r[0], r[1]) for r in rows])

            return await self._consistently(attempt)
        rows = await self._fetch(
            f"SELECT id, doc FROM {table} WHERE id = ANY($1::bigint[]) ORDER BY id",  # noqa: S608
            wanted,
        )
        decode = self.docs.decode
        return {r[0]: decode(table, r[0], r[1]) for r in rows}

    async def talk_by_tracking_number(self, tracking_number: str) -> Doc | None:
        row = await self._fetchrow(
            "SELECT doc FROM talks WHERE tracking_number = $1 ORDER BY id LIMIT 1",
            _text(tracking_number),
        )
        return orjson.loads(row[0]) if row else None

    async def agent_by_login(self, login: str) -> Doc | None:
        row = await self._fetchrow(
            "SELECT doc FROM agents WHERE login = $1 ORDER BY id LIMIT 1", _text(login)
        )
        return orjson.loads(row[0]) if row else None

    async def talk_pages(
        self,
        *,
        query: TalkQuery,
        page: PageRequest,
        order: StoreOrder,
        group: TalkGroup | None = None,
        group_ids: Sequence[int] = (),
        with_customers: bool = False,
    ) -> dict[int | None, Page]:
        if group is not None and not group_ids:
            return {}
        kind = f"talk:{order.value}"  # the list's, whichever way the page is read
        order_by, keyset, size = _TALK_ORDERS[page.read_order(order)]
        p = _Params()
        where = _talk_where(query, p)
        if page.cursor is not None:
            where.append(keyset.format(*map(p, cursor.decode(kind, page.cursor, size))))
        limit = p(page.size + 1)
        if group is None:
            talks = (
                f"SELECT NULL::bigint AS grp, created_us, id, customer_id, version FROM talks"  # noqa: S608
                f" WHERE {_all(where)} ORDER BY {order_by} LIMIT {limit}"
            )
        else:
            # One index range per group (talks_customer or talks_agent), not one big sort.
            where.append(f"{group} = g.grp")
            groups = p(list(dict.fromkeys(group_ids)))
            talks = (
                f"SELECT g.grp, t.created_us, t.id, t.customer_id, t.version"  # noqa: S608
                f" FROM unnest({groups}::bigint[]) AS g (grp) CROSS JOIN LATERAL"
                f" (SELECT created_us, id, customer_id, version FROM talks WHERE {_all(where)}"
                f" ORDER BY {order_by} LIMIT {limit}) AS t"
            )
        # The page's customers come in the same statement (one round trip, one snapshot),
        # after its talks. Both by version: their documents come from the cache, or are read
        # after (`_versioned_docs`).
        customers = (
            " UNION ALL SELECT true, NULL, NULL, id, version FROM customers"
            " WHERE id IN (SELECT customer_id FROM page)"
            if with_customers
            else ""
        )
        sql = (
            f"WITH page AS ({talks}) SELECT false AS customer, grp, created_us, id, version"  # noqa: S608
            f" FROM page{customers} ORDER BY customer, grp, {order_by}"
        )

        async def attempt(c: Any) -> dict[int | None, Page] | None:
            rows = await c.fetch(sql, *p.values)
            pages = TalkPages(page, kind, size, None if group is None else group_ids)
            pages.place([row[1:] for row in rows if not row[0]])
            owners = [(row[3], row[4]) for row in rows if row[0]]
            docs = await self._versioned_docs(c, "talks", pages.stamps)
            if docs is None:
                return None
            customers = await self._versioned_docs(c, "customers", owners)
            if customers is None:
                return None
            return pages.filled(docs, customers)

        return await self._consistently(attempt)

    async def count_talks(
        self, *, query: TalkQuery, group: TalkGroup | None = None, group_ids: Sequence[int] = ()
    ) -> dict[int | None, int]:
        if group is not None and not group_ids:
            return {}
        p = _Params()
        where = _talk_where(query, p)
        if group is None:
            sql = f"SELECT NULL, count(*) FROM talks WHERE {_all(where)}"  # noqa: S608
        else:
            where.append(f"{group} = ANY({p(list(group_ids))}::bigint[])")
            sql = f"SELECT {group}, count(*) FROM talks WHERE {_all(where)} GROUP BY 1"  # noqa: S608
        counts: dict[int | None, int] = {None: 0} if group is None else dict.fromkeys(group_ids, 0)
        counts.update({r[0]: r[1] for r in await self._fetch(sql, *p.values)})
        return counts

    async def message_pages(self, *, talk_ids: Sequence[int], page: PageRequest) -> dict[int, Page]:
        ids = sorted(set(talk_ids))
        if not ids:
            return {}
        p = _Params()
        seek, order = _by_id(page)
        keyset = ""
        if page.cursor is not None:
            keyset = f" AND {seek.format(p(cursor.decode('message', page.cursor, 1)[0]))}"
        sql = (
            f"SELECT t.id, m.id, m.doc FROM unnest({p(ids)}::bigint[]) AS t (id)"  # noqa: S608
            f" CROSS JOIN LATERAL (SELECT id, doc FROM messages WHERE talk_id = t.id{keyset}"
            f" ORDER BY {order} LIMIT {p(page.size + 1)}) AS m ORDER BY t.id, m.{order}"
        )
        pages = {i: Page("message") for i in ids}
        more: set[int] = set()
        for talk_id, message_id, doc in await self._fetch(sql, *p.values):
            target = pages[talk_id]
            if len(target.docs) == page.size:
                more.add(talk_id)
            else:
                message = self.docs.decode("messages", message_id, doc)
                target.add((message_id,), message)
        for talk_id, target in pages.items():
            target.settle(page, talk_id in more)
        return pages

    async def count_messages(self, talk_ids: Sequence[int]) -> dict[int, int]:
        ids = sorted(set(talk_ids))
        if not ids:
            return {}
        counts = dict.fromkeys(ids, 0)
        rows = await self._fetch(
            "SELECT talk_id, count(*) FROM messages WHERE talk_id = ANY($1::bigint[])"
            " GROUP BY talk_id",
            ids,
        )
        counts.update({r[0]: r[1] for r in rows})
        return counts

    async def events_by_talk(self, talk_ids: Sequence[int]) -> dict[int, list[Doc]]:
        ids = sorted(set(talk_ids))
        if not ids:
            return {}
        events: dict[int, list[Doc]] = {i: [] for i in ids}
        for talk_id, event_id, doc in await self._fetch(
            "SELECT talk_id, id, doc FROM events WHERE talk_id = ANY($1::bigint[])"
            " ORDER BY talk_id, id",
            ids,
        ):
            events[talk_id].append(self.docs.decode("events", event_id, doc))
        return events

    async def customer_page(self, *, search: str | None, page: PageRequest) -> Page:
        p = _Params()
        where = _customer_where(search, p)
        seek, order = _by_id(page)
        if page.cursor is not None:
            where.append(seek.format(p(cursor.decode("customer", page.cursor, 1)[0])))
        sql = (
            f"SELECT id, doc FROM customers WHERE {_all(where)}"  # noqa: S608
            f" ORDER BY {order} LIMIT {p(page.size + 1)}"
        )
        return Page.of_rows("customer", await self._fetch(sql, *p.values), page)

    async def count_customers(self, *, search: str | None) -> int:
        p = _Params()
        where = _customer_where(search, p)
        row = await self._fetchrow(
            f"SELECT count(*) FROM customers WHERE {_all(where)}",  # noqa: S608
            *p.values,
        )
        return int(row[0])

    async def agent_page(self, *, page: PageRequest) -> Page:
        p = _Params()
        where: list[str] = []
        seek, order = _by_id(page)
        if page.cursor is not None:
            where.append(seek.format(p(cursor.decode("agent", page.cursor, 1)[0])))
        sql = (
            f"SELECT id, doc FROM agents WHERE {_all(where)}"  # noqa: S608
            f" ORDER BY {order} LIMIT {p(page.size + 1)}"
        )
        return Page.of_rows("agent", await self._fetch(sql, *p.values), page)

    async def count_agents(self) -> int:
        row = await self._fetchrow("SELECT count(*) FROM agents")
        return int(row[0])

    # -- agent control ---------------------------------------------------------------------

    async def set_agent_status(self, *, login: str, status: str, changed_at: str) -> None:
        async with self._connection() as c:
            await c.execute(
                "INSERT INTO agent_status (login, status, changed_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (login) DO UPDATE SET status = excluded.status,"
                " changed_at = excluded.changed_at",
                _text(login),
                status,
                changed_at,
            )

    async def agent_statuses(self, logins: Sequence[str]) -> dict[str, tuple[str, str]]:
        stored_as = {_text(login): login for login in sorted(set(logins))}
        if not stored_as:
            return {}
        rows = await self._fetch(
            "SELECT login, status, changed_at FROM agent_status WHERE login = ANY($1::text[])",
            list(stored_as),
        )
        return {stored_as[r[0]]: (r[1], r[2]) for r in rows}

    async def put_ticket(self, *, digest: str, sealed: str, expires_at: datetime) -> None:
        await self._put_login_row(digest, sealed, expires_at)

    async def take_ticket(self, *, digest: str, now: datetime) -> str | None:
        row = await self._fetchrow(
            "DELETE FROM login_tickets WHERE digest = $1 RETURNING sealed, expires_us", digest
        )
        if row is None or row[1] < _micros_of(now):
            return None
        return str(row[0])

    async def put_revocation(self, *, digest: str, mark: str, expires_at: datetime) -> None:
        await self._put_login_row(digest, mark, expires_at)

    async def _put_login_row(self, digest: str, value: str, expires_at: datetime) -> None:
        """Keep `value` under `digest` until `expires_at` (tickets and revocations share the
        table); a row already there is replaced only by one that expires later. Expired rows
        are swept on the way."""
        async with self._connection() as c, c.transaction():
            await c.execute(
                "DELETE FROM login_tickets WHERE expires_us < $1", _micros_of(datetime.now(UTC))
            )
            await c.execute(
                "INSERT INTO login_tickets (digest, sealed, expires_us) VALUES ($1, $2, $3)"
                " ON CONFLICT (digest) DO UPDATE SET sealed = excluded.sealed,"
                " expires_us = excluded.expires_us"
                " WHERE excluded.expires_us > login_tickets.expires_us",
                digest,
                value,
                _micros_of(expires_at),
            )

    async def revocation_marks(self, *, digests: Sequence[str], now: datetime) -> list[str]:
        rows = await self._fetch(
            "SELECT sealed FROM login_tickets WHERE digest = ANY($1::text[]) AND expires_us >= $2",
            sorted(set(digests)),
            _micros_of(now),
        )
        return [str(r[0]) for r in rows]


# -- writing a batch --------------------------------------------------------------------------

# A column written from an array: its name, and the PostgreSQL type of its elements.
_Column = tuple[str, str]

_RANK_NAMES = ("rank_finished", "rank_message", "rank_arrival")
_RANK_COLUMNS: tuple[_Column, ...] = tuple(
    zip(_RANK_NAMES, ("boolean", "bigint", "bigint"), strict=True)
)
# How an array element becomes a column value; the others are taken as they are.
_VALUE = {"doc": "r.doc::json", "search": "to_tsvector('simple', r.search)"}


def _unnest(columns: Sequence[_Column]) -> str:
    """Rows named r, given as one array parameter per column ($1 for the first)."""
    arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(columns, start=1))
    return f"unnest({arrays}) AS r ({', '.join(name for name, _ in columns)})"


def _insert(table: str, columns: Sequence[_Column]) -> str:
    """INSERT of rows given as arrays, in id order: replicas then lock rows in one order."""
    values = ", ".join(_VALUE.get(name, f"r.{name}") for name, _ in columns)
    names = ", ".join(name for name, _ in columns)
    rows = _unnest(columns)
    return f"INSERT INTO {table} AS s ({names}) SELECT {values} FROM {rows} ORDER BY r.id"  # noqa: S608


def _update(table: str, columns: Sequence[_Column], condition: str = "") -> str:
    """UPDATE of rows found by id (the first column), given as arrays."""
    assign = ", ".join(
        f"{name} = {_VALUE.get(name, f'r.{name}')}" for name, _ in columns if name != "id"
    )
    rows = _unnest(columns)
    return f"UPDATE {table} AS s SET {assign} FROM {rows} WHERE s.id = r.id{condition}"  # noqa: S608


def _assign(columns: Sequence[_Column]) -> str:
    return ", ".join(f"{name} = excluded.{name}" for name, _ in columns if name != "id")


def _ranks(alias: str) -> str:
    return "(" + ", ".join(f"{alias}.{name}" for name in _RANK_NAMES) + ")"


class _Writes:
    """A batch's write statements, sent as one: each becomes a data-modifying WITH query of
    a single statement, so the batch's writes take one round trip instead of one each.

    They run with one snapshot, which none of them needs to see the others' rows in: they
    write disjoint rows (talks, messages and events under the talks' advisory locks), and
    an upsert settles a row another transaction committed meanwhile as a statement of its
    own did. PostgreSQL runs them in an order of its own, the same for every replica.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._args: list[list[Any]] = []

    def add(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """`sql` once for all `rows` (tuples in its columns' order), as one array per column
        ($1 for the first); nothing for no rows."""
        if rows:
            self._parts.append(_renumbered(sql, len(self._args)))
            self._args.extend(map(list, zip(*rows, strict=True)))

    def add_statement(self, sql: str) -> None:
        """`sql`, which takes no parameters."""
        self._parts.append(sql)

    async def send(self, c: Any) -> None:
        if self._parts:
            queries = ", ".join(f"w{n} AS ({part})" for n, part in enumerate(self._parts))
            await c.execute(f"WITH {queries} SELECT 1", *self._args)


@functools.lru_cache(maxsize=256)
def _renumbered(sql: str, offset: int) -> str:
    """`sql` with its parameters $n numbered from `offset` + 1 on."""
    return _PARAMETER.sub(lambda m: f"${int(m.group(1)) + offset}", sql)


_DEAD_LETTER_COLUMNS = "id, received_at, source, reason, errors, body, body_size, truncated"


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        row[0], row[1], row[2], row[3], orjson.loads(row[4]), bytes(row[5]), row[6], row[7]
    )


def _dead_letter_filter(before_id: int | None, reason: str | None) -> tuple[str, list[Any]]:
    """The WHERE of a read of dead letters, and its parameters ($1, $2, ... in order)."""
    terms: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        params.append(before_id)
        terms.append(f"id < ${len(params)}")
    if reason:
        params.append(reason)
        terms.append(f"strpos(lower(reason), lower(${len(params)})) > 0")
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


# The talks a purge before a date takes ($1 the date; "C": compared as bytes, as ISO text).
_FINISHED_BEFORE = "doc->>'finished_at' COLLATE \"C\" < $1"
# (what it counts, or None; the statement) after purged_talks is filled.
_PURGE_STEPS = (
    (
        None,
        "CREATE TEMP TABLE purged_seqs ON COMMIT DROP AS SELECT DISTINCT seq FROM delivery_talks"
        " WHERE talk_id IN (SELECT id FROM purged_talks)",
    ),
    (
        None,
        "CREATE TEMP TABLE purged_users ON COMMIT DROP AS SELECT user_id AS id FROM messages"
        " WHERE talk_id IN (SELECT id FROM purged_talks) AND user_id IS NOT NULL"
        " UNION SELECT agent_id FROM purged_talks WHERE agent_id IS NOT NULL",
    ),
    ("messages", "DELETE FROM messages WHERE talk_id IN (SELECT id FROM purged_talks)"),
    ("events", "DELETE FROM events WHERE talk_id IN (SELECT id FROM purged_talks)"),
    (None, "DELETE FROM delivery_talks WHERE talk_id IN (SELECT id FROM purged_talks)"),
    (
        "deliveries",
        "DELETE FROM deliveries d WHERE seq IN (SELECT seq FROM purged_seqs)"
        " AND NOT EXISTS (SELECT 1 FROM delivery_talks dt WHERE dt.seq = d.seq)",
    ),
    ("talks", "DELETE FROM talks WHERE id IN (SELECT id FROM purged_talks)"),
    (
        "customers",
        "DELETE FROM customers c WHERE id IN (SELECT customer_id FROM purged_talks)"
        " AND NOT EXISTS (SELECT 1 FROM talks t WHERE t.customer_id = c.id)",
    ),
    (
        "agents",
        "DELETE FROM agents a WHERE id IN (SELECT id FROM purged_users)"
        " AND NOT EXISTS (SELECT 1 FROM talks t WHERE t.agent_id = a.id)"
        " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.user_id = a.id)",
    ),
)


async def _purge(c: Any, before: str, limit: int | None) -> Purged:
    """`PostgresStore.purge`'s statements, in the transaction `c` is in."""
    await c.execute(
        "CREATE TEMP TABLE purged_talks ON COMMIT DROP AS SELECT id, customer_id, agent_id"  # noqa: S608
        f" FROM talks WHERE {_FINISHED_BEFORE} ORDER BY id LIMIT $2",
        before,
        limit,
    )
    counts: dict[str, int] = {}
    for counted, sql in _PURGE_STEPS:
        done = await c.execute(sql)
        if counted is not None:
            counts[counted] = int(done.split()[-1])
    done = await c.execute('DELETE FROM dead_letters WHERE received_at COLLATE "C" < $1', before)
    counts["dead_letters"] = int(done.split()[-1])
    if any(counts.values()):
        # The generation moves on: every cached answer goes.
        await c.execute("UPDATE store_generation SET generation = generation + 1")
    # ON COMMIT DROP drops them at a commit; a dry run's rollback drops them too.
    return Purged(**counts)


async def _add_dead_letter(
    c: Any,
    source: str,
    reason: str,
    errors: list[dict[str, str]],
    body: bytes,
    body_size: int,
    truncated: bool,
    received_at: str | None = None,
) -> int:
    dead_letter_id = await c.fetchval(
        "INSERT INTO dead_letters (received_at, source, reason, errors, body,"
        " body_size, truncated) VALUES ($1, $2, $3, $4::json, $5, $6, $7) RETURNING id",
        received_at or now_iso(),
        _text(source),
        _text(reason),
        orjson.dumps(errors).decode(),
        body,
        body_size,
        truncated,
    )
    return int(dead_letter_id)


# The write statements hold no text literal or dollar quote a parameter could be taken from.
_PARAMETER = re.compile(r"\$(\d+)")


_DELIVERIES = _unnest(
    (
        ("seq", "bigint"),
        ("key", "text"),
        ("source", "text"),
        ("body_sha256", "text"),
        ("body", "bytea"),
        ("as_json", "boolean"),
    )
)
# A known key, or a body received before under any key, is a redelivery: not inserted. The
# talk ids of those inserted go in the same round trip.
_ADD_DELIVERIES = (
    "WITH d AS (INSERT INTO deliveries (seq, key, source, received_at, body_sha256, body,"  # noqa: S608
    " body_json) OVERRIDING SYSTEM VALUE SELECT r.seq, r.key, r.source, $7, r.body_sha256,"
    " r.body, CASE WHEN r.as_json THEN convert_from(r.body, 'UTF8')::jsonb END"
    f" FROM {_DELIVERIES} ORDER BY r.seq ON CONFLICT DO NOTHING"
    " RETURNING seq), dt AS (INSERT INTO delivery_talks (seq, talk_id) SELECT t.seq, t.talk_id"
    " FROM unnest($8::bigint[], $9::bigint[]) AS t (seq, talk_id) JOIN d USING (seq)"
    " ON CONFLICT DO NOTHING) SELECT seq FROM d"
)


async def _add_deliveries(c: Any, deliveries: Sequence[Delivery]) -> list[int | None]:
    """Each delivery's sequence number, or None for a redelivery, which is not stored."""
    # Numbers taken first and given in the deliveries' order, which is their arrival order,
    # whatever order the INSERT would draw them in.
    taken = sorted(
        await c.fetchval(
            "SELECT array_agg(nextval(pg_get_serial_sequence('deliveries', 'seq')))"
            " FROM generate_series(1, $1)",
            len(deliveries),
        )
    )
    rows = [
        (seq, _text(d.key), _text(d.source), d.body_sha256, d.body, _jsonb_holds(d.body))
        for seq, d in zip(taken, deliveries, strict=True)
    ]
    talks = sorted({(seq, t.id) for seq, d in zip(taken, deliveries, strict=True) for t in d.talks})
    inserted = {
        row[0]
        for row in await c.fetch(
            _ADD_DELIVERIES,
            *map(list, zip(*rows, strict=True)),
            now_iso(),
            [seq for seq, _ in talks],
            [talk_id for _, talk_id in talks],
        )
    }
    return [seq if seq in inserted else None for seq in taken]


# The rows a batch may touch, in one round trip: (table, id, talk id, rank, version, stub, doc)
# from talks (0), messages (1), events (2), customers (3), agents (4) and channels (5).
_LOAD = (
    "SELECT 0, id, NULL::bigint, rank_finished, rank_message, rank_arrival, version, false,"
    " doc::text FROM talks WHERE id = ANY($1::bigint[])"
    " UNION ALL SELECT 1, id, talk_id, rank_finished, rank_message, rank_arrival, NULL, NULL,"
    " doc::text FROM messages WHERE id = ANY($2::bigint[])"
    " UNION ALL SELECT 2, id, talk_id, rank_finished, rank_message, rank_arrival, NULL, NULL,"
    " doc::text FROM events WHERE id = ANY($3::bigint[])"
    " UNION ALL SELECT 3, id, NULL, NULL, NULL, NULL, version, stub, doc::text FROM customers"
    " WHERE id = ANY($4::bigint[])"
    " UNION ALL SELECT 4, id, NULL, NULL, NULL, NULL, 1, stub, doc::text FROM agents"
    " WHERE id = ANY($5::bigint[])"
    " UNION ALL SELECT 5, id, NULL, NULL, NULL, NULL, 1, false, doc::text FROM channels"
    " WHERE id = ANY($6::bigint[])"
)


async def _load(c: Any, batch: merge.Batch, wanted: merge.Wanted) -> None:
    """What the store holds of the rows a batch may touch."""
    ranked = (batch.messages, batch.events)
    documents = (batch.customers, batch.agents, batch.channels)
    for table, row_id, talk_id, finished, message, arrival, version, stub, doc in await c.fetch(
        _LOAD,
        wanted.talks,
        wanted.messages,
        wanted.events,
        wanted.customers,
        wanted.agents,
        wanted.channels,
    ):
        if table == 0:
            rank = merge.Rank(finished, message, arrival)
            batch.talks[row_id] = merge.TalkRow(rank, doc, version, True)
        elif table < 3:
            rank = merge.Rank(finished, message, arrival)
            ranked[table - 1][row_id] = merge.RankedRow(rank, doc, talk_id, (doc, talk_id))
        else:
            documents[table - 3][row_id] = merge.DocRow(stub, doc, version, True)


_TALK_COLUMNS: tuple[_Column, ...] = (
    ("id", "bigint"),
    ("customer_id", "bigint"),
    ("agent_id", "bigint"),
    ("queue_id", "bigint"),
    ("channel_id", "bigint"),
    ("tracking_number", "text"),
    ("external_protocol", "text"),
    ("created_us", "bigint"),
    ("status", "text"),
    ("was_success", "boolean"),
    ("is_critical", "boolean"),
    *_RANK_COLUMNS,
    ("version", "bigint"),
    ("doc", "text"),
)
_INSERT_TALKS = _insert("talks", _TALK_COLUMNS)
_UPDATE_TALKS = _update("talks", _TALK_COLUMNS)
_RERANK_TALKS = _update("talks", (("id", "bigint"), *_RANK_COLUMNS, ("version", "bigint")))


@dataclass(frozen=True, slots=True)
class _RowTable:
    """Messages or events: each row kept in the version of the most advanced snapshot.
    `write` takes new rows and new versions (id, columns, rank, doc); `rerank`, the rank of
    rows whose content is unchanged (id, rank)."""

    write: str
    rerank: str


def _row_table(table: str, columns: tuple[_Column, ...]) -> _RowTable:
    every = (*columns, *_RANK_COLUMNS, ("doc", "text"))
    # The rank guard keeps a row written by a more advanced snapshot, whoever commits
    # last; with the talk locked it never has to act, but it costs nothing.
    return _RowTable(
        # And a row stays in its talk: a replica storing a conflicting body at the same time
        # (their talks' locks differ) cannot move it (`merge.Batch.id_conflicts`).
        write=f"{_insert(table, every)} ON CONFLICT (id) DO UPDATE SET {_assign(every)}"
        f" WHERE {_ranks('s')} < {_ranks('excluded')} AND s.talk_id = excluded.talk_id",
        rerank=_update(
            table, (("id", "bigint"), *_RANK_COLUMNS), f" AND {_ranks('s')} < {_ranks('r')}"
        ),
    )


@dataclass(frozen=True, slots=True)
class _DocTable:
    """Customers, agents, channels: one document each. `replace` writes the documents of
    winning snapshots over stored ones that differ; `fill` writes others, and stubs, only
    where no row or a stub is stored."""

    replace: str
    fill: str


def _doc_table(table: str, columns: tuple[_Column, ...]) -> _DocTable:
    assign = _assign(columns)
    if table == "customers":
        assign += ", version = s.version + 1"
    upsert = f"{_insert(table, columns)} ON CONFLICT (id)"
    return _DocTable(
        replace=f"{upsert} DO UPDATE SET {assign}"
        " WHERE s.doc::text IS DISTINCT FROM excluded.doc::text",
        fill=f"{upsert} DO UPDATE SET {assign} WHERE s.stub"
        if any(name == "stub" for name, _ in columns)
        else f"{upsert} DO NOTHING",
    )


_MESSAGES = _row_table(
    "messages",
    (("id", "bigint"), ("talk_id", "bigint"), ("user_id", "bigint"), ("search", "text")),
)
_EVENTS = _row_table("events", (("id", "bigint"), ("talk_id", "bigint")))
_CUSTOMERS = _doc_table(
    "customers",
    (
        ("id", "bigint"),
        ("name", "text"),
        ("name_key", "text"),
        ("external_id", "text"),
        ("stub", "boolean"),
        ("doc", "text"),
    ),
)
_AGENTS = _doc_table(
    "agents", (("id", "bigint"), ("login", "text"), ("stub", "boolean"), ("doc", "text"))
)
_CHANNELS = _doc_table("channels", (("id", "bigint"), ("doc", "text")))


async def _write_batch(c: Any, batch: merge.Batch, *, advance: bool) -> None:
    """Write the rows a batch left changed, a few statements per table, all in one; and
    with `advance`, move the store's generation on."""
    writes = _Writes()
    new_talks: list[tuple[Any, ...]] = []
    full: list[tuple[Any, ...]] = []
    reranked: list[tuple[Any, ...]] = []
    for talk_id, talk in sorted(batch.talks.items()):
        if not talk.dirty:
            continue
        ranks = _rank_columns(talk.rank)
        if talk.source is None:
            reranked.append((talk_id, *ranks, talk.version))
        else:
            columns = _talk_columns(talk.source.doc.fields)
            row = (talk_id, *columns, *ranks, talk.version, talk.doc)
            (full if talk.stored else new_talks).append(row)
    writes.add(_INSERT_TALKS, new_talks)
    writes.add(_UPDATE_TALKS, full)
    writes.add(_RERANK_TALKS, reranked)

    def message(row: merge.RankedRow) -> tuple[Any, ...]:
        item = row.item
        assert item is not None
        return (row.talk_id, item.fields["user_id"], _search_text(item.fields["message"]))

    _write_ranked(writes, _MESSAGES, batch.messages, message)
    _write_ranked(writes, _EVENTS, batch.events, lambda row: (row.talk_id,))

    def customer(row: merge.DocRow) -> tuple[Any, ...]:
        if row.item is None:
            return (None, None, None, True)
        name = row.item.fields["name"]
        external_id = row.item.fields["external_id"]
        return (_text(name), _text(search_key(name)), _text(external_id), False)

    _write_documents(writes, _CUSTOMERS, batch.customers, customer)

    def agent(row: merge.DocRow) -> tuple[Any, ...]:
        if row.item is None:
            return (None, True)
        return (_text(row.item.fields["login"]), False)

    _write_documents(writes, _AGENTS, batch.agents, agent)
    _write_documents(writes, _CHANNELS, batch.channels, lambda row: ())
    if advance:
        # Last, so the row lock is held only until the commit: writers pass it in commit
        # order, and a reader seeing generation n sees every commit up to n.
        writes.add_statement("UPDATE store_generation SET generation = generation + 1")
    await writes.send(c)


def _write_ranked(
    into: _Writes,
    table: _RowTable,
    rows: dict[int, merge.RankedRow],
    values: Callable[[merge.RankedRow], tuple[Any, ...]],
) -> None:
    """Messages or events a batch changed; a row whose document is unchanged gets only its
    rank (so the text index of a message is left alone)."""
    writes: list[tuple[Any, ...]] = []
    reranked: list[tuple[Any, ...]] = []
    for row_id, row in sorted(rows.items()):
        if not row.dirty:
            continue
        if row.only_rank_moved:
            reranked.append((row_id, *_rank_columns(row.rank)))
        else:
            writes.append((row_id, *values(row), *_rank_columns(row.rank), row.doc))
    into.add(table.write, writes)
    into.add(table.rerank, reranked)


def _write_documents(
    into: _Writes,
    table: _DocTable,
    rows: dict[int, merge.DocRow],
    values: Callable[[merge.DocRow], tuple[Any, ...]],
) -> None:
    """Customers, agents or channels a batch changed (id, `values`, doc)."""
    replacing: list[tuple[Any, ...]] = []
    filling: list[tuple[Any, ...]] = []
    for row_id, row in sorted(rows.items()):
        if row.dirty:
            (replacing if row.replaces else filling).append((row_id, *values(row), row.doc))
    into.add(table.replace, replacing)
    into.add(table.fill, filling)


def _rank_columns(rank: merge.Rank) -> tuple[bool, int, int]:
    return rank.finished, rank.latest_message_id, rank.arrival


def _talk_columns(fields: Doc) -> tuple[Any, ...]:
    """The talk's columns, from its `Document.fields`."""
    return (
        fields["customer_id"],
        fields["agent_id"],
        fields["queue_id"],
        fields["channel_id"],
        _text(fields["tracking_number"]),
        _text(fields["external_protocol"]),
        _micros(fields["created_at"]),
        talk_status(fields),
        bool(fields["was_success"]),
        bool(fields["is_critical"]),
    )


# -- queries ----------------------------------------------------------------------------------


class _Params:
    """Positional parameters: calling it with a value returns the placeholder for it."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _all(where: list[str]) -> str:
    return " AND ".join(where) or "true"


def _by_id(page: PageRequest) -> tuple[str, str]:
    """The keyset condition (a `{}` for the cursor's id) and the order of a page of a list
    by id, as it is read."""
    return ("id > {}", "id ASC") if page.ascending(True) else ("id < {}", "id DESC")


def _talk_where(query: TalkQuery, p: _Params) -> list[str]:
    where: list[str] = []
    for column in ("customer_id", "agent_id", "queue_id", "channel_id"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = {p(value)}")
    for column in ("tracking_number", "external_protocol", "status"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = {p(_text(value))}")
    if query.talk_id is not None:
        where.append(f"id = {p(query.talk_id)}")
    for column in ("was_success", "is_critical"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = {p(bool(value))}")
    if query.created_from is not None:
        where.append(f"created_us >= {p(_micros_of(query.created_from))}")
    if query.created_to is not None:
        where.append(f"created_us < {p(_micros_of(query.created_to))}")
    if query.text is not None:
        # Each word, whole, somewhere in the talk; a word of several tokens ("a_b") is
        # a phrase, as in SQLite's FTS5. A word without tokens matches nothing there too.
        for word in query_words(query.text):
            parts = tokens(word)
            where.append(
                "id IN (SELECT talk_id FROM messages"  # noqa: S608
                f" WHERE search @@ phraseto_tsquery('simple', {p(' '.join(parts))}))"
                if parts
                else "false"
            )
    return where


def _customer_where(search: str | None, p: _Params) -> list[str]:
    if search is None or not search.strip():
        return []
    text = bounded_search(search)
    key = _text(search_key(text)) or ""
    pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [f"(name_key LIKE {p(pattern)} ESCAPE '\\' OR external_id = {p(_text(text))})"]
