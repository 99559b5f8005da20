"""Instructions per request, counted by valgrind's callgrind: a figure a noisy machine leaves alone.

Run: `.venv/bin/python -m bench.instructions [--query W1|W1-warm|W2|W3] [--requests N]`
(needs `valgrind` on the PATH). It fills an SQLite file with `bench.http_floor`'s 2,000
talks, then runs the gateway in process (its app called as ASGI, no sockets, the server's
garbage-collector settings, the response cache off but for W1-warm) under callgrind twice:
once for 5 requests and once for 5 + N (default 40). Their difference over N is what one
more request costs, start-up and warm-up cancelled out. W1 is `bench.http_floor`'s cold W1
(each request its own `createdTo`); W1-warm is its warm W1 (one request repeated, the
response cache on: what a hit costs); W2 is one page of its walk; W3 is its 20 talks with
histories, events and users (each request its own `createdTo`). Every thread is counted,
SQLite's reader included.

Wall time is about a minute; it prints figures and never asserts. Compare two versions of
the code by running each from its own git worktree (`cd` into it and run the command there,
with `PYTHONPATH` pointing at it: `python -m` puts the current directory first on the path,
so a run from another checkout measures that checkout) on the same machine; with the hash
seed fixed the counts move by well under 1 % from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from bench.http_floor import fill
from bench.processes import KEY, gateway_env
from bench.workloads import FILL, W1, W2, W3, cold_to, warm_body

WARM_UP = 5

Message = MutableMapping[str, Any]


def _variables(query: str, i: int) -> dict[str, Any]:
    if query in ("W1", "W3"):
        return cold_to(i)
    if query == "W1-warm":
        return dict(orjson.loads(warm_body())["variables"])
    return {"after": None}


async def _call(app: Callable[[Message, Any, Any], Awaitable[None]], body: bytes) -> bytes:
    """One POST /graphql through the app, as uvicorn would hand it over."""
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect while the answer is made
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    answer = b"".join(chunks)
    if b'"errors"' in answer:
        raise RuntimeError(answer[:500].decode(errors="replace"))
    return answer


async def _serve(database: Path, query: str, requests: int) -> None:
    """`requests` requests of `query` through the app on `database` (the measured part)."""
    from asgi_lifespan import LifespanManager

    from gateway.http.app import create_app
    from gateway.settings import Settings

    os.environ.update(gateway_env(f"sqlite:///{database}"))
    if query != "W1-warm":
        os.environ["TALKGATE_RESPONSE_CACHE_MB"] = "0"
    app = create_app(Settings())
    # As `talkgate serve` sets them (gateway.garbage.collect_less).
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    document = {"W2": W2, "W3": W3}.get(query, W1)
    # Under callgrind start-up is slow (and slower on a busy machine): no time limit.
    async with LifespanManager(app, startup_timeout=None, shutdown_timeout=None) as manager:
        for i in range(requests):
            body = orjson.dumps({"query": document, "variables": _variables(query, i)})
            await _call(manager.app, body)  # manager.app puts the lifespan's state in


def _run_as_served(work: Coroutine[Any, Any, None]) -> None:
    """`work` on the event loop `talkgate serve` runs (uvicorn's `auto`: uvloop when it is
    installed): asyncio's own loop runs its timers and callbacks in Python, and W1-warm
    counted 0.40 M instructions per request on it against 0.37 M on uvloop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(work)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(work)


def _counted(valgrind: str, database: Path, query: str, requests: int, directory: Path) -> int:
    """Instructions callgrind counts for a run of `requests` requests on a copy of `database`."""
    copy = directory / f"run-{requests}.db"
    shutil.copyfile(database, copy)
    out = directory / f"callgrind-{requests}.out"
    run = subprocess.run(  # noqa: S603 - our own entry point under valgrind
        [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.instructions",
            "--serve",
            str(copy),
            "--query",
            query,
            "--requests",
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=False,
        # One hash seed for every run: string hashes order sets and probe dicts, so a
        # random seed moves the count by a percent or so from run to run.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed:\n{run.stderr[-3000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--query", choices=("W1", "W1-warm", "W2", "W3"), default="W1")
    parser.add_argument("--requests", type=int, default=40, help="requests counted")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        _run_as_served(_serve(args.serve, args.query, args.requests))
        # Skip the interpreter's and the C libraries' exit work: it is not a request's, and
        # it grows with what the run left behind (OpenSSL's cleanup alone with ~0.4 M
        # instructions per request run before it).
        sys.stdout.flush()
        os._exit(0)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("bench.instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="talkgate-instructions-") as name:
        directory = Path(name)
        database = directory / "talks.db"
        print(f"filling {database.name} with {FILL:,} talks", flush=True)
        asyncio.run(fill(f"sqlite:///{database}", FILL))
        base = _counted(valgrind, database, args.query, WARM_UP, directory)
        print(f"  {WARM_UP} requests: {base:,} instructions", flush=True)
        total = _counted(valgrind, database, args.query, WARM_UP + args.requests, directory)
        print(f"  {WARM_UP + args.requests} requests: {total:,} instructions", flush=True)
    per_request = (total - base) / args.requests
    print(
        f"{args.query}: {per_request / 1e6:.2f} M instructions per request"
        f" ({args.requests} requests after {WARM_UP}, in process, under callgrind)"
    )


if __name__ == "__main__":
    main()
