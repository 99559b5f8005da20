"""The same apps under other ASGI servers and uvicorn options, on the wrk ruler.

Run: `.venv/bin/python -m bench.servers [--seconds S] [--rounds N] [--pin]`. For each server
below it serves bench.http_floor's floor app and the gateway (SQLite, FILL talks) in one
process, and measures with wrk (bench.ruler) the bytes floor, W1 warm (a response-cache
hit) and W1 cold (every request other variables): requests/s and server CPU microseconds
per request, the servers taking turns in each round. It prints figures and never asserts.

- `uvicorn`: as `talkgate serve` runs (gateway.http.server.uvicorn_config: httptools with the
  header deadline, uvloop);
- `uvicorn-h11`: the same with uvicorn's pure-Python h11 protocol (no header deadline: h11
  caps the headers' size only);
- `uvicorn-asyncio`: the same on asyncio's own event loop instead of uvloop;
- `granian`: granian (Rust HTTP, `--interface asgi`, one worker, uvloop), when installed
  (`pip install granian`; not a dependency of talkgate).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.floor_server import FLOOR_DB_ENV, floor_app
from bench.http_floor import describe, fill
from bench.processes import KEY, Server, gateway_env, start, wait_ready
from bench.ruler import Load, Measure, Wrk, require_wrk
from bench.workloads import FILL, cold_bodies, floor_load, graphql_load, warm_body

SERVERS = ("uvicorn", "uvicorn-h11", "uvicorn-asyncio", "granian")
APP_ENV = "BENCH_SERVERS_APP"


def gateway_app() -> object:
    """The gateway app as `talkgate serve` builds it, from TALKGATE_* settings (a factory
    for granian)."""
    from gateway.http.app import create_app
    from gateway.settings import Settings

    return create_app(Settings())


def app_of(kind: str) -> object:
    return floor_app() if kind == "floor" else gateway_app()


def serve(server: str, app_kind: str, port: int) -> None:
    """Serve the floor or the gateway with `server` on 127.0.0.1:`port`."""
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces, Loops

        os.environ[APP_ENV] = app_kind
        Granian(
            "bench.servers:_factory",
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=1,
            loop=Loops.uvloop,
            factory=True,
            log_enabled=False,
        ).serve()
        return
    import uvicorn

    from gateway.http.server import uvicorn_config
    from gateway.settings import Settings

    settings = Settings(host="127.0.0.1")
    config = uvicorn_config(app_of(app_kind), settings, port=port)  # type: ignore[arg-type]
    if server == "uvicorn-h11":
        config.http = "h11"
    elif server == "uvicorn-asyncio":
        config.loop = "asyncio"
    uvicorn.Server(config).run()


def _factory() -> object:
    return app_of(os.environ[APP_ENV])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, wrk on CPU 1")
    parser.add_argument("--serve", nargs=2, metavar=("SERVER", "APP"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        server, app_kind = args.serve
        serve(server, app_kind, args.port)
        return
    require_wrk()
    servers = [s for s in SERVERS if s != "granian" or importlib.util.find_spec("granian")]
    print(f"bench.servers: {describe()}; servers: {', '.join(servers)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="talkgate-servers-") as name:
        run(Path(name), servers, args.seconds, args.rounds, pin=args.pin)


def run(directory: Path, servers: list[str], seconds: float, rounds: int, *, pin: bool) -> None:
    url = f"sqlite:///{directory / 'gateway.db'}"
    print(f"  filling the store with {FILL:,} talks", flush=True)
    asyncio.run(fill(url, FILL))
    wrk = Wrk(pin=pin, directory=directory)
    warm, cold = [warm_body()], cold_bodies()
    loads: list[tuple[str, str, Load]] = [
        ("floor", "bytes floor", floor_load("/bytes/w1", warm, numbered=False)),
        ("gateway", "W1 warm", graphql_load(warm, numbered=False)),
        ("gateway", "W1 cold", graphql_load(cold, numbered=True)),
    ]
    results: dict[tuple[str, str], Measure] = {}
    for index in range(rounds):
        for server in servers:
            started: dict[str, Server] = {}
            try:
                for app_kind in ("floor", "gateway"):
                    log = directory / f"{server}-{app_kind}.log"
                    env = gateway_env(url) | {FLOOR_DB_ENV: url}
                    argv = [*wrk.server_prefix(), sys.executable, "-m", "bench.servers", "--serve"]
                    process = start(server, [*argv, server, app_kind], env, log)
                    started[app_kind] = process
                    asyncio.run(wait_ready(process, log))
                answer = asyncio.run(_answer(started["gateway"]))
                asyncio.run(_put(started["floor"], answer))
                for app_kind, label, load in loads:
                    target = started[app_kind]
                    if index == 0:
                        wrk.run(target.base, target.process.pid, load, 1)
                    got = wrk.run(target.base, target.process.pid, load, seconds)
                    results.setdefault((server, label), Measure()).add(got)
            finally:
                for process in started.values():
                    process.stop()
            print(f"    round {index + 1}/{rounds}: {server} done", flush=True)
    print()
    print(
        "rate = requests/s (wrk -t1 -c8); us = server CPU microseconds per request;"
        " x = gateway CPU per request over this server's bytes floor's"
    )
    head = f"{'server':<16} {'floor/s':>8} {'us':>6} | {'warm/s':>7} {'us':>6} {'x':>5} |"
    print(head + f" {'cold/s':>7} {'us':>6} {'x':>6}")
    print("-" * (len(head) + 22))
    for server in servers:
        floor = results[server, "bytes floor"]
        warm_m, cold_m = results[server, "W1 warm"], results[server, "W1 cold"]
        base = floor.server_cpu_per_request
        print(
            f"{server:<16} {floor.rate:8,.0f} {base * 1e6:6.0f} |"
            f" {warm_m.rate:7,.0f} {warm_m.server_cpu_per_request * 1e6:6.0f}"
            f" {warm_m.server_cpu_per_request / base:4.2f}x |"
            f" {cold_m.rate:7,.0f} {cold_m.server_cpu_per_request * 1e6:6.0f}"
            f" {cold_m.server_cpu_per_request / base:5.1f}x"
            + ("" if not any(m.bad for m in (floor, warm_m, cold_m)) else "  (failures)")
        )


async def _answer(gateway: Server) -> bytes:
    import httpx

    async with httpx.AsyncClient(base_url=gateway.base, timeout=60) as http:
        answer = await http.post(
            "/graphql",
            content=warm_body(),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
    answer.raise_for_status()
    return answer.content


async def _put(floor: Server, answer: bytes) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=floor.base, timeout=60) as http:
        (await http.put("/blobs/w1", content=answer)).raise_for_status()


if __name__ == "__main__":
    main()
