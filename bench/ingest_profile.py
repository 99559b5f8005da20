"""Ingest figures alone: `talkgate ingest`, webhook deliveries, PostgreSQL round trips.

Run: `.venv/bin/python -m bench.ingest_profile PART... [--talks N] [--seconds S]`, PART
one or more of:

- `cli`: `talkgate ingest` of N NDJSON talks (default 100k) into an empty SQLite file, and
  the parse-only floor on the same file, as `bench.http_floor` measures them (talks/s, peak
  RSS polled from /proc);
- `webhook`: deliveries/s of the fixture payload from wrk (bench.ruler), 8 connections,
  `talkgate serve` on SQLite against the read-the-body route of `bench.http_floor`'s floor;
  floor and gateway runs alternate `--rounds` times and each ratio is of back-to-back runs;
- `postgres`: statements (asyncpg calls, each one round trip) per talk for 500-talk batches
  of `Ingestor.ingest_many` into an empty PostgreSQL database, new talks and then the same
  talks again advanced by one message, and talks/s of each;
- `profile`: cProfile of `Ingestor.ingest_many` on SQLite in this process (batches of 500),
  the top functions by cumulative and own time.

It prints figures and never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from pydantic import SecretStr

from bench.floor_server import FLOOR_DB_ENV
from bench.http_floor import bench_cli_ingest, fill
from bench.processes import clean_env, gateway_env, start, wait_ready
from bench.ruler import Wrk
from bench.store_copies import POSTGRES_DSN
from bench.talk_layout import Layout, talk_payloads
from bench.workloads import FILL, webhook_load
from gateway.ingest.ingestor import Body, Ingestor
from gateway.settings import Settings
from gateway.storage import open_store

BATCH = 500
LAYOUT = Layout(block=10_000)


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url, secret_key=SecretStr("x" * 32))


def _bodies(first: int, stop: int) -> list[Body]:
    return [Body(orjson.dumps(t), "bench") for t in talk_payloads(LAYOUT, first, stop)]


# -- cli --------------------------------------------------------------------------------------


def run_cli(directory: Path, talks: int) -> None:
    cli, floor = bench_cli_ingest(directory, talks, f"sqlite:///{directory / 'ingest.db'}")
    print(
        f"cli: talkgate ingest of {cli.rows:,} talks: {cli.rate:,.0f} talks/s"
        f" ({cli.seconds:.1f}s), peak RSS with its workers {cli.peak_mib:,.0f} MiB;"
        f" parse-only floor {floor.rate:,.0f} talks/s, {floor.peak_mib:,.0f} MiB; floor/gateway"
        f" {floor.rate / cli.rate:.1f}x",
        flush=True,
    )


# -- webhook ----------------------------------------------------------------------------------


async def run_webhook(directory: Path, seconds: float, rounds: int) -> None:
    db = directory / "gateway.db"
    url = f"sqlite:///{db}"
    await fill(url, FILL)
    logs = directory / "gateway.log", directory / "floor.log"
    gateway = start(
        "gateway",
        [sys.executable, "-m", "gateway.cli", "serve"],
        gateway_env(url),
        logs[0],
    )
    floor = start(
        "floor",
        [sys.executable, "-m", "bench.http_floor", "--serve-floor"],
        clean_env() | {FLOOR_DB_ENV: url},
        logs[1],
    )
    ratios: list[float] = []
    wrk = Wrk(directory=directory)
    try:
        await wait_ready(gateway, logs[0])
        await wait_ready(floor, logs[1])
        for n in range(rounds):
            body = wrk.run(
                floor.base,
                floor.process.pid,
                webhook_load(50_000_000, gateway=False),
                seconds,
            )
            hook = wrk.run(
                gateway.base,
                gateway.process.pid,
                webhook_load(60_000_000, gateway=True),
                seconds,
            )
            ratio = body.rate / hook.rate
            ratios.append(ratio)
            print(
                f"webhook round {n + 1}: read-body floor {body.rate:,.0f}/s p50"
                f" {body.p50_ms:.2f} ms, {body.server_cpu_per_request * 1e6:,.0f} us CPU each;"
                f" gateway {hook.rate:,.0f}/s p50 {hook.p50_ms:.2f} ms,"
                f" {hook.server_cpu_per_request * 1e6:,.0f} us CPU each, {hook.bad} refused;"
                f" floor/gateway {ratio:.2f}x",
                flush=True,
            )
    finally:
        gateway.stop()
        floor.stop()
    print(f"webhook: floor/gateway median {statistics.median(ratios):.2f}x", flush=True)


# -- postgres ---------------------------------------------------------------------------------


_CALLS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


@contextmanager
def counted_calls() -> Iterator[Counter[str]]:
    """Count asyncpg connection calls (each one round trip) while the block runs."""
    counts: Counter[str] = Counter()
    originals = {name: getattr(asyncpg.Connection, name) for name in _CALLS}

    def wrap(name: str, original: Any) -> Any:
        async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await original(self, *args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(asyncpg.Connection, name, wrap(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(asyncpg.Connection, name, original)


def _advanced(bodies: list[Body]) -> list[Body]:
    """The same talks, each with one more message: every one wins over the stored one."""
    out = []
    for body in bodies:
        talk = orjson.loads(body.raw)
        extra = dict(talk["talk_histories"][-1])
        extra["id"] = talk["id"] * 10 + 9
        talk["talk_histories"].append(extra)
        out.append(Body(orjson.dumps(talk), "bench"))
    return out


async def run_postgres(talks: int) -> None:
    admin = await asyncpg.connect(POSTGRES_DSN)
    name = "talkgate_ingest_profile"
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    url = POSTGRES_DSN.rsplit("/", 1)[0] + "/" + name
    store = open_store(url)
    await store.open()
    try:
        ingestor = Ingestor(store, _settings(url).zone)
        new = [_bodies(f, min(f + BATCH, talks)) for f in range(0, talks, BATCH)]
        for label, batches in (("new talks", new), ("advanced", [_advanced(b) for b in new])):
            began = time.perf_counter()
            with counted_calls() as counts:
                for bodies in batches:
                    await ingestor.ingest_many(bodies)
            seconds = time.perf_counter() - began
            detail = ", ".join(f"{k} {v / talks:.2f}" for k, v in sorted(counts.items()))
            print(
                f"postgres {label}: {sum(counts.values()) / talks:.2f} statements per talk"
                f" ({detail}); {talks / seconds:,.0f} talks/s ({talks:,} in {seconds:.1f}s)",
                flush=True,
            )
    finally:
        await store.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.close()


# -- profile ----------------------------------------------------------------------------------


async def run_profile(directory: Path, talks: int) -> None:
    url = f"sqlite:///{directory / 'profile.db'}"
    store = open_store(url)
    await store.open()
    batches = [_bodies(f, min(f + BATCH, talks)) for f in range(0, talks, BATCH)]
    try:
        ingestor = Ingestor(store, _settings(url).zone)
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for bodies in batches:
            await ingestor.ingest_many(bodies)
        profiler.disable()
        seconds = time.perf_counter() - began
    finally:
        await store.close()
    print(f"profile: {talks / seconds:,.0f} talks/s in process (profiled)", flush=True)
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_profile", description=__doc__)
    parser.add_argument("parts", nargs="+", choices=("cli", "webhook", "postgres", "profile"))
    parser.add_argument("--talks", type=int, default=100_000, help="cli: NDJSON talks")
    parser.add_argument("--seconds", type=float, default=5, help="webhook: seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="webhook: floor/gateway pairs")
    parser.add_argument("--pg-talks", type=int, default=5_000, help="postgres: talks")
    parser.add_argument("--profile-talks", type=int, default=10_000, help="profile: talks")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="talkgate-ingest-") as tmp:
        directory = Path(tmp)
        for part in args.parts:
            if part == "cli":
                run_cli(directory, args.talks)
            elif part == "webhook":
                asyncio.run(run_webhook(directory, args.seconds, args.rounds))
            elif part == "postgres":
                asyncio.run(run_postgres(args.pg_talks))
            else:
                asyncio.run(run_profile(directory, args.profile_talks))


if __name__ == "__main__":
    main()
