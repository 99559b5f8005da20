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

The client is httpx.AsyncClient in this process, concurrency CONCURRENCY, a bounded number
of requests per workload after a short warm-up. Each workload runs in ROUNDS rounds in
which the floors and the gateway take turns, and each server's figures pool its rounds: the
machine's speed drifts over minutes, and every server then meets the same drift (run one
after the other, the same floor measured 447 to 962 requests/s in different runs).
Latency is per request (for W2 per walk of 10 pages). Server RSS is VmHWM
(the peak so far) of each server process after the workload. The machine is small and
shared (the client shares its 2 CPUs with the server), hence ratios.

Workloads: W1 `talks(first: 100)` with 15 fields (customer { id name } among them), cold
(every request a different `createdTo`, so no two answers are alike) and warm (one request
repeated); W2 1,000 talks as 10 pages of 100 following `endCursor`, 10 fields; W3 20 talks,
each with `histories(first: 50)` (3 messages each here: the fixture's), `events`,
`customer`, and `user` on each message. Ingest: webhook deliveries of the fixture payload
(gateway/demo/talk_114603.json, distinct ids) against the floor's read-the-body route; and
`talkgate ingest` of an NDJSON file into an empty store (rows/s, and the peak RSS of
that process with its worker processes, polled from /proc), against a floor process that reads
and parses the same file with orjson.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import httpx
import orjson
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.backends import Layout, create_databases, drop_databases, talk_payloads
from gateway.auth import key_digest
from gateway.demo import example_talk
from gateway.payload import talk_status
from gateway.settings import Settings
from gateway.storage import TalkStore, open_store
from gateway.storage.records import Doc, PageRequest, TalkOrder, TalkQuery

KEY = "tgk_bench_http_floor"
SECRET = "bench-http-floor-webhook-secret-3b7e"  # noqa: S105 - a local test server's
SCOPES = ["talks:read", "customers:pii", "recordings:read", "agents:control", "webhooks:write"]
CONCURRENCY = 8
FILL = 2_000
# Each workload is driven in this many rounds, the servers taking turns (`drive_rounds`).
ROUNDS = 4
WALK_PAGES = 10
PROGRESS_S = 3.0
FLOOR_DB_ENV = "BENCH_FLOOR_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class Plan:
    """Requests per workload (W2: walks of 10 pages) and the `talkgate ingest` file's size."""

    w1: int
    w2: int
    w3: int
    webhook: int
    ingest_talks: int
    warm_up: int = 16


FULL = Plan(w1=800, w2=80, w3=800, webhook=1_500, ingest_talks=100_000)
QUICK = Plan(w1=160, w2=16, w3=160, webhook=300, ingest_talks=10_000, warm_up=8)

TARGETS = (
    "W1 warm p50 <= 1.5x the bytes floor",
    "W1 cold p50 <= 5x the bytes floor (stretch 2x)",
    "webhook ingest <= 2x its floor (deliveries/s)",
    "`talkgate ingest` >= 2,000 talks/s with peak RSS under 300 MB",
)

# -- the queries ----------------------------------------------------------------------------

W1_FIELDS = (
    "id customerId agentId queueId channelId createdAt finishedAt wasSuccess isCritical"
    " isWaiting status trackingNumber externalProtocol score customer { id name }"
)
W2_FIELDS = (
    "id customerId agentId queueId channelId createdAt finishedAt wasSuccess status trackingNumber"
)
W1 = (
    "query W1($to: DateTime) { talks(first: 100, filter: {createdTo: $to}) {"
    f" edges {{ node {{ {W1_FIELDS} }} }} }} }}"
)
W2 = (
    "query W2($after: String) { talks(first: 100, after: $after) {"
    f" edges {{ node {{ {W2_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)
W3 = (
    "query W3 { talks(first: 20) { edges { node { id createdAt customer { id name }"
    " histories(first: 50) { edges { node { id message sentAt type from user { id name } } } }"
    " events { id eventId createdAt agentId } } } } }"
)

# The GraphQL field and the key of the stored document it comes from.
_TALK_KEYS = {
    "id": "id",
    "customerId": "customer_id",
    "agentId": "agent_id",
    "queueId": "queue_id",
    "channelId": "channel_id",
    "createdAt": "created_at",
    "finishedAt": "finished_at",
    "wasSuccess": "was_success",
    "isCritical": "is_critical",
    "isWaiting": "is_waiting",
    "trackingNumber": "tracking_number",
    "externalProtocol": "external_protocol",
    "score": "score",
}
_W2_KEYS = (
    "id",
    "customerId",
    "agentId",
    "queueId",
    "channelId",
    "createdAt",
    "finishedAt",
    "wasSuccess",
    "trackingNumber",
)
_IDS = frozenset({"id", "customerId", "agentId", "queueId", "channelId"})


def _value(name: str, doc: Doc) -> Any:
    value = doc.get(_TALK_KEYS[name])
    return str(value) if name in _IDS and value is not None else value


def _name(doc: Doc | None) -> dict[str, Any] | None:
    return None if doc is None else {"id": str(doc["id"]), "name": doc.get("name")}


# -- the floor server (its own process) -----------------------------------------------------


class FloorState(TypedDict):
    store: TalkStore
    blobs: dict[str, bytes]


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def put_blob(request: Request) -> Response:
    request.state.blobs[request.path_params["name"]] = await request.body()
    return Response(status_code=204)


async def blob(request: Request) -> Response:
    await request.body()
    return Response(request.state.blobs[request.path_params["name"]], media_type="application/json")


async def read_body(request: Request) -> Response:
    await request.body()
    return Response(b'{"accepted":true}', status_code=202, media_type="application/json")


async def rows_w1(request: Request) -> Response:
    store: TalkStore = request.state.store
    variables = orjson.loads(await request.body()).get("variables") or {}
    to = variables.get("to")
    query = TalkQuery(created_to=None if to is None else datetime.fromisoformat(to))
    page = (
        await store.talk_pages(
            query=query,
            page=PageRequest(first=100),
            order=TalkOrder.CREATED_AT_DESC,
            with_customers=True,
        )
    )[None]
    customers = page.customers
    edges = []
    for _, doc in page.items:
        node = {name: _value(name, doc) for name in _TALK_KEYS}
        node["status"] = talk_status(doc)
        node["customer"] = _name(customers.get(doc["customer_id"]))
        edges.append({"node": node})
    return _json({"data": {"talks": {"edges": edges}}})


async def rows_w2(request: Request) -> Response:
    store: TalkStore = request.state.store
    variables = orjson.loads(await request.body()).get("variables") or {}
    page = (
        await store.talk_pages(
            query=TalkQuery(),
            page=PageRequest(first=100, after=variables.get("after")),
            order=TalkOrder.CREATED_AT_DESC,
        )
    )[None]
    edges = []
    for _, doc in page.items:
        node = {name: _value(name, doc) for name in _W2_KEYS}
        node["status"] = talk_status(doc)
        edges.append({"node": node})
    info = {"hasNextPage": page.has_next, "endCursor": page.end_cursor}
    return _json({"data": {"talks": {"edges": edges, "pageInfo": info}}})


async def rows_w3(request: Request) -> Response:
    store: TalkStore = request.state.store
    await request.body()
    page = (
        await store.talk_pages(
            query=TalkQuery(),
            page=PageRequest(first=20),
            order=TalkOrder.CREATED_AT_DESC,
            with_customers=True,
        )
    )[None]
    talks = [doc for _, doc in page.items]
    ids = [t["id"] for t in talks]
    messages = await store.message_pages(talk_ids=ids, page=PageRequest(first=50))
    events = await store.events_by_talk(ids)
    customers = page.customers
    user_ids = {
        m["user_id"] for p in messages.values() for _, m in p.items if m.get("user_id") is not None
    }
    users = await store.agents_by_id(list(user_ids))
    edges = []
    for talk in talks:
        histories = [
            {
                "node": {
                    "id": str(m["id"]),
                    "message": m.get("message"),
                    "sentAt": m.get("sent_at"),
                    "type": m.get("type"),
                    "from": m.get("from"),
                    "user": _name(users.get(m.get("user_id"))),  # type: ignore[arg-type]
                }
            }
            for _, m in messages[talk["id"]].items
        ]
        node = {
            "id": str(talk["id"]),
            "createdAt": talk.get("created_at"),
            "customer": _name(customers.get(talk["customer_id"])),
            "histories": {"edges": histories},
            "events": [
                {
                    "id": str(e["id"]),
                    "eventId": None if e.get("event_id") is None else str(e["event_id"]),
                    "createdAt": e.get("created_at"),
                    "agentId": None if e.get("agent_id") is None else str(e["agent_id"]),
                }
                for e in events.get(talk["id"], [])
            ],
        }
        edges.append({"node": node})
    return _json({"data": {"talks": {"edges": edges}}})


def floor_app() -> Starlette:
    """The floor: precomputed bytes, the same rows without GraphQL, a body-only webhook."""
    url = os.environ[FLOOR_DB_ENV]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[FloorState]:
        store = open_store(url)
        await store.open()
        try:
            yield {"store": store, "blobs": {}}
        finally:
            await store.close()

    return Starlette(
        routes=[
            Route("/blobs/{name}", put_blob, methods=["PUT"]),
            Route("/bytes/{name}", blob, methods=["POST"]),
            Route("/rows/w1", rows_w1, methods=["POST"]),
            Route("/rows/w2", rows_w2, methods=["POST"]),
            Route("/rows/w3", rows_w3, methods=["POST"]),
            Route("/webhooks/talks", read_body, methods=["POST"]),
            Route("/readyz", lambda r: Response(b"ok"), methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serve_floor(port: int) -> None:
    """`uvicorn.run` as `talkgate serve` calls it (gateway/cli.py), on the floor app."""
    import uvicorn

    uvicorn.run(
        floor_app(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def tree_kib(pid: int) -> int:
    """VmRSS of a process and of every process under it, now."""
    total, pending = 0, [pid]
    while pending:
        member = pending.pop()
        try:
            total += proc_kib(member, "VmRSS")
            for task in Path(f"/proc/{member}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):  # gone meanwhile
            continue
    return total


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str

    def peak_mib(self) -> float:
        return proc_kib(self.process.pid, "VmHWM") / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(name: str, argv: list[str], env: dict[str, str], log: Path) -> Server:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own entry points
        [*argv, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return Server(name, process, f"http://127.0.0.1:{port}")


async def wait_ready(server: Server, log: Path) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=2) as http:
        for _ in range(300):
            if server.process.poll() is not None:
                break
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start:\n{log.read_text()[-2000:]}")  # noqa: ASYNC240 - failing anyway


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}


def gateway_env(url: str) -> dict[str, str]:
    return clean_env() | {
        "TALKGATE_DATABASE_URL": url,
        "TALKGATE_API_KEYS": json.dumps(
            [{"name": "bench", "sha256": key_digest(KEY), "scopes": SCOPES}]
        ),
        "TALKGATE_WEBHOOK_SECRET": SECRET,
        "TALKGATE_SECRET_KEY": "bench-http-floor-secret-key-9c2e51",
        "TALKGATE_RATE_LIMIT_PER_MINUTE": "100000000",
        "TALKGATE_LOG_LEVEL": "WARNING",
    }


# -- data -----------------------------------------------------------------------------------


LAYOUT = Layout(block=10_000)


async def fill(url: str, talks: int) -> None:
    from gateway.ingest import Body, Ingestor

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


def webhook_payload(talk_id: int) -> bytes:
    talk = example_talk()
    talk["id"] = talk_id
    talk["tracking_number"] = f"HTTPFLOOR{talk_id}"
    for n, history in enumerate(talk["talk_histories"]):
        history["id"] = talk_id * 10 + n
        history["talk_id"] = talk_id
    for event in talk["talk_events"]:
        event["id"] = talk_id * 10
        event["talk_id"] = talk_id
    return orjson.dumps(talk)


# -- driving --------------------------------------------------------------------------------


class Progress:
    """A line every few seconds while something long runs."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < PROGRESS_S and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        print(
            f"    {self.label}: {done:,}/{self.total:,}  {done / max(elapsed, 1e-9):,.0f}/s"
            f"  {elapsed:5.1f}s",
            flush=True,
        )


@dataclass
class Run:
    """One workload against one server: latencies, wall time, bytes of one answer, peak RSS."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    answer_bytes: int = 0
    peak_mib: float = 0.0
    failures: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


Request_ = Callable[[httpx.AsyncClient, int], Awaitable[int]]


async def drive(server: Server, label: str, total: int, warm_up: int, send: Request_) -> Run:
    """`total` calls of `send` (after `warm_up`), CONCURRENCY at a time; `send` returns the
    size of the answer, or -1 when it was not what the workload expects."""
    run = Run()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=server.base, timeout=60, limits=limits) as http:
        for i in range(warm_up):
            await send(http, -1 - i)
        progress = Progress(label, total)
        counter = iter(range(total))

        async def worker() -> None:
            for i in counter:
                began = time.perf_counter()
                size = await send(http, i)
                run.latencies.append(time.perf_counter() - began)
                if size < 0:
                    run.failures += 1
                else:
                    run.answer_bytes = size
                progress.update(len(run.latencies))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        run.wall = time.perf_counter() - began
    run.peak_mib = server.peak_mib()
    return run


async def drive_rounds(
    label: str, total: int, warm_up: int, servers: list[tuple[str, Server, Request_]]
) -> list[Run]:
    """`drive` of each server's `total` calls in ROUNDS rounds, the servers taking turns in
    each round: on a shared machine whose speed drifts, every server then meets the same
    drift, where one server after the other would each meet a different part of it. Call
    numbers go on from round to round (cold requests stay distinct)."""
    runs = [Run() for _ in servers]
    per = -(-total // ROUNDS)
    for index in range(ROUNDS):
        first = index * per
        count = min(per, total - first)
        if count <= 0:
            break
        for (name, server, send), run in zip(servers, runs, strict=True):
            part = await drive(
                server, f"{label} {name}", count, warm_up if index == 0 else 0, _from(send, first)
            )
            run.latencies += part.latencies
            run.wall += part.wall
            run.failures += part.failures
            run.answer_bytes = part.answer_bytes or run.answer_bytes
            run.peak_mib = max(run.peak_mib, part.peak_mib)
    return runs


def _from(send: Request_, first: int) -> Request_:
    """`send` numbering its calls from `first` (warm-up calls, numbered below 0, unchanged)."""

    async def shifted(http: httpx.AsyncClient, i: int) -> int:
        return await send(http, i + first if i >= 0 else i)

    return shifted


def graphql(query: str, variables: Callable[[int], dict[str, Any]] | None = None) -> Request_:
    async def send(http: httpx.AsyncClient, i: int) -> int:
        body = {"query": query, "variables": variables(i) if variables else {}}
        response = await http.post(
            "/graphql", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
        ok = response.status_code == 200 and b'"errors"' not in response.content
        return len(response.content) if ok else -1

    return send


def floor_post(
    path: str, query: str, variables: Callable[[int], dict[str, Any]] | None = None
) -> Request_:
    """The same request body as the gateway's, to a floor route."""

    async def send(http: httpx.AsyncClient, i: int) -> int:
        body = {"query": query, "variables": variables(i) if variables else {}}
        response = await http.post(path, json=body)
        return len(response.content) if response.status_code == 200 else -1

    return send


def walk(path: str, headers: dict[str, str]) -> Request_:
    """W2: 10 pages of 100 in turn, each after the previous page's endCursor."""

    async def send(http: httpx.AsyncClient, i: int) -> int:
        after: str | None = None
        size = 0
        for _ in range(WALK_PAGES):
            body = {"query": W2, "variables": {"after": after}}
            response = await http.post(path, json=body, headers=headers)
            if response.status_code != 200 or b'"errors"' in response.content:
                return -1
            size += len(response.content)
            after = orjson.loads(response.content)["data"]["talks"]["pageInfo"]["endCursor"]
        return size

    return send


def cold_to(i: int) -> dict[str, Any]:
    """A `createdTo` no other request of the run uses: each window of 100 talks differs."""
    talk = 150 + (i % (FILL - 150))
    return {"to": (LAYOUT.created(talk) + timedelta(seconds=1)).isoformat()}


def warm_to(i: int) -> dict[str, Any]:
    return {"to": (LAYOUT.created(FILL - 1) + timedelta(seconds=1)).isoformat()}


def deliveries(start_id: int) -> Request_:
    async def send(http: httpx.AsyncClient, i: int) -> int:
        response = await http.post(
            "/webhooks/talks",
            content=webhook_payload(start_id + i),
            headers={"X-Webhook-Token": SECRET, "Content-Type": "application/json"},
        )
        return len(response.content) if response.status_code == 202 else -1

    return send


# -- the run --------------------------------------------------------------------------------


@dataclass
class Line:
    """A measured workload and the runs it is compared with."""

    name: str
    gateway: Run
    floors: list[tuple[str, Run]]
    unit: str = "req"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def print_table(lines: Sequence[Line]) -> None:
    print()
    print(
        "latency ms p50 / p99 per request (W2: per walk of 10 pages), rate = requests (walks,"
        " deliveries) per second at concurrency 8, RSS = server VmHWM after the workload;"
        " x = gateway latency / floor latency and floor rate / gateway rate (times slower)"
    )
    head = (
        f"{'workload':<12} {'server':<12} {'p50':>8} {'p99':>8} {'rate/s':>8} {'bytes':>8}"
        f" {'RSS MiB':>7} | {'x p50':>6} {'x p99':>6} {'x rate':>6}"
    )
    print(head)
    print("-" * len(head))
    for line in lines:
        g = line.gateway
        print(
            f"{line.name:<12} {'gateway':<12} {ms(g.p50)} {ms(g.p99)} {g.rate:8.1f}"
            f" {g.answer_bytes:8,} {g.peak_mib:7.0f} |"
            + (f"  ({g.failures} failed)" if g.failures else "")
        )
        for label, f in line.floors:
            print(
                f"{'':<12} {label:<12} {ms(f.p50)} {ms(f.p99)} {f.rate:8.1f}"
                f" {f.answer_bytes:8,} {f.peak_mib:7.0f} |"
                f" {g.p50 / f.p50:5.2f}x {g.p99 / f.p99:5.2f}x {f.rate / g.rate:5.2f}x"
                + (f"  ({f.failures} failed)" if f.failures else "")
            )


@dataclass
class IngestRun:
    rows: int
    seconds: float
    peak_mib: float
    output: str

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


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


async def bench(plan: Plan, directory: Path, *, postgres: bool) -> None:
    if not postgres:
        stores = (f"sqlite:///{directory / 'gateway.db'}", f"sqlite:///{directory / 'ingest.db'}")
        await _bench(plan, directory, stores, "an empty SQLite file")
        return
    names = (f"talkgate_http_floor_{os.getpid()}", f"talkgate_http_floor_{os.getpid()}_ingest")
    served, ingested = await create_databases(*names)
    try:
        await _bench(plan, directory, (served, ingested), "an empty PostgreSQL database")
    finally:
        await drop_databases(*names)


async def _bench(plan: Plan, directory: Path, stores: tuple[str, str], empty: str) -> None:
    """The workloads against a gateway on the store `stores[0]`, then `talkgate ingest` into
    the store `stores[1]`, which is `empty`."""
    started = time.perf_counter()
    url, ingest_url = stores
    print(f"  filling the store with {FILL:,} talks through Ingestor.ingest_many", flush=True)
    await fill(url, FILL)
    logs = directory / "gateway.log", directory / "floor.log"
    gateway = start(
        "gateway", [sys.executable, "-m", "gateway.cli", "serve"], gateway_env(url), logs[0]
    )
    floor = start(
        "floor",
        [sys.executable, "-m", "bench.http_floor", "--serve-floor"],
        clean_env() | {FLOOR_DB_ENV: url},
        logs[1],
    )
    lines: list[Line] = []
    try:
        await wait_ready(gateway, logs[0])
        await wait_ready(floor, logs[1])
        print(
            f"  gateway pid {gateway.process.pid} {gateway.base}, floor pid"
            f" {floor.process.pid} {floor.base}",
            flush=True,
        )
        async with httpx.AsyncClient(base_url=gateway.base, timeout=60) as http:
            headers = {"Authorization": f"Bearer {KEY}"}
            samples = {
                "w1": {"query": W1, "variables": warm_to(0)},
                "w2": {"query": W2, "variables": {"after": None}},
                "w3": {"query": W3, "variables": {}},
            }
            answers = {}
            for name, body in samples.items():
                answer = await http.post("/graphql", json=body, headers=headers)
                if b'"errors"' in answer.content or answer.status_code != 200:
                    raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:2000]}")
                answers[name] = answer.content
        async with httpx.AsyncClient(base_url=floor.base, timeout=60) as http:
            for name, content in answers.items():
                (await http.put(f"/blobs/{name}", content=content)).raise_for_status()
            compare = await http.post("/rows/w1", json=samples["w1"])
            print(
                f"  answer bytes: gateway W1 {len(answers['w1']):,}, rows floor W1"
                f" {len(compare.content):,}",
                flush=True,
            )

        async def measure(
            name: str, total: int, gateway_send: Request_, floors: list[tuple[str, Request_]]
        ) -> None:
            print(f"  {name}: {total} each, in {ROUNDS} rounds", flush=True)
            *floor_runs_only, run = await drive_rounds(
                name,
                total,
                plan.warm_up,
                [
                    *((label, floor, send) for label, send in floors),
                    ("gateway", gateway, gateway_send),
                ],
            )
            floor_runs = [(label, r) for (label, _), r in zip(floors, floor_runs_only, strict=True)]
            lines.append(Line(name, run, floor_runs))
            print(
                f"    {name}: gateway p50 {ms(run.p50).strip()} ms; "
                + ", ".join(f"{label} {ms(f.p50).strip()} ms" for label, f in floor_runs)
                + f"; {time.perf_counter() - started:,.0f}s so far",
                flush=True,
            )

        bytes_w1 = floor_post("/bytes/w1", W1, warm_to)
        await measure(
            "W1 warm",
            plan.w1,
            graphql(W1, warm_to),
            [("bytes floor", bytes_w1), ("rows floor", floor_post("/rows/w1", W1, warm_to))],
        )
        await measure(
            "W1 cold",
            plan.w1,
            graphql(W1, cold_to),
            [
                ("bytes floor", floor_post("/bytes/w1", W1, cold_to)),
                ("rows floor", floor_post("/rows/w1", W1, cold_to)),
            ],
        )
        await measure(
            "W2 1000",
            plan.w2,
            walk("/graphql", {"Authorization": f"Bearer {KEY}"}),
            [("bytes floor", _bytes_walk()), ("rows floor", walk("/rows/w2", {}))],
        )
        await measure(
            "W3",
            plan.w3,
            graphql(W3),
            [
                ("bytes floor", floor_post("/bytes/w3", W3)),
                ("rows floor", floor_post("/rows/w3", W3)),
            ],
        )
        print(f"  webhook: {plan.webhook} each, in {ROUNDS} rounds", flush=True)
        body_floor, hook = await drive_rounds(
            "webhook",
            plan.webhook,
            plan.warm_up,
            [
                ("floor", floor, deliveries(50_000_000)),
                ("gateway", gateway, deliveries(60_000_000)),
            ],
        )
        lines.append(Line("webhook", hook, [("read body", body_floor)], unit="delivery"))
    finally:
        gateway.stop()
        floor.stop()
    print("  `talkgate ingest`", flush=True)
    cli, parse_floor = bench_cli_ingest(directory, plan.ingest_talks, ingest_url)

    print_table(lines)
    print()
    print("per field value (W1, W2): (gateway p50 - bytes floor p50) / (talks x fields)")
    for line, fields, talks in ((lines[0], 15, 100), (lines[1], 15, 100), (lines[2], 10, 1_000)):
        extra = line.gateway.p50 - line.floors[0][1].p50
        print(f"  {line.name:<8} {extra / (talks * fields) * 1e6:6.2f} us per field value")
    print()
    print(
        f"talkgate ingest of {cli.rows:,} NDJSON talks into {empty}:"
        f" {cli.rate:,.0f} talks/s ({cli.seconds:.1f}s), peak RSS with its workers"
        f" {cli.peak_mib:,.0f} MiB;"
        f" parse-only floor {parse_floor.rate:,.0f} talks/s, peak RSS"
        f" {parse_floor.peak_mib:,.0f} MiB; x rate {parse_floor.rate / cli.rate:.1f}x"
    )
    print()
    print("targets (for reference, not asserted):")
    w1w, w1c, _, _, webhook = lines
    figures = (
        f"{w1w.gateway.p50 / w1w.floors[0][1].p50:.2f}x",
        f"{w1c.gateway.p50 / w1c.floors[0][1].p50:.2f}x",
        f"{webhook.floors[0][1].rate / webhook.gateway.rate:.2f}x",
        f"{cli.rate:,.0f} talks/s, {cli.peak_mib:,.0f} MiB with its workers",
    )
    for target, figure in zip(TARGETS, figures, strict=True):
        print(f"  {target}: measured {figure}")
    print()
    print(f"wall time {time.perf_counter() - started:,.0f}s")


def _bytes_walk() -> Request_:
    async def send(http: httpx.AsyncClient, i: int) -> int:
        size = 0
        for _ in range(WALK_PAGES):
            response = await http.post(
                "/bytes/w2", json={"query": W2, "variables": {"after": None}}
            )
            if response.status_code != 200:
                return -1
            size += len(response.content)
            orjson.loads(response.content)  # the client reads the cursor, as in the real walk
        return size

    return send


def describe() -> str:
    parts = [f"Python {sys.version.split()[0]}", f"{os.cpu_count()} CPUs"]
    for module in ("uvicorn", "uvloop", "httptools", "starlette", "strawberry", "httpx"):
        try:
            from importlib.metadata import version

            parts.append(
                f"{module} {version(module if module != 'strawberry' else 'strawberry-graphql')}"
            )
        except Exception:
            parts.append(f"{module} absent")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_floor", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests, 10k-talk ingest")
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL stores instead of SQLite files"
    )
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(args.port)
        return
    plan = QUICK if args.quick else FULL
    print(f"http_floor: {describe()}", flush=True)
    print(
        f"plan: W1 {plan.w1}, W2 {plan.w2} walks, W3 {plan.w3}, webhook {plan.webhook} requests"
        f" after {plan.warm_up} warm-up, concurrency {CONCURRENCY}; {FILL:,} talks served;"
        f" talkgate ingest of {plan.ingest_talks:,}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="talkgate-http-floor-") as directory:
        asyncio.run(bench(plan, Path(directory), postgres=args.postgres))


if __name__ == "__main__":
    main()
