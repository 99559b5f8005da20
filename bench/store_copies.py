"""Growing a benchmark store past what is ingested for real: each backend copies a block of
talks and customers inside its database (INSERT ... SELECT with shifted ids, times and
documents), and the throwaway PostgreSQL databases the benchmarks use.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]

from bench.talk_layout import (
    CUSTOMER_BASE,
    Layout,
)

POSTGRES_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


class Backend(Protocol):
    name: str
    url: str

    async def copy_block(self, layout: Layout, b: int, first: int, stop: int) -> None:
        """Rows of block b's talks at positions first..stop-1, and of block b's customers
        (those not there yet), copied from block 0."""
        ...

    async def after_fill(self) -> str | None:
        """What the backend does on its own after a bulk load, if anything; says what."""
        ...

    async def copied_rows(self, talk_ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """(customer_id, created_us, tracking_number, external_protocol, doc) by talk id."""
        ...

    async def customer_docs(self, ids: Sequence[int]) -> dict[int, str]: ...

    async def size_bytes(self) -> int: ...

    async def plan(self, customer_id: int) -> list[str]:
        """The query plan of the store's customerId page query."""
        ...


_SQLITE_COPY_TALKS = """
INSERT INTO talks (id, customer_id, agent_id, queue_id, channel_id, tracking_number,
    external_protocol, created_us, status, was_success, is_critical, rank_finished,
    rank_message, rank_arrival, version, doc)
SELECT id, customer_id, agent_id, queue_id, channel_id, tracking_number, external_protocol,
    created_us, status, was_success, is_critical, rank_finished, rank_message, rank_arrival,
    version,
    json_set(doc, '$.id', id, '$.customer_id', customer_id,
        '$.created_at', strftime('%Y-%m-%dT%H:%M:%SZ', created_us / 1000000, 'unixepoch'),
        '$.tracking_number', tracking_number, '$.external_protocol', external_protocol,
        '$.finished_at', finished_at)
FROM (
    SELECT id + :ids AS id, customer_id + :customers AS customer_id, agent_id, queue_id,
        channel_id,
        strftime('%Y%m%d', (created_us + :micros) / 1000000, 'unixepoch') || (id + :ids)
            AS tracking_number,
        CASE WHEN external_protocol IS NULL THEN NULL ELSE 'PRT-' || (id + :ids) END
            AS external_protocol,
        created_us + :micros AS created_us, status, was_success, is_critical, rank_finished,
        rank_message + 10 * :ids AS rank_message, rank_arrival, version, doc,
        strftime('%Y-%m-%dT%H:%M:%SZ', json_extract(doc, '$.finished_at'),
            '+' || :seconds || ' seconds') AS finished_at
    FROM talks WHERE id >= :low AND id < :high ORDER BY id
)
"""


_SQLITE_COPY_CUSTOMERS = """
INSERT INTO customers (id, name, name_key, external_id, stub, version, doc)
SELECT id + :customers, name, name_key, external_id, stub, version,
    json_set(doc, '$.id', id + :customers)
FROM customers WHERE id >= :low AND id < :high ORDER BY id
ON CONFLICT (id) DO NOTHING
"""


# The statement SQLiteStore.talk_pages runs for `filter: {customerId}`.
_SQLITE_BY_CUSTOMER = (
    "SELECT NULL, created_us, id, doc FROM talks WHERE customer_id = ?"
    " ORDER BY created_us DESC, id DESC LIMIT ?"
)


