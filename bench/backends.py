"""Ingest rate and `talks` latency on SQLite and PostgreSQL, at 10k, 100k and 1M cached talks.

Run: `.venv/bin/python -m bench.backends [--sizes 10000,100000,1000000] [--quick]`
(`--quick`: 10k and 100k only). It prints figures and never asserts; PostgreSQL must answer
on 127.0.0.1:5432 (user postgres, trust), or set BENCH_POSTGRES_DSN to another server's
maintenance database. Two throwaway databases (the store and an empty one) are created
there and dropped at the end; the SQLite files live in a temporary directory.

How the data is made. Talks come from `gateway.demo.sample_talks` (PipeRun's example),
rewritten so that talk i has its own id, message ids, time (one talk every 30 s) and
customer (20 talks per customer), and one of 40 agents. The first block of talks (10k) is
ingested for real through `Ingestor.ingest_many` in batches of 500, as `talkgate ingest`
does; that is the ingest rate at 10k. Larger sizes are filled by copying that block inside
each database (INSERT ... SELECT with shifted ids, customer ids and times, the documents'
fields rewritten to match), then the last 2,000 talks are ingested for real again: the
ingest rate into a store that big. The copies cover `talks` and `customers`, the tables
the measured queries read; messages, events and raw deliveries exist only for the talks
ingested for real. Samples of the copied rows (documents byte for byte, and the indexed
columns) are checked against what the store writes when it ingests the same talk.

Read latency: two GraphQL queries through the app in process (httpx.ASGITransport, a key
with talks:read), REQUESTS times each: the newest 20 talks, and the newest 20 of one
customer picked at random each time. The baseline is the same request sent, in turn with
each measured one, to a second app on the same backend's empty store, so every figure is
also a ratio to work measured at the same moment on this shared, noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from gateway.demo import numbered_talk, sample_talks
from gateway.http.app import create_app
from gateway.ingest.ingestor import Body, BodyRejected, Ingestor
from gateway.ingest.validation import validate_talks
from gateway.settings import ApiKeyEntry, Settings
from gateway.storage import open_store

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
BLOCK = 10_000  # talks ingested for real first, then copied
PROBE = 2_000  # talks ingested for real on top of the copies, at each larger size
BATCH = 500  # talks per ingest_many call: `talkgate ingest --batch` default
REQUESTS = 300  # per query, per backend and size
WARM_UP = 20
PROGRESS_S = 3.0
GOAL = 1.5  # customerId latency at 1M within 1.5x of 10k

TALK_BASE = 3_000_000
CUSTOMER_BASE = 7_000_000
AGENT_BASE = 9_100
AGENTS = 40
TALKS_PER_CUSTOMER = 20
STEP_S = 30
START = datetime(2024, 1, 1, tzinfo=UTC)
LOCAL = ZoneInfo("America/Sao_Paulo")  # the zone PipeRun's naive datetimes are in
NAMES = ("JONAS", "MARIA SILVA", "JOÃO PEREIRA", "ANA COSTA", "PEDRO SOUZA", "LUCIA ALVES")

POSTGRES_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
KEY = "tgk_bench_backends"

NODE = "edges { node { id createdAt customer { name } } }"
LATEST = f"query Latest {{ talks(first: 20) {{ {NODE} }} }}"
BY_CUSTOMER = (
    f"query ByCustomer($c: ID!) {{ talks(first: 20, filter: {{customerId: $c}}) {{ {NODE} }} }}"
)
HEALTHZ = "/healthz"


# -- the talks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """Who talk number i (0-based) is: its id, customer and time.

    Talks come in blocks of `block`; block b is block 0 shifted by b * block ids, by
    b * customers customer ids and by b * block * STEP_S seconds, which is exactly what the
    SQL copies do, so a copied talk is the talk the generator would have made."""

    block: int

    @property
    def customers(self) -> int:
        return max(self.block // TALKS_PER_CUSTOMER, 1)

    def talk_id(self, i: int) -> int:
        return TALK_BASE + i

    def customer_id(self, i: int) -> int:
        b, j = divmod(i, self.block)
        # 7907 is prime: position j walks over all customers, 20 talks each, spread in time.
        return CUSTOMER_BASE + b * self.customers + (j * 7907) % self.customers

    def created(self, i: int) -> datetime:
        j = i % self.block
        return START + timedelta(seconds=i * STEP_S + (j * 7919) % 60)

    def shift(self, b: int) -> tuple[int, int, int]:
        """(id, customer id, seconds) added to block 0 to make block b."""
        return b * self.block, b * self.customers, b * self.block * STEP_S


def talk_payloads(layout: Layout, start: int, stop: int) -> list[dict[str, Any]]:
    """PipeRun payloads for talks start..stop-1; every field the store indexes or the talk's
    document holds depends on i alone (and on i % block for the varied flags)."""
    talks = sample_talks(stop - start)
    for i, talk in enumerate(talks, start=start):
        j = i % layout.block
        talk_id = layout.talk_id(i)
        customer_id = layout.customer_id(i)
        agent_id = AGENT_BASE + j % AGENTS
        created = layout.created(i)
        numbered_talk(
            talk, j, talk_id=talk_id, customer_id=customer_id, agent_id=agent_id, created=created
        )
        local_customer = (customer_id - CUSTOMER_BASE) % layout.customers
        talk["customer"].update(
            id=customer_id, name=f"{NAMES[local_customer % len(NAMES)]} {local_customer}"
        )
        login = f"agent{agent_id}"
        talk["talk_histories"][2]["user"].update(
            id=agent_id, login=login, name=f"Agent {agent_id}", email=f"{login}@example.com"
        )
        talk["talk_histories"][2]["user_id"] = agent_id
    return talks


def canonical(doc: Any) -> str:
    """A document as the stores write it."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1_000_000)


