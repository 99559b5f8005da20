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
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from bench.progress import Progress
from bench.store_copies import (
    Backend,
    PostgresBackend,
    SQLiteBackend,
    create_databases,
    drop_databases,
)
from bench.talk_layout import (
    AGENTS,
    TALKS_PER_CUSTOMER,
    Layout,
    canonical,
    micros,
    talk_payloads,
)
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
GOAL = 1.5  # customerId latency at 1M within 1.5x of 10k


KEY = "tgk_bench_backends"

NODE = "edges { node { id createdAt customer { name } } }"
LATEST = f"query Latest {{ talks(first: 20) {{ {NODE} }} }}"
BY_CUSTOMER = (
    f"query ByCustomer($c: ID!) {{ talks(first: 20, filter: {{customerId: $c}}) {{ {NODE} }} }}"
)
HEALTHZ = "/healthz"


# -- the talks ------------------------------------------------------------------------------


# -- progress -------------------------------------------------------------------------------


# -- backends -------------------------------------------------------------------------------


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
