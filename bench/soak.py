"""Soak: a bounded run of a real `talkgate serve` under mixed load, looking for errors and leaks.

    .venv/bin/python -m bench.soak [--seconds 60] [--warmup 10] [--subscribers 100]
                                   [--deliveries 50] [--queries 50] [--no-deflate]

100 WebSocket subscribers hold `talkUpdated`, while one client posts webhook deliveries and
another runs GraphQL queries, each at a fixed rate, against one server process on loopback.
It prints the count of 5xx answers, latency percentiles, events pushed, and the server's
RSS after warm-up and at the end (a leak shows as growth), and how many events were pushed
against how many the answered deliveries called for (the rest were dropped by the server for
subscribers that fell behind, or were still queued when the run ended). It prints; it never
asserts. The server inherits the environment (e.g. MALLOC_ARENA_MAX).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from bench.processes import Server, clean_env, proc_kib, start, wait_ready
from gateway.auth import key_digest
from gateway.demo import renumbered_talk

KEY = "tgk_soak_all_scopes"
SECRET = "soak-webhook-secret-7d1f3a"  # noqa: S105 - a local test server's
# admin: it reads /metrics for the dropped events.
SCOPES = [
    "talks:read",
    "customers:pii",
    "recordings:read",
    "agents:control",
    "webhooks:write",
    "admin",
]
QUERY = "{ talks(first: 20) { totalCount edges { node { id createdAt customer { name } } } } }"


def payload(talk_id: int) -> dict[str, object]:
    return renumbered_talk(talk_id, f"SOAK{talk_id}")


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.failures = 0

    def add(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)

    def line(self, name: str) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        fives = sum(n for s, n in self.statuses.items() if s >= 500)
        return (
            f"{name:<11} {len(self.latencies):>6} requests  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
            f"  5xx {fives}  statuses {dict(sorted(self.statuses.items()))}"
            f"  transport failures {self.failures}"
        )


async def paced(rate: float, until: float, action: object) -> None:
    """Start `action()` `rate` times a second until `until`, without waiting for each."""
    assert callable(action)
    interval = 1.0 / rate
    next_at = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    while next_at < until:
        task = asyncio.create_task(action())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks, timeout=10)


async def subscriber(
    address: str, received: list[int], ready: asyncio.Event, stop: float, *, deflate: bool
) -> None:
    async with connect(
        f"ws://{address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression="deflate" if deflate else None,
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {KEY}"}})
        )
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { talkUpdated { id } }"},
                }
            )
        )
        ready.set()
        while time.monotonic() < stop:
            try:
                await asyncio.wait_for(ws.recv(), timeout=max(0.1, stop - time.monotonic()))
            except TimeoutError:
                break
            received[0] += 1


@dataclass
class Run:
    """What a soak measured after its warm-up."""

    deliveries: Tally = field(default_factory=Tally)
    queries: Tally = field(default_factory=Tally)
    events: int = 0  # pushed to the subscribers, warm-up included
    rss_after_warmup: int = 0  # KiB
    rss_at_end: int = 0


async def soak(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="talkgate-soak-"))
    env = clean_env() | {
        "TALKGATE_DATABASE_URL": f"sqlite:///{directory / 'soak.db'}",
        "TALKGATE_API_KEYS": json.dumps(
            [{"name": "soak", "sha256": key_digest(KEY), "scopes": SCOPES}]
        ),
        "TALKGATE_WEBHOOK_SECRET": SECRET,
        "TALKGATE_RATE_LIMIT_PER_MINUTE": "1000000",
        "TALKGATE_LOG_LEVEL": "WARNING",
        "TALKGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION": "5",
    }
    log = directory / "serve.log"
    server = start("gateway", [sys.executable, "-m", "gateway.cli", "serve"], env, log)
    try:
        await wait_ready(server, log)
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
            print(
                f"server pid {server.process.pid} on {server.base}; {args.subscribers}"
                f" subscribers, {args.deliveries} deliveries/s, {args.queries} queries/s, "
                f"{args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured",
                flush=True,
            )
            run = await measured(args, http, server)
            dropped = await dropped_events(http)
    finally:
        server.stop()
    report(args, run, dropped)


async def measured(args: argparse.Namespace, http: httpx.AsyncClient, server: Server) -> Run:
    """The subscribers listening, deliveries and queries paced, RSS watched, until the end."""
    run = Run()
    address = server.base.removeprefix("http://")
    began = time.monotonic()
    stop = began + args.warmup + args.seconds
    received = [0]
    ready = [asyncio.Event() for _ in range(args.subscribers)]
    subscribers = [
        asyncio.create_task(subscriber(address, received, r, stop, deflate=not args.no_deflate))
        for r in ready
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
    numbers = itertools.count(10_000_001)
    measuring = [False]

    async def post(tally: Tally, path: str, body: object, headers: dict[str, str]) -> None:
        sent = time.perf_counter()
        try:
            response = await http.post(path, json=body, headers=headers)
        except httpx.HTTPError:
            tally.failures += measuring[0]
            return
        if measuring[0]:
            tally.add(response.status_code, time.perf_counter() - sent)

    async def deliver() -> None:
        talk = payload(next(numbers))
        await post(run.deliveries, "/webhooks/talks", talk, {"X-Webhook-Token": SECRET})

    async def query() -> None:
        body = {"query": QUERY}
        await post(run.queries, "/graphql", body, {"Authorization": f"Bearer {KEY}"})

    async def watch() -> None:
        await asyncio.sleep(args.warmup)
        measuring[0] = True
        run.rss_after_warmup = proc_kib(server.process.pid, "VmRSS")
        print(f"warm-up done: RSS {run.rss_after_warmup / 1024:.1f} MiB", flush=True)
        while time.monotonic() < stop - 0.5:
            await asyncio.sleep(min(10, stop - time.monotonic()))
            print(
                f"  t+{time.monotonic() - began:5.1f} s"
                f"  RSS {proc_kib(server.process.pid, 'VmRSS') / 1024:.1f} MiB"
                f"  deliveries {len(run.deliveries.latencies)}"
                f"  queries {len(run.queries.latencies)}  events {received[0]}",
                flush=True,
            )
        run.rss_at_end = proc_kib(server.process.pid, "VmRSS")

    watcher = asyncio.create_task(watch())
    await asyncio.gather(paced(args.deliveries, stop, deliver), paced(args.queries, stop, query))
    await watcher
    # A server far behind may hold the sockets' closing handshakes: do not wait forever.
    _, late = await asyncio.wait(subscribers, timeout=15)
    for task in late:
        task.cancel()
    await asyncio.gather(*subscribers, return_exceptions=True)
    run.events = received[0]
    return run


def report(args: argparse.Namespace, run: Run, dropped: str) -> None:
    before, after = run.rss_after_warmup, run.rss_at_end
    growth = (after - before) / before * 100 if before else 0.0
    print()
    print(run.deliveries.line("deliveries"))
    print(run.queries.line("queries"))
    answered = sum(n for s, n in run.deliveries.statuses.items() if s == 202)
    print(
        f"events pushed to subscribers: {run.events} (the measured deliveries alone call "
        f"for {answered * args.subscribers}); dropped by the server for subscribers that "
        f"fell behind: {dropped}"
    )
    print(
        f"server RSS: {before / 1024:.1f} MiB after warm-up, {after / 1024:.1f} MiB "
        f"at the end ({growth:+.1f} %; the goal is within 10 %)"
    )


async def dropped_events(http: httpx.AsyncClient) -> str:
    try:
        metrics = (await http.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})).text
    except httpx.HTTPError as exc:
        return f"unknown ({exc!r})"
    for line in metrics.splitlines():
        if line.startswith("talkgate_subscription_events_dropped_total "):
            return line.split()[1]
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--deliveries", type=float, default=50)
    parser.add_argument("--queries", type=float, default=50)
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="subscribers decline permessage-deflate (browsers ask for it; the default does)",
    )
    asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    main()
