"""The gateway over HTTP against floors measured in the same run on the same server stack.

Run: `.venv/bin/python -m bench.http_floor [--quick] [--postgres]` (`--quick`: fewer
requests and a 10k-talk `talkgate ingest` instead of 100k; about 2 minutes). It prints
figures and never asserts; each figure is shown as a ratio to its floor. `--postgres`: the
gateway, the rows floor and `talkgate ingest` use PostgreSQL (BENCH_POSTGRES_DSN, as in
bench.backends; two throwaway databases, dropped at the end) instead of SQLite files.

Servers are real processes on loopback, run the way `talkgate serve` runs (one process,
`uvicorn.run` with log_config=None, access_log=False, and uvicorn's `auto` loop and HTTP
implementation: uvloop and httptools when installed):

- the gateway: `talkgate serve` (`python -m gateway.cli serve`) on a store (a SQLite file,
  or a PostgreSQL database) pre-filled with FILL talks (PipeRun's example rewritten as in
  bench.backends: own ids, customers, times, 3 messages and 1 event each), ingested through
  `Ingestor.ingest_many`;
- the floor: `python -m bench.http_floor --serve-floor PORT`, a Starlette app in this module
  with two kinds of route. The bytes floor reads the request body and answers precomputed
  bytes, the gateway's own answer to that workload (so the same size). The rows floor opens
  the gateway's own store object on the same store, reads the same rows with the same
  store calls (`talk_pages` with its customers, `message_pages`, `events_by_talk`,
  `agents_by_id`) and answers them with orjson in the GraphQL answer's shape, no GraphQL.
  Its webhook route only reads the body.

The load is driven by wrk (bench/ruler.py: one thread, 8 connections, a Lua script sending
the workload's bodies in turn or numbered), for `plan.seconds` per run after a warm-up;
httpx only checks the answers first. Each workload runs in `plan.rounds` rounds in which
the floors and the gateway take turns, and each server's figures pool its rounds: the
machine's speed drifts over minutes, and every server then meets the same drift. Beside
each rate: wrk's latency, the server's and wrk's CPU time per request (from /proc), and
whether either was short of CPU (the ruler's check). Server RSS is VmHWM (the peak so far)
of each server process after the workload (under `--workers`, each worker's and the
supervisor's, summed). The machine is small and shared, hence ratios;
`--pin` puts the servers on CPU 0 and wrk on CPU 1.

Workloads: W1 `talks(first: 100)` with 15 fields (customer { id name } among them), cold
(every request a different `createdTo`, so no two answers are alike) and warm (one request
repeated; W1 gzip: the same asking `Accept-Encoding: gzip`, against the bytes floor sending
the gateway's gzip bytes); W2 1,000 talks as 10 pages of 100 following `endCursor`, 10
fields; W3 20 talks, each with `histories(first: 50)` (3 messages each here: the fixture's),
`events`, `customer`, and `user` on each message. Ingest: webhook deliveries of the fixture
payload (gateway/demo/talk_114603.json, distinct ids) against the floor's read-the-body
route; and `talkgate ingest` of an NDJSON file into an empty store (rows/s, and the peak RSS
of that process with its worker processes, polled from /proc), against a floor process that
reads and parses the same file with orjson."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from gzip import decompress as gunzip
from pathlib import Path

import httpx
import orjson
from pydantic import SecretStr

from bench.floor_server import (
    FLOOR_DB_ENV,
    serve_floor,
)
from bench.processes import (
    KEY,
    Server,
    clean_env,
    gateway_env,
    proc_kib,
    start,
    tree_kib,
    wait_ready,
)
from bench.progress import Progress
from bench.report import (
    IngestRun,
    Line,
    print_summary,
)
from bench.ruler import CONNECTIONS, Load, Measure, Wrk, require_wrk
from bench.store_copies import create_databases, drop_databases
from bench.talk_layout import talk_payloads
from bench.workloads import (
    FILL,
    FUTURE,
    LAYOUT,
    W2,
    W3,
    body,
    cold_bodies,
    floor_load,
    graphql_load,
    numbered_to,
    substitute,
    warm_body,
    webhook_load,
)
from gateway.settings import Settings
from gateway.storage import open_store

WALK_PAGES = 10


@dataclass(frozen=True, slots=True)
class Plan:
    """Seconds per wrk run, rounds per workload, and the `talkgate ingest` file's size."""

    seconds: float
    rounds: int
    ingest_talks: int
    warm_s: float = 2.0
    # The parts run (`slug` of each workload's name, and "ingest"); None: all.
    only: frozenset[str] | None = None
    # `talkgate serve --workers N`: the gateway's processes (the floor stays one).
    workers: int = 1

    def runs(self, name: str) -> bool:
        return self.only is None or slug(name) in self.only


