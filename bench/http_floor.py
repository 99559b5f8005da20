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
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from gzip import decompress as gunzip
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
from bench.ruler import CONNECTIONS, ID_MARK, Load, Measure, Wrk, require_wrk
from gateway.auth import key_digest
from gateway.demo import renumbered_talk
from gateway.settings import Settings
from gateway.storage import TalkStore, open_store
from gateway.storage.documents import Doc, talk_status
from gateway.storage.records import PageRequest, StoreOrder, TalkQuery
from schema.node import encode as global_id

KEY = "tgk_bench_http_floor"
SECRET = "bench-http-floor-webhook-secret-3b7e"  # noqa: S105 - a local test server's
SCOPES = ["talks:read", "customers:pii", "recordings:read", "agents:control", "webhooks:write"]
FILL = 2_000
WALK_PAGES = 10
PROGRESS_S = 3.0
FLOOR_DB_ENV = "BENCH_FLOOR_DATABASE_URL"


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

# The issue-20 targets: the workload, and at most how many times its floor.
TARGETS = (
    ("W1 warm", "1.5x the bytes floor"),
    ("W1 cold", "10x the bytes floor (stretch 5x)"),
    ("W2 page", "10x the bytes floor"),
    ("W3", "10x the bytes floor"),
    ("webhook", "2x the read-the-body floor"),
)
INGEST_TARGET = 3_000

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
    "query W2($after: String, $to: DateTime) {"
    " talks(first: 100, after: $after, filter: {createdTo: $to}) {"
    f" edges {{ node {{ {W2_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)
W3 = (
    "query W3($to: DateTime) { talks(first: 20, filter: {createdTo: $to}) {"
    " edges { node { id createdAt customer { id name }"
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
    if name == "id":
        return global_id("Talk", doc["id"])
    value = doc.get(_TALK_KEYS[name])
    return str(value) if name in _IDS and value is not None else value


def _name(doc: Doc | None, type_name: str) -> dict[str, Any] | None:
    """The `{ id name }` of a customer or an agent (`type_name`), its id the global one."""
    return None if doc is None else {"id": global_id(type_name, doc["id"]), "name": doc.get("name")}


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
    name: str = request.path_params["name"]
    # A blob named `...-gzip` is the gateway's gzip-compressed answer: sent as it was.
    encoded = (
        {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if name.endswith("-gzip") else {}
    )
    return Response(request.state.blobs[name], media_type="application/json", headers=encoded)


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
            order=StoreOrder.CREATED_AT_DESC,
            with_customers=True,
        )
    )[None]
    customers = page.customers
    edges = []
    for doc in page.docs:
        node = {name: _value(name, doc) for name in _TALK_KEYS}
        node["status"] = talk_status(doc)
        node["customer"] = _name(customers.get(doc["customer_id"]), "Customer")
        edges.append({"node": node})
    return _json({"data": {"talks": {"edges": edges}}})