class SQLiteBackend:
    """The embedded store's file; copies run on a connection of their own, store closed."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    async def copy_block(self, layout: Layout, b: int, first: int, stop: int) -> None:
        ids, customers, seconds = layout.shift(b)
        low = layout.talk_id(0)

        def work() -> None:
            with closing(self._connect()) as c:
                c.execute("BEGIN IMMEDIATE")
                c.execute(
                    _SQLITE_COPY_TALKS,
                    {
                        "ids": ids,
                        "customers": customers,
                        "micros": seconds * 1_000_000,
                        "seconds": seconds,
                        "low": low + first,
                        "high": low + stop,
                    },
                )
                c.execute(
                    _SQLITE_COPY_CUSTOMERS,
                    {
                        "customers": customers,
                        "low": CUSTOMER_BASE,
                        "high": CUSTOMER_BASE + layout.customers,
                    },
                )
                c.execute("COMMIT")

        await asyncio.to_thread(work)

    async def after_fill(self) -> str | None:
        return None

    async def copied_rows(self, talk_ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        marks = ",".join("?" * len(talk_ids))
        sql = (
            "SELECT id, customer_id, created_us, tracking_number, external_protocol, doc"  # noqa: S608
            f" FROM talks WHERE id IN ({marks})"
        )
        with closing(self._connect()) as c:
            rows = c.execute(sql, list(talk_ids)).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}

    async def customer_docs(self, ids: Sequence[int]) -> dict[int, str]:
        marks = ",".join("?" * len(ids))
        with closing(self._connect()) as c:
            rows = c.execute(
                f"SELECT id, doc FROM customers WHERE id IN ({marks})",  # noqa: S608
                list(ids),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    async def size_bytes(self) -> int:
        return sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()
        )

    async def plan(self, customer_id: int) -> list[str]:
        with closing(self._connect()) as c:
            rows = c.execute("EXPLAIN QUERY PLAN " + _SQLITE_BY_CUSTOMER, (customer_id, 21))
            return [str(r[3]) for r in rows]


_PG_COPY_TALKS = """
INSERT INTO talks (id, customer_id, agent_id, queue_id, channel_id, tracking_number,
    external_protocol, created_us, status, was_success, is_critical, rank_finished,
    rank_message, rank_arrival, version, doc)
SELECT n.id, n.customer_id, s.agent_id, s.queue_id, s.channel_id, n.tracking_number,
    n.external_protocol, n.created_us, s.status, s.was_success, s.is_critical,
    s.rank_finished, s.rank_message + 10 * $1, s.rank_arrival, s.version,
    -- json keeps the text as written, and has no json_set: the six fields are replaced
    -- in the text, each found by its key (keys are sorted, so "id" is followed by
    -- "initial_sender_channel"). The samples check afterwards proves the result.
    replace(replace(replace(replace(replace(replace(s.doc::text,
        '"id":' || s.id || ',"initial_sender_channel"',
        '"id":' || n.id || ',"initial_sender_channel"'),
        '"customer_id":' || s.customer_id || ',', '"customer_id":' || n.customer_id || ','),
        '"created_at":' || to_json(s.doc ->> 'created_at')::text,
        '"created_at":' || to_json(n.created_at)::text),
        '"tracking_number":' || to_json(s.tracking_number)::text,
        '"tracking_number":' || to_json(n.tracking_number)::text),
        '"external_protocol":' || coalesce(to_json(s.external_protocol)::text, 'null'),
        '"external_protocol":' || coalesce(to_json(n.external_protocol)::text, 'null')),
        '"finished_at":' || coalesce(to_json(s.doc ->> 'finished_at')::text, 'null'),
        '"finished_at":' || coalesce(to_json(n.finished_at)::text, 'null'))::json