def slug(name: str) -> str:
    """A workload's name on the command line: "W1 warm" is w1-warm, "W2 page" w2."""
    return name.lower().removesuffix(" page").replace(" ", "-")


PARTS = ("w1-warm", "w1-gzip", "w1-cold", "w2", "w3", "webhook", "ingest")


FULL = Plan(seconds=5, rounds=3, ingest_talks=100_000)
QUICK = Plan(seconds=2, rounds=2, ingest_talks=10_000, warm_s=1.0)


# -- data -----------------------------------------------------------------------------------


async def fill(url: str, talks: int) -> None:
    from gateway.ingest.ingestor import Body, Ingestor

    settings = Settings(_env_file=None, database_url=url, secret_key=SecretStr("x" * 32))  # type: ignore[call-arg, unused-ignore]
    store = open_store(url)
    await store.open()
    try:
        ingestor = Ingestor(store, settings.zone)
        for first in range(0, talks, 500):
            bodies = [
                Body(orjson.dumps(t), "bench")
                for t in talk_payloads(LAYOUT, first, min(first + 500, talks))
            ]
            await ingestor.ingest_many(bodies)
    finally:
        await store.close()


def write_ndjson(path: Path, talks: int) -> None:
    progress = Progress("NDJSON", talks)
    with path.open("wb") as out:
        for first in range(0, talks, 2_000):
            for talk in talk_payloads(LAYOUT, first, min(first + 2_000, talks)):
                out.write(orjson.dumps(talk) + b"\n")
            progress.update(min(first + 2_000, talks))
    progress.update(talks, final=True)


# -- driving --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One server and what wrk sends it, in a workload."""

    label: str
    server: Server
    load: Load


def measure_rounds(wrk: Wrk, name: str, targets: Sequence[Target], plan: Plan) -> list[Measure]:
    """Each target `plan.rounds` times for `plan.seconds`, the targets taking turns in each
    round (after one warm-up run each in the first): on a shared machine whose speed drifts,
    every server then meets the same drift. Each target's runs are pooled."""
    pooled = [Measure() for _ in targets]
    for index in range(plan.rounds):
        for target, total in zip(targets, pooled, strict=True):
            pid = target.server.process.pid
            if index == 0:
                wrk.run(target.server.base, pid, target.load, plan.warm_s)
            got = wrk.run(target.server.base, pid, target.load, plan.seconds)
            got.peak_mib = target.server.peak_mib()
            total.add(got)
        print(
            f"    {name} round {index + 1}/{plan.rounds}: "
            + ", ".join(f"{t.label} {m.rate:,.0f}/s" for t, m in zip(targets, pooled, strict=True)),
            flush=True,
        )
    return pooled


# -- the run --------------------------------------------------------------------------------


def timed_child(argv: list[str], env: dict[str, str], rows: int, out: Path) -> IngestRun:
    """Run a process to the end; its wall time and peak RSS with its children's (workers),
    polled from /proc: the greater of its own VmHWM and the most its tree held at a poll.

    Not wait4's rusage: Linux carries the forking parent's high-water mark across exec."""
    began = time.perf_counter()
    with out.open("wb") as stdout:
        process = subprocess.Popen(argv, env=env, stdout=stdout, stderr=None)  # noqa: S603
        peak = 0
        while process.poll() is None:
            try:
                peak = max(peak, proc_kib(process.pid, "VmHWM"), tree_kib(process.pid))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.02)
    seconds = time.perf_counter() - began
    output = out.read_text().strip()
    if process.returncode:
        output += f" (exit status {process.returncode})"
    return IngestRun(rows, seconds, peak / 1024, output)


_PARSE_ONLY = """
import sys, orjson
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        if line.strip():
            orjson.loads(line)
            n += 1
print(f"parsed {n}")
"""


def bench_cli_ingest(directory: Path, talks: int, url: str) -> tuple[IngestRun, IngestRun]:
    path = directory / "talks.ndjson"
    print(f"  writing {talks:,} NDJSON talks", flush=True)
    write_ndjson(path, talks)
    size = path.stat().st_size
    print(f"  {path.name}: {size / 2**20:,.0f} MiB; parse-only floor", flush=True)
    floor = timed_child(
        [sys.executable, "-c", _PARSE_ONLY, str(path)], clean_env(), talks, directory / "p.out"
    )
    print(f"  floor: {floor.output}, {floor.rate:,.0f}/s; `talkgate ingest`:", flush=True)
    env = gateway_env(url)
    run = timed_child(
        [sys.executable, "-m", "gateway.cli", "ingest", str(path)], env, talks, directory / "i.out"
    )
    print(f"  talkgate ingest: {run.output}", flush=True)
    return run, floor


