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
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from gateway.auth import key_digest
from gateway.demo import renumbered_talk

KEY = "tgk_soak_all_scopes"
SECRET = "soak-webhook-secret-7d1f3a"  # noqa: S105 - a local test server's
SCOPES = ["talks:read", "customers:pii", "recordings:read", "agents:control", "webhooks:write"]
QUERY = "{ talks(first: 20) { totalCount edges { node { id createdAt customer { name } } } } }"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


async def soak(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="talkgate-soak-"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env |= {
        "TALKGATE_DATABASE_URL": f"sqlite:///{directory / 'soak.db'}",
        "TALKGATE_API_KEYS": json.dumps(
            [{"name": "soak", "sha256": key_digest(KEY), "scopes": SCOPES}]
        ),
        "TALKGATE_WEBHOOK_SECRET": SECRET,
        "TALKGATE_RATE_LIMIT_PER_MINUTE": "1000000",
        "TALKGATE_LOG_LEVEL": "WARNING",
        "TALKGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION": "5",
    }
    log = (directory / "serve.log").open("w")
    server = subprocess.Popen(  # noqa: S603, ASYNC220 - our own entry point, started once
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env=env,
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http:
            for _ in range(300):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            print(
                f"server pid {server.pid} on {address}; {args.subscribers} subscribers, "
                f"{args.deliveries} deliveries/s, {args.queries} queries/s, "
                f"{args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured",
                flush=True,
            )
            start = time.monotonic()
            stop = start + args.warmup + args.seconds
            received = [0]
            ready = [asyncio.Event() for _ in range(args.subscribers)]
            subscribers = [
                asyncio.create_task(
                    subscriber(address, received, r, stop, deflate=not args.no_deflate)
                )
                for r in ready
            ]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
            deliveries, queries = Tally(), Tally()
            counter = [10_000_000]
            measuring = [False]

            async def deliver() -> None:
                counter[0] += 1
                began = time.perf_counter()
                try:
                    response = await http.post(
                        "/webhooks/talks",
                        json=payload(counter[0]),
                        headers={"X-Webhook-Token": SECRET},
                    )
                except httpx.HTTPError:
                    deliveries.failures += measuring[0]
                    return
                if measuring[0]:
                    deliveries.add(response.status_code, time.perf_counter() - began)

            async def query() -> None:
                began = time.perf_counter()
                try:
                    response = await http.post(
                        "/graphql",
                        json={"query": QUERY},
                        headers={"Authorization": f"Bearer {KEY}"},
                    )
                except httpx.HTTPError:
                    queries.failures += measuring[0]
                    return
                if measuring[0]:
                    queries.add(response.status_code, time.perf_counter() - began)

            async def watch() -> tuple[int, int]:
                await asyncio.sleep(args.warmup)
                measuring[0] = True
                after_warmup = rss_kib(server.pid)
                print(f"warm-up done: RSS {after_warmup / 1024:.1f} MiB", flush=True)
                while time.monotonic() < stop - 0.5:
                    await asyncio.sleep(min(10, stop - time.monotonic()))
                    elapsed = time.monotonic() - start
                    rss = rss_kib(server.pid) / 1024
                    print(
                        f"  t+{elapsed:5.1f} s  RSS {rss:.1f} MiB"
                        f"  deliveries {len(deliveries.latencies)}"
                        f"  queries {len(queries.latencies)}  events {received[0]}",
                        flush=True,
                    )
                return after_warmup, rss_kib(server.pid)

            watcher = asyncio.create_task(watch())
            await asyncio.gather(
                paced(args.deliveries, stop, deliver), paced(args.queries, stop, query)
            )
            after_warmup, at_end = await watcher
            # A server far behind may hold the sockets' closing handshakes: do not wait forever.
            _, late = await asyncio.wait(subscribers, timeout=15)
            for task in late:
                task.cancel()
            await asyncio.gather(*subscribers, return_exceptions=True)
            dropped = await dropped_events(http)
        growth = (at_end - after_warmup) / after_warmup * 100 if after_warmup else 0.0
        print()
        print(deliveries.line("deliveries"))
        print(queries.line("queries"))
        answered = sum(n for s, n in deliveries.statuses.items() if s == 202)
        print(
            f"events pushed to subscribers: {received[0]} (the measured deliveries alone call "
            f"for {answered * args.subscribers}); dropped by the server for subscribers that "
            f"fell behind: {dropped}"
        )
        print(
            f"server RSS: {after_warmup / 1024:.1f} MiB after warm-up, {at_end / 1024:.1f} MiB "
            f"at the end ({growth:+.1f} %; the goal is within 10 %)"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


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