# -- progress -------------------------------------------------------------------------------


class Progress:
    """A line every few seconds while something long runs."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.start = self.last = time.perf_counter()
        self.shown = -1

    def update(self, done: int, *, final: bool = False, busy: float | None = None) -> None:
        """`busy`: seconds spent in the measured work, when the rate should count only it."""
        now = time.perf_counter()
        if (final and done == self.shown) or (not final and now - self.last < PROGRESS_S):
            return
        self.last = now
        self.shown = done
        elapsed = now - self.start
        rate = done / max(elapsed if busy is None else busy, 1e-9)
        what = "/s" if busy is None else "/s in ingest_many"
        print(
            f"  {self.label}: {done:,}/{self.total:,} talks  {rate:,.0f}{what}  {elapsed:5.1f}s",
            flush=True,
        )


# -- backends -------------------------------------------------------------------------------


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


# -- filling --------------------------------------------------------------------------------


@dataclass
class Filled:
    """Where a backend's store stands."""

    talks: int = 0
    ingest_s: float = 0.0
    ingested: int = 0


async def ingest_real(settings: Settings, layout: Layout, start: int, stop: int) -> float:
    """Ingest talks start..stop-1 through Ingestor.ingest_many in batches; seconds spent in it
    (building the payloads is not counted)."""
    store = open_store(settings.database_url)
    await store.open()
    spent = 0.0
    progress = Progress("ingest", stop - start)
    try:
        ingestor = Ingestor(store, settings.zone)
        for low in range(start, stop, BATCH):
            high = min(low + BATCH, stop)
            bodies = [
                Body(orjson.dumps(talk), f"bench:{i}")
                for i, talk in enumerate(talk_payloads(layout, low, high), start=low)
            ]
            began = time.perf_counter()
            outcomes = await ingestor.ingest_many(bodies)
            spent += time.perf_counter() - began
            bad = [o for o in outcomes if isinstance(o, BodyRejected) or o.duplicate]
            if bad:
                raise SystemExit(f"invalid run: {len(bad)} talks not ingested: {bad[0]!r}")
            progress.update(high - start, busy=spent)
        progress.update(stop - start, final=True, busy=spent)
    finally:
        await store.close()
    return spent


async def copy_talks(backend: Backend, layout: Layout, start: int, stop: int) -> None:
    """Rows of talks start..stop-1, copied from block 0 one block at a time."""
    progress = Progress("copy", stop - start)
    low = start
    while low < stop:
        b, first = divmod(low, layout.block)
        high = min((b + 1) * layout.block, stop)
        await backend.copy_block(layout, b, first, high - b * layout.block)
        progress.update(high - start)
        low = high
    progress.update(stop - start, final=True)