FROM talks AS s CROSS JOIN LATERAL (
    SELECT s.id + $1 AS id, s.customer_id + $2 AS customer_id, s.created_us + $3 AS created_us,
        to_char(to_timestamp((s.created_us + $3) / 1000000) AT TIME ZONE 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at,
        to_char(to_timestamp((s.created_us + $3) / 1000000) AT TIME ZONE 'UTC', 'YYYYMMDD')
            || (s.id + $1) AS tracking_number,
        CASE WHEN s.external_protocol IS NULL THEN NULL ELSE 'PRT-' || (s.id + $1) END
            AS external_protocol,
        to_char(((s.doc ->> 'finished_at')::timestamptz + make_interval(secs => $3 / 1000000))
            AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished_at
) AS n
WHERE s.id >= $4 AND s.id < $5 ORDER BY s.id
"""


_PG_COPY_CUSTOMERS = """
INSERT INTO customers (id, name, name_key, external_id, stub, version, doc)
SELECT id + $1, name, name_key, external_id, stub, version,
    replace(doc::text, '"id":' || id || ',"is_active"',
        '"id":' || (id + $1) || ',"is_active"')::json
FROM customers WHERE id >= $2 AND id < $3 ORDER BY id
ON CONFLICT (id) DO NOTHING
"""


# The statement PostgresStore.talk_pages runs for `filter: {customerId}`.
_PG_BY_CUSTOMER = (
    "SELECT NULL, created_us, id, doc FROM talks WHERE customer_id = {customer}"
    " ORDER BY created_us DESC, id DESC LIMIT 21"
)


class PostgresBackend:
    """A throwaway database on the PostgreSQL server."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url

    async def _connect(self) -> Any:
        return await asyncpg.connect(self.url)

    async def copy_block(self, layout: Layout, b: int, first: int, stop: int) -> None:
        ids, customers, seconds = layout.shift(b)
        low = layout.talk_id(0)
        c = await self._connect()
        try:
            async with c.transaction():
                await c.execute(
                    _PG_COPY_TALKS, ids, customers, seconds * 1_000_000, low + first, low + stop
                )
                await c.execute(
                    _PG_COPY_CUSTOMERS, customers, CUSTOMER_BASE, CUSTOMER_BASE + layout.customers
                )
        finally:
            await c.close()

    async def after_fill(self) -> str | None:
        # Autovacuum would analyze the tables within a minute or so of a bulk load; doing
        # it now measures the settled state instead of racing the daemon.
        c = await self._connect()
        try:
            await c.execute("VACUUM ANALYZE talks, customers")
        finally:
            await c.close()
        return "VACUUM ANALYZE talks, customers (what autovacuum does after a bulk load)"

    async def copied_rows(self, talk_ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        c = await self._connect()
        try:
            rows = await c.fetch(
                "SELECT id, customer_id, created_us, tracking_number, external_protocol,"
                " doc::text FROM talks WHERE id = ANY($1::bigint[])",
                list(talk_ids),
            )
        finally:
            await c.close()
        return {r[0]: tuple(r[1:]) for r in rows}

    async def customer_docs(self, ids: Sequence[int]) -> dict[int, str]:
        c = await self._connect()
        try:
            rows = await c.fetch(
                "SELECT id, doc::text FROM customers WHERE id = ANY($1::bigint[])", list(ids)
            )
        finally:
            await c.close()
        return {r[0]: r[1] for r in rows}

    async def size_bytes(self) -> int:
        c = await self._connect()
        try:
            return int(await c.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await c.close()

    async def plan(self, customer_id: int) -> list[str]:
        c = await self._connect()
        try:
            rows = await c.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
                + _PG_BY_CUSTOMER.format(customer=int(customer_id))
            )
        finally:
            await c.close()
        return [str(r[0]) for r in rows]


async def create_databases(*names: str) -> list[str]:
    c = await asyncpg.connect(POSTGRES_DSN)
    try:
        for name in names:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await c.execute(f'CREATE DATABASE "{name}"')
        version = str(await c.fetchval("SHOW server_version"))
    finally:
        await c.close()
    print(f"postgres: server {version}, throwaway databases {', '.join(names)}", flush=True)
    base, _, _ = POSTGRES_DSN.rpartition("/")
    return [f"{base}/{name}" for name in names]


async def drop_databases(*names: str) -> None:
    c = await asyncpg.connect(POSTGRES_DSN)
    try:
        for name in names:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await c.close()
    print(f"postgres: dropped {', '.join(names)}", flush=True)