def bench(plan: Plan, directory: Path, *, postgres: bool, pin: bool) -> None:
    wrk = Wrk(pin=pin, directory=directory)
    if not postgres:
        stores = (f"sqlite:///{directory / 'gateway.db'}", f"sqlite:///{directory / 'ingest.db'}")
        _bench(plan, directory, stores, "an empty SQLite file", wrk)
        return
    names = (f"talkgate_http_floor_{os.getpid()}", f"talkgate_http_floor_{os.getpid()}_ingest")
    served, ingested = asyncio.run(create_databases(*names))
    try:
        _bench(plan, directory, (served, ingested), "an empty PostgreSQL database", wrk)
    finally:
        asyncio.run(drop_databases(*names))


async def _prepare(gateway: Server, floor: Server) -> dict[str, list[bytes]]:
    """The answers checked through httpx (the ruler's figures count statuses only): W1's
    and W3's, and W2's walk of 10 pages by `endCursor`, whose page bodies are returned. Each
    gateway answer is put on the floor as its bytes floor's answer."""
    headers = {"Authorization": f"Bearer {KEY}"}
    pages: list[bytes] = []
    answers: dict[str, bytes] = {}
    async with httpx.AsyncClient(base_url=gateway.base, timeout=60, headers=headers) as http:

        async def ask(name: str, sent: bytes) -> bytes:
            answer = await http.post(
                "/graphql", content=substitute(sent), headers={"Content-Type": "application/json"}
            )
            if answer.status_code != 200 or b'"errors"' in answer.content:
                raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:2000]}")
            return answer.content

        answers["w1"] = await ask("W1 warm", warm_body())
        # W1 warm asked with Accept-Encoding: gzip; the bytes as sent are the floor's to send.
        async with http.stream(
            "POST",
            "/graphql",
            content=warm_body(),
            headers={"Content-Type": "application/json", "Accept-Encoding": "gzip"},
        ) as zipped:
            raw = b"".join([chunk async for chunk in zipped.aiter_raw()])
        if zipped.headers.get("content-encoding") != "gzip" or gunzip(raw) != answers["w1"]:
            raise RuntimeError(f"W1 warm gzip: {zipped.headers}")
        answers["w1-gzip"] = raw
        cold = await ask("W1 cold", cold_bodies()[-1])
        if cold != answers["w1"]:
            raise RuntimeError("W1 cold's last window is not W1 warm's answer")
        after: str | None = None
        for number in range(WALK_PAGES):
            sent = body(W2, {"after": after, "to": numbered_to(datetime.fromisoformat(FUTURE))})
            content = await ask(f"W2 page {number + 1}", sent)
            talks = orjson.loads(content)["data"]["talks"]
            if len(talks["edges"]) != 100:
                raise RuntimeError(f"W2 page {number + 1}: {len(talks['edges'])} talks, not 100")
            pages.append(sent)
            answers.setdefault("w2", content)
            after = talks["pageInfo"]["endCursor"]
        w3 = body(W3, {"to": numbered_to(datetime.fromisoformat(FUTURE))})
        answers["w3"] = await ask("W3", w3)
    async with httpx.AsyncClient(base_url=floor.base, timeout=60) as http:
        for name, content in answers.items():
            (await http.put(f"/blobs/{name}", content=content)).raise_for_status()
        compare = await http.post("/rows/w1", content=warm_body())
        if orjson.loads(compare.content) != orjson.loads(answers["w1"]):
            raise RuntimeError("the rows floor's W1 is not the gateway's")
    print(
        "  answers checked; bytes: "
        + ", ".join(f"{name} {len(content):,}" for name, content in answers.items()),
        flush=True,
    )
    return {"w2": pages, "w3": [w3]}


def _run_workloads(
    plan: Plan,
    wrk: Wrk,
    gateway: Server,
    floor: Server,
    prepared: dict[str, list[bytes]],
    started: float,
) -> list[Line]:
    """Each workload the plan runs, the gateway and its floors taking turns."""
    lines: list[Line] = []

    def workload(name: str, targets: list[Target]) -> None:
        if not plan.runs(name):
            return
        print(f"  {name}: {plan.rounds} rounds of {plan.seconds:g}s each", flush=True)
        gateway_run, *floor_runs = measure_rounds(wrk, name, targets, plan)
        floors = [(t.label, m) for t, m in zip(targets[1:], floor_runs, strict=True)]
        lines.append(Line(name, gateway_run, floors))
        print(f"    {time.perf_counter() - started:,.0f}s so far", flush=True)

    def read(name: str, part: str, bodies: list[bytes], *, numbered: bool) -> None:
        """A read workload: the gateway, the bytes floor and the rows floor of `part`."""
        workload(
            name,
            [
                Target("gateway", gateway, graphql_load(bodies, numbered=numbered)),
                Target(
                    "bytes floor",
                    floor,
                    floor_load(f"/bytes/{part}", bodies, numbered=numbered),
                ),
                Target("rows floor", floor, floor_load(f"/rows/{part}", bodies, numbered=numbered)),
            ],
        )

    read("W1 warm", "w1", [warm_body()], numbered=False)
    workload(
        "W1 gzip",
        [
            Target("gateway", gateway, graphql_load([warm_body()], numbered=False, gzip=True)),
            Target(
                "bytes floor",
                floor,
                floor_load("/bytes/w1-gzip", [warm_body()], numbered=False),
            ),
        ],
    )
    read("W1 cold", "w1", cold_bodies(), numbered=True)
    read("W2 page", "w2", prepared["w2"], numbered=True)
    read("W3", "w3", prepared["w3"], numbered=True)
    workload(
        "webhook",
        [
            Target("gateway", gateway, webhook_load(60_000_000, gateway=True)),
            Target("read body", floor, webhook_load(50_000_000, gateway=False)),
        ],
    )
    return lines