async def check_copies(
    backend: Backend, settings: Settings, layout: Layout, start: int, stop: int
) -> int:
    """Compare sampled copied rows with the rows the store writes for the same talks."""
    rng = random.Random(stop)
    sample = sorted(rng.sample(range(start, stop), min(50, stop - start)))
    stored = await backend.copied_rows([layout.talk_id(i) for i in sample])
    customers = await backend.customer_docs(sorted({layout.customer_id(i) for i in sample}))
    payloads = {i: talk_payloads(layout, i, i + 1)[0] for i in sample}
    for i in sample:
        [talk] = validate_talks(payloads[i], zone=settings.zone)
        doc = talk.doc.item
        expected = (
            doc["customer_id"],
            micros(doc["created_at"]),
            doc["tracking_number"],
            doc.get("external_protocol"),
            canonical(doc),
        )
        if stored.get(talk.id) != expected:
            raise SystemExit(
                f"invalid copy of talk {talk.id}:\n stored   {stored.get(talk.id)}\n"
                f" expected {expected}"
            )
        assert talk.customer is not None
        if customers.get(talk.customer.id) != canonical(talk.customer.item):
            raise SystemExit(f"invalid copy of customer {talk.customer.id}")
    return len(sample)


async def grow(
    backend: Backend, settings: Settings, layout: Layout, filled: Filled, target: int
) -> None:
    """Bring the store to `target` talks; record the ingest rate of the talks ingested last."""
    if filled.talks == 0:
        real = min(target, layout.block)
        print(f"  {backend.name}: ingesting {real:,} talks for real", flush=True)
        filled.ingest_s = await ingest_real(settings, layout, 0, real)
        filled.ingested = real
        filled.talks = real
        if target == real:
            return
    probe = min(PROBE, target - filled.talks)
    copy_to = target - probe
    if copy_to > filled.talks:
        print(
            f"  {backend.name}: copying talks {filled.talks:,}..{copy_to:,} from the first block",
            flush=True,
        )
        await copy_talks(backend, layout, filled.talks, copy_to)
        checked = await check_copies(backend, settings, layout, filled.talks, copy_to)
        print(f"  {backend.name}: {checked} sampled copies match what ingest writes", flush=True)
        done = await backend.after_fill()
        if done:
            print(f"  {backend.name}: {done}", flush=True)
        filled.talks = copy_to
    print(f"  {backend.name}: ingesting the last {probe:,} talks for real", flush=True)
    filled.ingest_s = await ingest_real(settings, layout, filled.talks, target)
    filled.ingested = probe
    filled.talks = target


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    p50: float
    p99: float

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        return cls(statistics.median(samples), statistics.quantiles(samples, n=100)[98])


@dataclass(frozen=True, slots=True)
class Reads:
    """Latencies at one size; the empty_ ones are the same requests, sent in turn with them,
    to the same backend's empty store: the baseline, measured at the same moments."""

    latest: Latency
    by_customer: Latency
    empty_latest: Latency
    empty_by_customer: Latency
    healthz: Latency

    @property
    def latest_x_empty(self) -> float:
        return self.latest.p50 / self.empty_latest.p50

    @property
    def by_customer_x_empty(self) -> float:
        return self.by_customer.p50 / self.empty_by_customer.p50


def bench_settings(url: str) -> Settings:
    """One key with talks:read; the rate limit out of the way of a few hundred requests."""
    return Settings(
        _env_file=None,
        database_url=url,
        api_keys=(
            ApiKeyEntry(
                name="bench",
                sha256=hashlib.sha256(KEY.encode()).hexdigest(),
                scopes=frozenset({"talks:read"}),
            ),
        ),
        secret_key=SecretStr("bench-secret-key-4d8a1c9e7b0f"),
        rate_limit_per_minute=10_000_000,
        log_level="WARNING",
    )


class Reader:
    """GraphQL requests to one app in process, timed, their answers checked."""

    def __init__(self, client: httpx.AsyncClient, talks: int) -> None:
        self.client = client
        self.talks = talks
        self.samples: dict[str, list[float]] = {}

    async def ask(self, kind: str, body: dict[str, Any] | None, *, keep: bool) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        began = time.perf_counter()
        if body is None:
            response = await self.client.get(HEALTHZ)
        else:
            response = await self.client.post("/graphql", json=body, headers=headers)
        elapsed = time.perf_counter() - began
        response.raise_for_status()
        if body is not None:
            answer = response.json()
            edges = (answer.get("data") or {}).get("talks", {}).get("edges")
            if answer.get("errors") or edges is None or bool(edges) != bool(self.talks):
                raise SystemExit(f"invalid run: {kind} answered {str(answer)[:300]}")
            if any(e["node"]["customer"] is None for e in edges):
                raise SystemExit(f"invalid run: {kind} gave a talk without its customer")
        if keep:
            self.samples.setdefault(kind, []).append(elapsed)

    def latency(self, kind: str) -> Latency:
        return Latency.of(self.samples[kind])


