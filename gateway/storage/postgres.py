"""The shared store: PostgreSQL through an asyncpg pool, for several replicas at once.

Every `ingest()` is one transaction that first takes a transaction-scoped advisory lock
per talk it carries, in ascending key order: deliveries of the same talk reaching two
replicas at once merge one after the other, each reading the rank the other committed,
so no message is lost and `merge` applies exactly as in SQLite. Deliveries of different
talks do not wait for each other, except on a customer or agent document both change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson

from gateway.payload import NormalizedTalk, dumps_doc, talk_status
from gateway.storage import cursor, merge
from gateway.storage.docs import DecodedDocs
from gateway.storage.postgres_schema import migrate
from gateway.storage.protocol import StoreUnavailable, TalkGroup
from gateway.storage.records import (
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    Doc,
    Page,
    PageRequest,
    TalkOrder,
    TalkQuery,
)
from gateway.storage.text import query_words, search_key, tokens
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

# First key of the two-key advisory locks taken per talk: "talk" in ASCII.
_TALK_LOCK = int.from_bytes(b"talk", "big")

# ORDER BY clause, keyset condition (placeholders filled in order), sort values in a cursor.
_TALK_ORDERS: dict[TalkOrder, tuple[str, str, int]] = {
    TalkOrder.CREATED_AT_DESC: ("created_us DESC, id DESC", "(created_us, id) < ({}, {})", 2),
    TalkOrder.CREATED_AT_ASC: ("created_us ASC, id ASC", "(created_us, id) > ({}, {})", 2),
    TalkOrder.ID_DESC: ("id DESC", "id < {}", 1),
    TalkOrder.ID_ASC: ("id ASC", "id > {}", 1),
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


def _body_json(body: bytes) -> str | None:
    """The body as jsonb input, or None when jsonb cannot hold it (a \\u0000 escape)."""
    if b"\\u0000" in body:
        return None
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


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


class PostgresStore:
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

    def __repr__(self) -> str:
        # The URL may carry a password: never show it.
        return f"<PostgresStore {'open' if self._pool is not None else 'closed'}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
        try:
            async with pool.acquire(timeout=self._acquire_timeout) as connection:
                await migrate(connection)
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

    async def generation(self) -> str:
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
        outcomes: list[DeliveryOutcome] = []
        received_at = now_iso()
        for delivery in deliveries:
            talk_ids = [t.id for t in delivery.talks]
            # A known key, or a body received before under any key, is a redelivery. The
            # delivery and its talk ids go in one round trip.
            sequence = await c.fetchval(
                "WITH d AS (INSERT INTO deliveries (key, source, received_at, body_sha256,"
                " body, body_json) VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING"
                " RETURNING seq), dt AS (INSERT INTO delivery_talks (seq, talk_id)"
                " SELECT d.seq, t FROM d CROSS JOIN unnest($7::bigint[]) AS t"
                " ON CONFLICT DO NOTHING) SELECT seq FROM d",
                _text(delivery.key),
                _text(delivery.source),
                received_at,
                delivery.body_sha256,
                delivery.body,
                _body_json(delivery.body),
                talk_ids,
            )
            if sequence is None:
                outcomes.append(DeliveryOutcome(delivery.key, True, talk_ids, []))
                continue
            changed = [
                t.id
                for position, t in enumerate(delivery.talks)
                if await self._merge_talk(c, t, merge.arrival(sequence, position))
            ]
            outcomes.append(
                DeliveryOutcome(delivery.key, False, talk_ids, list(dict.fromkeys(changed)))
            )
        if any(o.changed_ids for o in outcomes):
            # Last, so the row lock is held only until the commit: writers pass it in commit
            # order, and a reader seeing generation n sees every commit up to n.
            await c.execute("UPDATE store_generation SET generation = generation + 1")
        return outcomes

    async def _merge_talk(self, c: Any, talk: NormalizedTalk, arrival: int) -> bool:
        """Apply the merge rules of `merge` to one snapshot; True when anything changed."""
        row = await c.fetchrow(
            "SELECT rank_finished, rank_message, rank_arrival, doc FROM talks WHERE id = $1",
            talk.id,
        )
        stored = merge.Rank(row[0], row[1], row[2]) if row else None
        plan = merge.plan(stored, talk, arrival)
        doc_json = talk.doc.text
        top_changed = plan.wins and (row is None or row[3] != doc_json)

        rank = merge.rank_of(talk, arrival)
        messages = {
            m.id: (talk.id, m.fields["user_id"], _search_text(m.fields["message"]), m.text)
            for m in talk.messages
        }
        related = await _merge_rows(c, _MESSAGES, messages, rank)
        events = {e.id: (talk.id, e.text) for e in talk.events}
        related += await _merge_rows(c, _EVENTS, events, rank)
        if talk.customer is not None:
            customer = talk.customer
            name = customer.fields["name"]
            row_values = (
                customer.id,
                _text(name),
                _text(search_key(name)),
                _text(customer.fields["external_id"]),
                False,
                customer.text,
            )
            related += await _upsert(c, _CUSTOMERS, [row_values], plan.wins)
        else:
            related += await _insert_stubs(c, "customers", [talk.doc.fields["customer_id"]])
        users = [(u.id, _text(u.fields["login"]), False, u.text) for u in talk.users]
        related += await _upsert(c, _AGENTS, users, plan.wins)
        related += await _insert_stubs(c, "agents", sorted(talk.agent_ids))
        channels = [(ch.id, ch.text) for ch in talk.channels]
        await _upsert(c, _CHANNELS, channels, plan.wins)

        if row is None:
            await c.execute(
                "INSERT INTO talks (id, customer_id, agent_id, queue_id, channel_id,"
                " tracking_number, external_protocol, created_us, status, was_success,"
                " is_critical, rank_finished, rank_message, rank_arrival, version, doc)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1,"
                " $15::json)",
                talk.id,
                *_talk_columns(talk.doc.fields),
                *_rank_columns(plan.rank),
                doc_json,
            )
            return True
        if top_changed:
            await c.execute(
                "UPDATE talks SET customer_id = $1, agent_id = $2, queue_id = $3,"
                " channel_id = $4, tracking_number = $5, external_protocol = $6,"
                " created_us = $7, status = $8, was_success = $9, is_critical = $10,"
                " rank_finished = $11, rank_message = $12, rank_arrival = $13,"
                " version = version + 1, doc = $14::json WHERE id = $15",
                *_talk_columns(talk.doc.fields),
                *_rank_columns(plan.rank),
                doc_json,
                talk.id,
            )
            return True
        if related:
            await c.execute(
                "UPDATE talks SET rank_finished = $1, rank_message = $2, rank_arrival = $3,"
                " version = version + 1 WHERE id = $4",
                *_rank_columns(plan.rank),
                talk.id,
            )
            return True
        return False

    async def add_dead_letter(
        self,
        *,
        source: str,
        reason: str,
        errors: list[dict[str, str]],
        body: bytes,
        body_size: int,
        truncated: bool = False,
    ) -> int:
        async with self._connection() as c:
            dead_letter_id = await c.fetchval(
                "INSERT INTO dead_letters (received_at, source, reason, errors, body,"
                " body_size, truncated) VALUES ($1, $2, $3, $4::json, $5, $6, $7) RETURNING id",
                now_iso(),
                _text(source),
                _text(reason),
                orjson.dumps(errors).decode(),
                body,
                body_size,
                truncated,
            )
        return int(dead_letter_id)

    # -- reads -----------------------------------------------------------------------------

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        rows = await self._fetch(
            "SELECT id, received_at, source, reason, errors, body, body_size, truncated"
            " FROM dead_letters ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [
            DeadLetter(r[0], r[1], r[2], r[3], orjson.loads(r[4]), bytes(r[5]), r[6], r[7])
            for r in rows
        ]

    async def raw_deliveries(self, *, talk_id: int) -> list[bytes]:
        rows = await self._fetch(
            "SELECT d.body FROM delivery_talks dt JOIN deliveries d ON d.seq = dt.seq"
            " WHERE dt.talk_id = $1 ORDER BY dt.seq",
            talk_id,
        )
        return [bytes(r[0]) for r in rows]

    async def talks_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("talks", ids)

    async def customers_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("customers", ids)

    async def agents_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("agents", ids)

    async def channels_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("channels", ids)

    async def _docs_by_id(self, table: str, ids: Sequence[int]) -> dict[int, Doc]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
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
        order: TalkOrder,
        group: TalkGroup | None = None,
        group_ids: Sequence[int] = (),
        with_customers: bool = False,
    ) -> dict[int | None, Page]:
        if group is not None and not group_ids:
            return {}
        order_by, keyset, size = _TALK_ORDERS[order]
        kind = f"talk:{order.value}"
        p = _Params()
        where = _talk_where(query, p)
        if page.after is not None:
            where.append(keyset.format(*map(p, cursor.decode(kind, page.after, size))))
        limit = p(page.first + 1)
        if group is None:
            sql = (
                f"SELECT NULL, created_us, id, doc FROM talks WHERE {_all(where)}"  # noqa: S608
                f" ORDER BY {order_by} LIMIT {limit}"
            )
        else:
            # One index range per group (talks_customer or talks_agent), not one big sort.
            where.append(f"{group} = g.grp")
            groups = p(list(dict.fromkeys(group_ids)))
            sql = (
                f"SELECT g.grp, t.created_us, t.id, t.doc FROM unnest({groups}::bigint[])"  # noqa: S608
                f" AS g (grp) CROSS JOIN LATERAL (SELECT created_us, id, doc FROM talks"
                f" WHERE {_all(where)} ORDER BY {order_by} LIMIT {limit}) AS t"
                f" ORDER BY g.grp, {order_by}"
            )

        def key(created_us: int, talk_id: int) -> str:
            return (
                cursor.encode(kind, created_us, talk_id)
                if size == 2
                else cursor.encode(kind, talk_id)
            )

        pages: dict[int | None, Page] = (
            {None: Page()} if group is None else {i: Page() for i in group_ids}
        )
        for grp, created_us, talk_id, doc in await self._fetch(sql, *p.values):
            target = pages.setdefault(grp, Page())
            if len(target.items) == page.first:
                target.has_next = True
            else:
                doc_ = self.docs.decode("talks", talk_id, doc)
                target.items.append((key(created_us, talk_id), doc_))
        if with_customers:
            wanted = {d["customer_id"] for page_ in pages.values() for _, d in page_.items}
            try:
                customers = await self._docs_by_id("customers", sorted(wanted))
            except StoreUnavailable:  # left to customers_by_id, which reports it
                customers = {}
            for page_ in pages.values():
                for _, d in page_.items:
                    if d["customer_id"] in customers:
                        page_.customers[d["customer_id"]] = customers[d["customer_id"]]
        return pages

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
        keyset = ""
        if page.after is not None:
            (after_id,) = cursor.decode("message", page.after, 1)
            keyset = f" AND id > {p(after_id)}"
        sql = (
            f"SELECT t.id, m.id, m.doc FROM unnest({p(ids)}::bigint[]) AS t (id)"  # noqa: S608
            f" CROSS JOIN LATERAL (SELECT id, doc FROM messages WHERE talk_id = t.id{keyset}"
            f" ORDER BY id LIMIT {p(page.first + 1)}) AS m ORDER BY t.id, m.id"
        )
        pages = {i: Page() for i in ids}
        for talk_id, message_id, doc in await self._fetch(sql, *p.values):
            target = pages[talk_id]
            if len(target.items) == page.first:
                target.has_next = True
            else:
                message = self.docs.decode("messages", message_id, doc)
                target.items.append((cursor.encode("message", message_id), message))
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
        if page.after is not None:
            where.append(f"id > {p(cursor.decode('customer', page.after, 1)[0])}")
        sql = (
            f"SELECT id, doc FROM customers WHERE {_all(where)}"  # noqa: S608
            f" ORDER BY id LIMIT {p(page.first + 1)}"
        )
        return _page(await self._fetch(sql, *p.values), "customer", page.first)

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
        if page.after is not None:
            where.append(f"id > {p(cursor.decode('agent', page.after, 1)[0])}")
        sql = (
            f"SELECT id, doc FROM agents WHERE {_all(where)}"  # noqa: S608
            f" ORDER BY id LIMIT {p(page.first + 1)}"
        )
        return _page(await self._fetch(sql, *p.values), "agent", page.first)

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
        async with self._connection() as c, c.transaction():
            await c.execute(
                "DELETE FROM login_tickets WHERE expires_us < $1", _micros_of(datetime.now(UTC))
            )
            await c.execute(
                "INSERT INTO login_tickets (digest, sealed, expires_us) VALUES ($1, $2, $3)",
                digest,
                sealed,
                _micros_of(expires_at),
            )

    async def take_ticket(self, *, digest: str, now: datetime) -> str | None:
        row = await self._fetchrow(
            "DELETE FROM login_tickets WHERE digest = $1 RETURNING sealed, expires_us", digest
        )
        if row is None or row[1] < _micros_of(now):
            return None
        return str(row[0])


# -- merging rows -----------------------------------------------------------------------------


_RANK_NAMES = ("rank_finished", "rank_message", "rank_arrival")
_RANKS = ", ".join(_RANK_NAMES)
# How an array element becomes a column value; the others are taken as they are.
_VALUE = {"doc": "r.doc::json", "search": "to_tsvector('simple', r.search)"}


def _insert(
    table: str, columns: tuple[tuple[str, str], ...], constants: dict[str, str] | None = None
) -> str:
    """INSERT of rows given as one array per column, plus `constants` (column: value)."""
    names = [name for name, _ in columns]
    arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(columns, start=1))
    values = [_VALUE.get(name, f"r.{name}") for name in names]
    extra = constants or {}
    return (
        f"INSERT INTO {table} AS s ({', '.join([*names, *extra])})"  # noqa: S608
        f" SELECT {', '.join([*values, *extra.values()])}"
        f" FROM unnest({arrays}) AS r ({', '.join(names)}) ORDER BY r.id"
    )


def _assign(names: Sequence[str]) -> str:
    return ", ".join(f"{name} = excluded.{name}" for name in names if name != "id")


@dataclass(frozen=True, slots=True)
class _RowTable:
    """Messages or events: each row kept in the version of the most advanced snapshot."""

    stored: str
    write: str


def _row_table(table: str, columns: tuple[tuple[str, str], ...]) -> _RowTable:
    first = len(columns) + 1
    kinds = ("boolean", "bigint", "bigint")
    ranks = {
        name: f"${n}::{kind}"
        for n, (name, kind) in enumerate(zip(_RANK_NAMES, kinds, strict=True), start=first)
    }
    insert = _insert(table, columns, ranks)
    # The rank guard keeps a row written by a more advanced snapshot, whoever commits
    # last; with the talk locked it never has to act, but it costs nothing.
    stored_rank = ", ".join(f"s.{name}" for name in _RANK_NAMES)
    new_rank = ", ".join(f"excluded.{name}" for name in _RANK_NAMES)
    names = [name for name, _ in columns] + list(_RANK_NAMES)
    return _RowTable(
        stored=f"SELECT id, {_RANKS}, doc FROM {table} WHERE id = ANY($1::bigint[])",  # noqa: S608
        write=f"{insert} ON CONFLICT (id) DO UPDATE SET {_assign(names)}"
        f" WHERE ({stored_rank}) < ({new_rank})",
    )


@dataclass(frozen=True, slots=True)
class _DocTable:
    """Customers, agents, channels: one document each, replaced by winning snapshots."""

    stored: str
    overwrite: str
    fill: str


def _doc_table(table: str, columns: tuple[tuple[str, str], ...]) -> _DocTable:
    names = [name for name, _ in columns]
    stubbed = "stub" in names
    assign = _assign(names)
    if table == "customers":
        assign += ", version = s.version + 1"
    upsert = f"{_insert(table, columns)} ON CONFLICT (id)"
    stub = "s.stub" if stubbed else "false"
    return _DocTable(
        stored=f"SELECT id, {stub}, doc FROM {table} AS s WHERE id = ANY($1::bigint[])",  # noqa: S608
        overwrite=f"{upsert} DO UPDATE SET {assign}"
        " WHERE s.doc::text IS DISTINCT FROM excluded.doc::text RETURNING id",
        fill=f"{upsert} DO UPDATE SET {assign} WHERE s.stub RETURNING id"
        if stubbed
        else f"{upsert} DO NOTHING RETURNING id",
    )


_MESSAGES = _row_table(
    "messages",
    (
        ("id", "bigint"),
        ("talk_id", "bigint"),
        ("user_id", "bigint"),
        ("search", "text"),
        ("doc", "text"),
    ),
)
_EVENTS = _row_table("events", (("id", "bigint"), ("talk_id", "bigint"), ("doc", "text")))
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


async def _merge_rows(
    c: Any, table: _RowTable, rows: dict[int, tuple[Any, ...]], rank: merge.Rank
) -> int:
    """Messages or events of one snapshot (id -> values, doc last), by `merge.merge_rows`."""
    if not rows:
        return 0
    stored = {
        row_id: (merge.Rank(finished, message, arrival), doc)
        for row_id, finished, message, arrival, doc in await c.fetch(table.stored, list(rows))
    }
    plan = merge.merge_rows(stored, ((i, values[-1]) for i, values in rows.items()), rank)
    if plan.writes:
        written = sorted(plan.writes)
        columns = zip(*((i, *rows[i]) for i in written), strict=True)
        await c.execute(table.write, *map(list, columns), *_rank_columns(rank))
    return plan.changed


async def _upsert(c: Any, table: _DocTable, rows: list[tuple[Any, ...]], overwrite: bool) -> int:
    """Insert rows missing by id; replace a stored row whose doc differs when `overwrite`
    (the snapshot won) or when the stored row is only a stub. Returns rows written.

    Rows that plainly need nothing are left out, so a document many talks share (the bot
    agent) is not locked by every delivery; the statement checks again for the others."""
    if not rows:
        return 0
    stored = {r[0]: (r[1], r[2]) for r in await c.fetch(table.stored, [row[0] for row in rows])}
    wanted = [
        row
        for row in rows
        if (current := stored.get(row[0])) is None
        or (current[1] != row[-1] if overwrite else current[0])
    ]
    if not wanted:
        return 0
    columns = zip(*sorted(wanted, key=lambda row: row[0]), strict=True)
    written = await c.fetch(table.overwrite if overwrite else table.fill, *map(list, columns))
    return len(written)


async def _insert_stubs(c: Any, table: str, ids: list[int]) -> int:
    """Rows for ids seen without their object, upgraded when the object arrives."""
    if not ids:
        return 0
    written = await c.fetch(
        f"INSERT INTO {table} (id, stub, doc) SELECT r.id, true, r.doc::json"  # noqa: S608
        " FROM unnest($1::bigint[], $2::text[]) AS r (id, doc) ORDER BY r.id"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        ids,
        [dumps_doc({"id": i}) for i in ids],
    )
    return len(written)


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


def _page(rows: list[Any], kind: str, first: int) -> Page:
    result = Page()
    for row_id, doc in rows:
        if len(result.items) == first:
            result.has_next = True
            break
        result.items.append((cursor.encode(kind, row_id), orjson.loads(doc)))
    return result


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
    text = search.strip()
    key = _text(search_key(text)) or ""
    pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [f"(name_key LIKE {p(pattern)} ESCAPE '\\' OR external_id = {p(_text(text))})"]