async def rows_w2(request: Request) -> Response:
    store: TalkStore = request.state.store
    variables = orjson.loads(await request.body()).get("variables") or {}
    page = (
        await store.talk_pages(
            query=TalkQuery(),
            page=PageRequest(first=100, after=variables.get("after")),
            order=StoreOrder.CREATED_AT_DESC,
        )
    )[None]
    edges = []
    for doc in page.docs:
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
            order=StoreOrder.CREATED_AT_DESC,
            with_customers=True,
        )
    )[None]
    talks = list(page.docs)
    ids = [t["id"] for t in talks]
    messages = await store.message_pages(talk_ids=ids, page=PageRequest(first=50))
    events = await store.events_by_talk(ids)
    customers = page.customers
    user_ids = {
        m["user_id"] for p in messages.values() for m in p.docs if m.get("user_id") is not None
    }
    users = await store.agents_by_id(list(user_ids))
    edges = []
    for talk in talks:
        histories = [
            {
                "node": {
                    "id": global_id("TalkHistory", m["id"]),
                    "message": m.get("message"),
                    "sentAt": m.get("sent_at"),
                    "type": m.get("type"),
                    "from": m.get("from"),
                    "user": _name(users.get(m.get("user_id")), "Agent"),  # type: ignore[arg-type]
                }
            }
            for m in messages[talk["id"]].docs
        ]
        node = {
            "id": global_id("Talk", talk["id"]),
            "createdAt": talk.get("created_at"),
            "customer": _name(customers.get(talk["customer_id"]), "Customer"),
            "histories": {"edges": histories},
            "events": [
                {
                    "id": global_id("TalkEvent", e["id"]),
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
    """The floor app under the uvicorn configuration `talkgate serve` runs with."""
    import uvicorn

    from gateway.http.server import uvicorn_config

    settings = Settings(_env_file=None, host="127.0.0.1")  # type: ignore[call-arg, unused-ignore]
    uvicorn.Server(uvicorn_config(floor_app(), settings, port=port)).run()


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


def tree_kib(pid: int, field_name: str = "VmRSS") -> int:
    """`field_name` (VmRSS: now; VmHWM: each one's peak) of a process and of every process
    under it, summed."""
    total, pending = 0, [pid]
    while pending:
        member = pending.pop()
        try:
            total += proc_kib(member, field_name)
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
        """The peak RSS of the server's process and, under `--workers`, of its workers: each
        one's peak, summed (so at most what they held together)."""
        return tree_kib(self.process.pid, "VmHWM") / 1024

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


def webhook_payload(talk_id: int) -> bytes:
    return orjson.dumps(renumbered_talk(talk_id, f"HTTPFLOOR{talk_id}"))


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


def graphql_load(bodies: Sequence[bytes], *, numbered: bool, gzip: bool = False) -> Load:
    """The gateway's load; `gzip`: asking for compressed answers (Accept-Encoding: gzip),
    whose bodies wrk cannot look into for errors (they are checked first, by httpx)."""
    return Load(
        "/graphql",
        bodies,
        numbered=numbered,
        first_id=ID_FIRST,
        span=ID_SPAN,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        | ({"Accept-Encoding": "gzip"} if gzip else {}),
        check_errors=not gzip,
    )


def floor_load(path: str, bodies: Sequence[bytes], *, numbered: bool) -> Load:
    """A floor's load: like the gateway's, but its numbers may start again (`Load.wraps`):
    at the bytes floor's rate a full run sends nearly as many requests as the span holds."""
    return Load(
        path,
        bodies,
        numbered=numbered,
        first_id=ID_FIRST,
        span=ID_SPAN,
        wraps=True,
        headers={"Content-Type": "application/json"},
    )


def body(query: str, variables: dict[str, Any]) -> bytes:
    return orjson.dumps({"query": query, "variables": variables})


# A `createdTo` whose microseconds are the request's number (ID_FIRST + 1 up to 999,999):
# each request's variables differ from every other's, so none is a response-cache hit.
ID_FIRST = 100_000
ID_SPAN = 999_999 - ID_FIRST
FUTURE = "2099-01-01T00:00:00"


def numbered_to(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ID_MARK}+00:00"


def cold_bodies() -> list[bytes]:
    """W1 cold: a window of 100 talks ending at each talk from the 150th on, each request's
    `createdTo` numbered."""
    return [
        body(W1, {"to": numbered_to(LAYOUT.created(talk) + timedelta(seconds=1))})
        for talk in range(150, FILL)
    ]


def cold_to(i: int) -> dict[str, Any]:
    """The variables of the i-th cold W1 request as bench.instructions sends them."""
    talk = 150 + (i % (FILL - 150))
    return {"to": (LAYOUT.created(talk) + timedelta(seconds=1)).isoformat()}


def warm_body() -> bytes:
    return body(W1, {"to": (LAYOUT.created(FILL - 1) + timedelta(seconds=1)).isoformat()})


def substitute(numbered: bytes, number: int = ID_FIRST) -> bytes:
    return numbered.replace(ID_MARK.encode(), str(number).encode())


def webhook_template() -> bytes:
    """The example payload with ID_MARK for the talk's id: its messages' ids are the talk id
    followed by their index, its event's the talk id followed by 0."""
    payload = webhook_payload(TEMPLATE_ID)
    marked = payload.replace(str(TEMPLATE_ID).encode(), ID_MARK.encode())
    if substitute(marked, TEMPLATE_ID) != payload:
        raise RuntimeError("the webhook template does not give the payload back")
    return marked


TEMPLATE_ID = 987_654_321


def webhook_load(first_id: int, *, gateway: bool) -> Load:
    return Load(
        "/webhooks/talks",
        [webhook_template()],
        numbered=True,
        first_id=first_id,
        headers={"Content-Type": "application/json"}
        | ({"X-Webhook-Token": SECRET} if gateway else {}),
        expect=202,
    )


# -- the run --------------------------------------------------------------------------------


@dataclass
class Line:
    """A measured workload: the gateway and the floors it is compared with."""

    name: str
    gateway: Measure
    floors: list[tuple[str, Measure]]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:8.0f}"


def print_table(lines: Sequence[Line]) -> None:
    print()
    print(
        "rate = answers per second (wrk, 1 thread, 8 connections); p50/p99 = wrk's latency, ms;"
        " bytes = per answer with its headers; srv/cli us = CPU microseconds per request of"
        " the server's processes / of wrk; busy = CPU seconds per second of each; RSS = server"
        " VmHWM, MiB (its workers' summed); x rate = floor rate / gateway rate;"
        " x cpu = gateway srv us / floor srv us;"
        " per CPU-s = answers per second of the server's CPU time"
    )
    head = (
        f"{'workload':<9} {'server':<11} {'rate/s':>8} {'p50':>7} {'p99':>7} {'bytes':>7}"
        f" {'srv us':>8} {'cli us':>8} {'busy':>9} {'RSS':>5} {'per CPU-s':>9} |"
        f" {'x rate':>6} {'x cpu':>6}"
    )
    print(head)
    print("-" * len(head))

    def row(name: str, label: str, m: Measure) -> tuple[str, str]:
        flags = []
        if m.bad or m.socket_errors:
            flags.append(f"{m.bad} bad, {m.socket_errors} socket errors")
        if m.client_bound:
            flags.append("CLIENT-BOUND")
        return (
            f"{name:<9} {label:<11} {m.rate:8,.0f} {m.p50_ms:7.2f} {m.p99_ms:7.2f}"
            f" {m.answer_bytes:7,} {_us(m.server_cpu_per_request)} {_us(m.client_cpu_per_request)}"
            f" {m.server_busy:4.2f}/{m.client_busy:4.2f} {m.peak_mib:5.0f}"
            f" {1 / m.server_cpu_per_request if m.server_cpu_per_request else 0:9,.0f}"
        ), ("  (" + "; ".join(flags) + ")" if flags else "")

    for line in lines:
        text, flags = row(line.name, "gateway", line.gateway)
        print(text + " |" + flags)
        for label, floor in line.floors:
            text, flags = row("", label, floor)
            print(
                text
                + f" | {floor.rate / line.gateway.rate:5.2f}x"
                + f" {line.gateway.server_cpu_per_request / floor.server_cpu_per_request:5.2f}x"
                + flags
            )


def ruler_check(lines: Sequence[Line]) -> list[str]:
    """What says the ruler could not see a server: a floor or gateway run paced by wrk, or
    a gateway that answered faster than its bytes floor."""
    problems = []
    for line in lines:
        for label, m in [("gateway", line.gateway), *line.floors]:
            if m.client_bound:
                problems.append(
                    f"{line.name} {label}: wrk busy {m.client_busy:.2f} CPU/s, server"
                    f" {m.server_busy:.2f}: client-bound"
                )
            elif m.server_busy < 0.9:
                problems.append(
                    f"{line.name} {label}: the server used {m.server_busy:.2f} CPU/s and wrk"
                    f" {m.client_busy:.2f} (waits on the disk, or a shared machine): its x cpu"
                    " holds, its x rate less so"
                )
        bytes_floor = line.floors[0][1]
        if line.gateway.rate > bytes_floor.rate:
            problems.append(f"{line.name}: the gateway outran its floor: the ruler is broken")
    return problems


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
    lines: list[Line] = []
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
                    Target(
                        "rows floor", floor, floor_load(f"/rows/{part}", bodies, numbered=numbered)
                    ),
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
    finally:
        gateway.stop()
        floor.stop()
    cli = parse_floor = None
    if plan.runs("ingest"):
        print("  `talkgate ingest`", flush=True)
        cli, parse_floor = bench_cli_ingest(directory, plan.ingest_talks, ingest_url)

    print_table(lines)
    if cli is not None and parse_floor is not None:
        print()
        print(
            f"talkgate ingest of {cli.rows:,} NDJSON talks into {empty}:"
            f" {cli.rate:,.0f} talks/s ({cli.seconds:.1f}s), peak RSS with its workers"
            f" {cli.peak_mib:,.0f} MiB;"
            f" parse-only floor {parse_floor.rate:,.0f} talks/s, peak RSS"
            f" {parse_floor.peak_mib:,.0f} MiB; x rate {parse_floor.rate / cli.rate:.1f}x"
        )
    problems = ruler_check(lines)
    print()
    print("the ruler: " + ("; ".join(problems) if problems else "every run server-bound"))
    print()
    print("targets (for reference, not asserted): x rate and x cpu against the floor")
    by_name = {line.name: line for line in lines}
    for name, target in TARGETS:
        if name not in by_name:
            continue
        line = by_name[name]
        base = line.floors[0][1]
        print(
            f"  {name} <= {target}: {base.rate / line.gateway.rate:.2f}x rate,"
            f" {line.gateway.server_cpu_per_request / base.server_cpu_per_request:.2f}x"
            f" cpu ({line.gateway.rate:,.0f}/s against {base.rate:,.0f}/s)"
        )
    if cli is not None:
        print(
            f"  talkgate ingest >= {INGEST_TARGET:,} talks/s, peak RSS < 300 MiB:"
            f" {cli.rate:,.0f} talks/s, {cli.peak_mib:,.0f} MiB"
        )
    print()
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