async def measure_reads(
    settings: Settings, empty_settings: Settings, layout: Layout, talks: int
) -> Reads:
    """p50/p99 of the two queries on the store and on the empty store, request by request in
    turn (who goes first alternates), and of /healthz; all through the app in process."""
    rng = random.Random(talks)
    async with AsyncExitStack() as stack:
        readers = []
        for current, count in ((settings, talks), (empty_settings, 0)):
            manager = await stack.enter_async_context(LifespanManager(create_app(current)))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
                )
            )
            readers.append(Reader(client, count))
        store, empty = readers
        for n in range(WARM_UP + REQUESTS):
            keep = n >= WARM_UP
            customer = layout.customer_id(rng.randrange(talks))
            by_customer = {"query": BY_CUSTOMER, "variables": {"c": str(customer)}}
            for reader in readers if n % 2 else readers[::-1]:
                await reader.ask("latest", {"query": LATEST}, keep=keep)
            for reader in readers if n % 2 else readers[::-1]:
                await reader.ask("by_customer", by_customer, keep=keep)
            await store.ask("healthz", None, keep=keep)
    return Reads(
        store.latency("latest"),
        store.latency("by_customer"),
        empty.latency("latest"),
        empty.latency("by_customer"),
        store.latency("healthz"),
    )


# -- the run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    backend: str
    talks: int
    ingest_rate: float
    ingest_note: str
    reads: Reads
    store_bytes: int


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def short(talks: int) -> str:
    if talks % 1_000_000 == 0:
        return f"{talks // 1_000_000}M"
    return f"{talks // 1000}k" if talks % 1000 == 0 else f"{talks:,}"