def _bench(plan: Plan, directory: Path, stores: tuple[str, str], empty: str, wrk: Wrk) -> None:
    """The workloads against a gateway on the store `stores[0]`, then `talkgate ingest` into
    the store `stores[1]`, which is `empty`."""
    started = time.perf_counter()
    url, ingest_url = stores
    print(f"  filling the store with {FILL:,} talks through Ingestor.ingest_many", flush=True)
    asyncio.run(fill(url, FILL))
    logs = directory / "gateway.log", directory / "floor.log"
    workers = ["--workers", str(plan.workers)] if plan.workers > 1 else []
    gateway = start(
        "gateway",
        [*wrk.server_prefix(), sys.executable, "-m", "gateway.cli", "serve", *workers],
        gateway_env(url),
        logs[0],
    )
    floor = start(
        "floor",
        [*wrk.server_prefix(), sys.executable, "-m", "bench.http_floor", "--serve-floor"],
        clean_env() | {FLOOR_DB_ENV: url},
        logs[1],
    )
    try:
        asyncio.run(wait_ready(gateway, logs[0]))
        asyncio.run(wait_ready(floor, logs[1]))
        print(
            f"  gateway pid {gateway.process.pid} {gateway.base}, floor pid"
            f" {floor.process.pid} {floor.base}"
            + (f"; servers on CPU {wrk.server_cpu}, wrk on CPU {wrk.client_cpu}" * wrk.pin),
            flush=True,
        )
        prepared = asyncio.run(_prepare(gateway, floor))
        lines = _run_workloads(plan, wrk, gateway, floor, prepared, started)
    finally:
        gateway.stop()
        floor.stop()
    cli = parse_floor = None
    if plan.runs("ingest"):
        print("  `talkgate ingest`", flush=True)
        cli, parse_floor = bench_cli_ingest(directory, plan.ingest_talks, ingest_url)

    print_summary(lines, cli, parse_floor, empty)
    print(f"wall time {time.perf_counter() - started:,.0f}s")


def describe() -> str:
    parts = [f"Python {sys.version.split()[0]}", f"{os.cpu_count()} CPUs"]
    for module in ("uvicorn", "uvloop", "httptools", "starlette", "strawberry"):
        try:
            from importlib.metadata import version

            parts.append(
                f"{module} {version(module if module != 'strawberry' else 'strawberry-graphql')}"
            )
        except Exception:
            parts.append(f"{module} absent")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
    parts.append((wrk.stdout or wrk.stderr).split(" [")[0])
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_floor", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, 10k-talk ingest")
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL stores instead of SQLite files"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="servers on CPU 0 and wrk on CPU 1 (taskset), so neither takes the other's CPU",
    )
    parser.add_argument(
        "--only",
        type=lambda text: frozenset(text.split(",")),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the gateway as `talkgate serve --workers N`"
    )
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(args.port)
        return
    require_wrk()
    plan = QUICK if args.quick else FULL
    if args.only is not None:
        unknown = args.only - set(PARTS)
        if unknown:
            parser.error(f"--only: no part {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}")
        plan = dataclasses.replace(plan, only=args.only)
    plan = dataclasses.replace(plan, workers=args.workers)
    print(f"http_floor: {describe()}", flush=True)
    print(
        f"plan: {plan.rounds} rounds of {plan.seconds:g}s per server and workload (after"
        f" {plan.warm_s:g}s of warm-up), wrk -t1 -c{CONNECTIONS}; {FILL:,} talks served"
        f" by {plan.workers} gateway process{'es' * (plan.workers > 1)};"
        f" talkgate ingest of {plan.ingest_talks:,}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="talkgate-http-floor-") as directory:
        bench(plan, Path(directory), postgres=args.postgres, pin=args.pin)


if __name__ == "__main__":
    main()