def print_table(rows: list[Row]) -> None:
    first = rows[0].talks
    base = {r.backend: r.reads for r in rows if r.talks == first}
    label = short(first)
    print()
    print(
        "latency in ms, p50 and p99 of the request; x empty: p50 over the p50 of the same"
        " request to the empty store, sent in turn with it;"
        f" x{label}: customerId latency over the same at {label}"
        f" (p50, p99, and x empty over x empty at {label}, which cancels the machine's drift)"
    )
    header = (
        f"{'backend':<9}{'talks':>10}{'ingest/s':>9} |{'latest p50':>11}{'p99':>8}{'x empty':>8}"
        f" |{'cust. p50':>10}{'p99':>8}{'x empty':>8} |{f'x{label} p50':>9}"
        f"{f'x{label} p99':>9}{f'x{label} xe':>9} |{'store MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ten = base[r.backend]
        reads = r.reads
        print(
            f"{r.backend:<9}{r.talks:>10,}{r.ingest_rate:>9,.0f} |{ms(reads.latest.p50):>11}"
            f"{ms(reads.latest.p99):>8}{reads.latest_x_empty:>7.2f}x"
            f" |{ms(reads.by_customer.p50):>10}{ms(reads.by_customer.p99):>8}"
            f"{reads.by_customer_x_empty:>7.2f}x"
            f" |{reads.by_customer.p50 / ten.by_customer.p50:>8.2f}x"
            f"{reads.by_customer.p99 / ten.by_customer.p99:>8.2f}x"
            f"{reads.by_customer_x_empty / ten.by_customer_x_empty:>8.2f}x"
            f" |{r.store_bytes / 2**20:>9,.0f}"
        )
    print()
    print("baselines, measured in turn with each row (ms, p50 / p99):")
    for r in rows:
        reads = r.reads
        print(
            f"  {r.backend:<9}{r.talks:>10,}  empty store: latest {ms(reads.empty_latest.p50)}"
            f" / {ms(reads.empty_latest.p99)}, customerId {ms(reads.empty_by_customer.p50)}"
            f" / {ms(reads.empty_by_customer.p99)};  /healthz {ms(reads.healthz.p50)}"
            f" / {ms(reads.healthz.p99)}"
        )
    print()
    print(f"ingest: talks/s through Ingestor.ingest_many in batches of {BATCH}; PostgreSQL/SQLite")
    by_size: dict[int, dict[str, Row]] = {}
    for r in rows:
        by_size.setdefault(r.talks, {})[r.backend] = r
    for talks, pair in by_size.items():
        if {"sqlite", "postgres"} <= pair.keys():
            lite, pg = pair["sqlite"], pair["postgres"]
            print(
                f"  {talks:>10,} talks ({lite.ingest_note}): sqlite {lite.ingest_rate:,.0f}/s,"
                f" postgres {pg.ingest_rate:,.0f}/s, ratio {pg.ingest_rate / lite.ingest_rate:.2f}"
            )
    last = rows[-1].talks
    print()
    for name, ten in base.items():
        top = next(r.reads for r in rows if r.backend == name and r.talks == last)
        raw = top.by_customer.p50 / ten.by_customer.p50
        steady = top.by_customer_x_empty / ten.by_customer_x_empty
        verdict = "within" if max(raw, steady) <= GOAL else "NOT within"
        print(
            f"goal ({name}): customerId p50 at {short(last)} over {label}: {raw:.2f}x"
            f" ({steady:.2f}x against the empty-store baseline), {verdict} {GOAL}x"
        )


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


async def run(sizes: Sequence[int]) -> None:
    layout = Layout(block=min(sizes[0], BLOCK))
    database = f"talkgate_bench_{os.getpid()}"
    started = time.perf_counter()
    print(
        f"backends: sizes {', '.join(f'{s:,}' for s in sizes)}; {REQUESTS} requests per query"
        f" after {WARM_UP} warm-up; SQLite {sqlite3.sqlite_version}, Python"
        f" {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    print(
        f"data: the first {layout.block:,} talks ingested for real, then copies of them made"
        f" inside each database (talks and customers, shifted ids/customers/times), then the"
        f" last {PROBE:,} of each larger size ingested for real; {TALKS_PER_CUSTOMER} talks per"
        f" customer, {AGENTS} agents",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="talkgate-bench-") as directory:
        names = (database, database + "_empty")
        pg_url, pg_empty_url = await create_databases(*names)
        try:
            backends: list[Backend] = [
                SQLiteBackend(Path(directory) / "talkgate.db"),
                PostgresBackend(pg_url),
            ]
            settings = {b.name: bench_settings(b.url) for b in backends}
            empty_settings = {
                "sqlite": bench_settings(f"sqlite:///{Path(directory) / 'empty.db'}"),
                "postgres": bench_settings(pg_empty_url),
            }
            filled = {b.name: Filled() for b in backends}
            rows: list[Row] = []
            for size in sizes:
                for b in backends:
                    print(f"{b.name}: {size:,} talks", flush=True)
                    state = filled[b.name]
                    await grow(b, settings[b.name], layout, state, size)
                    note = (
                        f"{state.ingested:,} from empty"
                        if state.ingested == size
                        else f"last {state.ingested:,}"
                    )
                    print(f"  {b.name}: reads", flush=True)
                    reads = await measure_reads(
                        settings[b.name], empty_settings[b.name], layout, size
                    )
                    rate = state.ingested / state.ingest_s
                    rows.append(Row(b.name, size, rate, note, reads, await b.size_bytes()))
                    print(
                        f"  {b.name}: customerId p50 {ms(reads.by_customer.p50)} ms"
                        f" (empty store {ms(reads.empty_by_customer.p50)} ms),"
                        f" peak RSS {peak_rss_mib():,.0f} MiB,"
                        f" {time.perf_counter() - started:,.0f}s so far",
                        flush=True,
                    )
            print_table(rows)
            print()
            for b in backends:
                customer = layout.customer_id(sizes[-1] // 2)
                print(f"plan of the customerId page query, {b.name}, {sizes[-1]:,} talks:")
                for line in await b.plan(customer):
                    print(f"  {line}")
        finally:
            await drop_databases(*names)
    print()
    print(
        f"peak RSS of this process: {peak_rss_mib():,.0f} MiB (the PostgreSQL server's memory"
        f" is not in it); wall time {time.perf_counter() - started:,.0f}s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in FULL_SIZES),
        help="talk counts, comma separated (default: 10000,100000,1000000)",
    )
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    sizes = tuple(sorted(set(sizes)))
    if not sizes or sizes[0] <= 0:
        parser.error("sizes must be positive")
    asyncio.run(run(sizes))


if __name__ == "__main__":
    main()
