"""`talkgate serve --workers 2`: two processes on one port, one store, one truth.

Each test runs the real command. Which worker took a connection is read from /proc (the
worker holding the server end of it), so a test can hold a connection to each worker and
send a write through one and the read through the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateway.auth import key_digest
from gateway.settings import SCOPES
from tests.backends import REDIS_URL, fresh_schema, require_redis
from tests.factories import snapshot, talk
from tests.reliability.support import free_port, wait_exit
from tests.support import graphql_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

ROOT = Path(__file__).resolve().parents[1]
WEBHOOK_SECRET = "workers-webhook-secret-7d41c9"
# Rate-limit buckets in Redis are per key name, and other runs may share the Redis server.
KEY = f"tgk_workers_{secrets.token_hex(8)}"
KEY_NAME = f"workers-{secrets.token_hex(4)}"
# Talk ids of this run's own: with Redis, events reach every talkgate on the server.
RUN = 20_000_000 + secrets.randbelow(1_000_000) * 1000
START_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 1.0
PUSH_ATTEMPTS = 10


# -- a running `serve --workers 2` ----------------------------------------------------------


@dataclass
class Workers:
    """A running `python -m gateway.cli serve --workers N`, in a process group of its own."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> set[int]:
        """The worker processes (the supervisor's children that run the app)."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if parent == self.process.pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
        return found

    def worker_of(self, client_port: int) -> int:
        """The worker holding the server end of the connection from `client_port`."""
        inode = _server_inode(self.port, client_port)
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) == f"socket:[{inode}]":
                            return pid
        raise AssertionError(f"no worker holds the connection from port {client_port}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _server_inode(server_port: int, client_port: int) -> int:
    """The socket inode of the server end of 127.0.0.1:client_port -> 127.0.0.1:server_port."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[9])
    raise AssertionError(f"no connection from port {client_port} to port {server_port}")


def environment(database_url: str, **extra: str) -> dict[str, str]:
    """The caller's environment without any TALKGATE_ setting, plus these workers' settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    talkme = f"http://127.0.0.1:{free_port()}"  # closed: nothing here calls Talk.me
    entry = {"name": KEY_NAME, "sha256": key_digest(KEY), "scopes": sorted(SCOPES)}
    env |= {
        "TALKGATE_DATABASE_URL": database_url,
        "TALKGATE_API_KEYS": json.dumps([entry]),
        "TALKGATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TALKGATE_TALKME_LOGIN_URL": f"{talkme}/login",
        "TALKGATE_TALKME_AGENT_API_URL": talkme,
        "TALKGATE_TALKME_BC_API_URL": talkme,
        # Held connections stay on their worker for the whole test.
        "TALKGATE_KEEP_ALIVE_TIMEOUT_S": "120",
        "TALKGATE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.update({f"TALKGATE_{name.upper()}": value for name, value in extra.items()})
    return env


def spawn(
    directory: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = directory / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), *args],
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # its workers too are killed with the group
        )
    return process, port, log_path


@asynccontextmanager
async def serving(directory: Path, env: dict[str, str], workers: int = 2) -> AsyncIterator[Workers]:
    """`serve --workers N`, once each of its N workers has answered /readyz; killed after."""
    # The supervisor's directories (events, metrics) go in one of the test's own, removed
    # even when the supervisor is killed; short, as a Unix socket path is at most 107 bytes.
    scratch = tempfile.TemporaryDirectory(prefix="tgw-", dir="/tmp")
    process, port, log_path = spawn(
        directory, env | {"TMPDIR": scratch.name}, "--workers", str(workers)
    )
    served = Workers(process, port, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        ready: set[int] = set()
        while len(ready) < workers:
            with contextlib.suppress(httpx.TransportError):
                async with httpx.AsyncClient(base_url=served.base, timeout=1) as client:
                    response = await client.get("/readyz")
                    if response.status_code == 200:
                        ready.add(served.worker_of(client_port(response)))
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workers {ready} of {workers} ready:\n{served.log()}")
            if len(ready) < workers:
                await asyncio.sleep(0.05)
        yield served
    finally:
        served.kill()
        scratch.cleanup()


def running(pids: set[int]) -> set[int]:
    """Those of `pids` that are still processes."""
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def client_port(response: httpx.Response) -> int:
    sock = response.extensions["network_stream"].get_extra_info("socket")
    return int(sock.getsockname()[1])


# -- a connection to each worker ------------------------------------------------------------


class Pinned:
    """An HTTP client of one worker: one kept-alive connection, checked on every request."""

    def __init__(self, served: Workers, client: httpx.AsyncClient, pid: int, port: int) -> None:
        self.served = served
        self.client = client
        self.pid = pid
        self._port = port

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = await self.client.request(method, path, **options)
        assert client_port(response) == self._port, "the held connection was replaced"
        return response

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request(
            "POST",
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        return graphql_data(response)

    async def post_talk(self, payload: object) -> None:
        response = await self.request(
            "POST", "/webhooks/talks", json=payload, headers={"X-Webhook-Token": WEBHOOK_SECRET}
        )
        assert response.status_code == 202, response.text

    async def cache_hits(self) -> float:
        response = await self.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200, response.text
        for line in response.text.splitlines():
            if line.startswith('talkgate_response_cache_total{outcome="hit"}'):
                return float(line.split()[-1])
        return 0.0


@asynccontextmanager
async def one_client_per_worker(served: Workers, workers: int = 2) -> AsyncIterator[list[Pinned]]:
    """New connections until each worker holds one; the clients of those connections."""
    pinned: dict[int, Pinned] = {}
    spare: list[httpx.AsyncClient] = []
    try:
        for _ in range(200):
            client = httpx.AsyncClient(
                base_url=served.base, timeout=10, limits=httpx.Limits(max_connections=1)
            )
            response = await client.get("/healthz")
            port = client_port(response)
            pid = served.worker_of(port)
            if pid in pinned:
                spare.append(client)
            else:
                pinned[pid] = Pinned(served, client, pid, port)
            if len(pinned) == workers:
                break
        assert len(pinned) == workers, f"200 connections reached only workers {set(pinned)}"
        for client in spare:
            await client.aclose()
        spare.clear()
        yield list(pinned.values())
    finally:
        for client in [*spare, *(p.client for p in pinned.values())]:
            await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'talkgate.db'}"
    postgres: str = request.getfixturevalue("postgres_database")
    return await fresh_schema(postgres)


async def redis_url() -> str:
    await require_redis()
    return REDIS_URL


# -- the store: a write through one worker is read fresh through the other ------------------

TALK = "query($id: ID!) { talk(id: $id) { id: databaseId histories { totalCount } } }"


async def test_a_delivery_through_one_worker_is_read_fresh_through_the_other(
    tmp_path: Path, database_url: str
) -> None:
    talk_id = RUN + 1
    async with (
        serving(tmp_path, environment(database_url)) as served,
        one_client_per_worker(served) as (a, b),
    ):
        await a.post_talk(snapshot(talk_id, [talk_id * 10]))
        messages = [talk_id * 10]
        for step in range(1, 7):
            writer, reader = (a, b) if step % 2 else (b, a)
            # The reader has the talk as it was in its response cache, and answers from it.
            hits = await reader.cache_hits()
            for _ in range(2):
                before = await reader.gql(TALK, {"id": str(talk_id)})
                assert before["talk"]["histories"] == {"totalCount": len(messages)}
            assert await reader.cache_hits() > hits, "the reader's response cache was not used"

            messages.append(talk_id * 10 + step)
            await writer.post_talk(snapshot(talk_id, messages))
            after = await reader.gql(TALK, {"id": str(talk_id)})
            assert after["talk"]["histories"] == {"totalCount": len(messages)}, (
                f"worker {reader.pid} answered a stale talk after a delivery through {writer.pid}"
            )


TALK_COUNT = "{ talks(first: 1) { totalCount } }"


async def test_concurrent_deliveries_on_new_connections_reach_both_workers_and_all_land(
    tmp_path: Path, database_url: str
) -> None:
    deliveries = 40
    async with (
        serving(tmp_path, environment(database_url)) as served,
        one_client_per_worker(served) as pinned,
    ):
        for worker in pinned:  # each worker has answered the count of the empty store
            assert (await worker.gql(TALK_COUNT))["talks"]["totalCount"] == 0

        async def deliver(index: int) -> int:
            async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
                response = await client.post(
                    "/webhooks/talks",
                    json=talk(RUN + 100 + index),
                    headers={"X-Webhook-Token": WEBHOOK_SECRET},
                )
                assert response.status_code == 202, response.text
                return served.worker_of(client_port(response))

        writers = await asyncio.gather(*(deliver(i) for i in range(deliveries)))

        assert set(writers) == served.pids(), f"deliveries reached only {set(writers)}"
        for worker in pinned:
            count = (await worker.gql(TALK_COUNT))["talks"]["totalCount"]
            assert count == deliveries, f"worker {worker.pid} counts {count}"


# -- login tickets: sealed with one key, redeemed once, whichever worker ---------------------

AGENT_LOGIN = "mutation($i: AgentCredentialsInput!) { agentLogin(input: $i) { launchUrl } }"


async def test_a_login_link_from_one_worker_opens_once_on_the_other_without_a_secret_key(
    tmp_path: Path,
) -> None:
    env = environment(f"sqlite:///{tmp_path / 'talkgate.db'}")  # no TALKGATE_SECRET_KEY
    async with serving(tmp_path, env) as served, one_client_per_worker(served) as (a, b):
        data = await a.gql(AGENT_LOGIN, {"i": {"login": "1001", "password": "pw-Workers-3"}})
        path = "/" + data["agentLogin"]["launchUrl"].split("/", 3)[3]
        page = await b.request("GET", path)
        again = await a.request("GET", path)
    assert page.status_code == 200, page.text
    assert 'name="login" value="1001"' in page.text
    assert again.status_code == 410, again.text
    assert "TALKGATE_SECRET_KEY is not set" in served.log()


# -- subscriptions: a subscriber on one worker hears of a delivery through the other ---------

TALK_UPDATED = "subscription { talkUpdated { id: databaseId } }"


async def subscribed_socket_per_worker(served: Workers) -> dict[int, ClientConnection]:
    sockets: dict[int, ClientConnection] = {}
    for _ in range(200):
        ws = await connect(
            served.base.replace("http://", "ws://") + "/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        )
        pid = served.worker_of(ws.local_address[1])
        if pid in sockets:
            await ws.close()
            continue
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {KEY}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": TALK_UPDATED}})
        )
        sockets[pid] = ws
        if len(sockets) == 2:
            return sockets
    raise AssertionError(f"200 connections reached only workers {set(sockets)}")


async def pushed_through(ws: ClientConnection, writer: Pinned, first_id: int) -> int:
    """The id of the first talk pushed to `ws` among those delivered through `writer`,
    delivering another while none arrives (`subscribe` is not acknowledged: a delivery
    before the subscription is set up is not pushed)."""
    delivered: set[int] = set()
    for attempt in range(PUSH_ATTEMPTS):
        talk_id = first_id + attempt
        await writer.post_talk(talk(talk_id))
        delivered.add(talk_id)
        deadline = time.monotonic() + PUSH_TIMEOUT_S
        with contextlib.suppress(TimeoutError):
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
                received = json.loads(raw)
                assert received["type"] == "next", received
                pushed = int(received["payload"]["data"]["talkUpdated"]["id"])
                if pushed in delivered:
                    return pushed
    raise AssertionError(f"nothing pushed after {PUSH_ATTEMPTS} deliveries")


@pytest.mark.parametrize("shared_by", ["workers", "redis"])
async def test_a_subscriber_on_one_worker_sees_a_delivery_through_the_other(
    tmp_path: Path, database_url: str, shared_by: str
) -> None:
    extra = {"redis_url": await redis_url()} if shared_by == "redis" else {}
    async with (
        serving(tmp_path, environment(database_url, **extra)) as served,
        one_client_per_worker(served) as pinned,
    ):
        sockets = await subscribed_socket_per_worker(served)
        try:
            for index, writer in enumerate(pinned):
                (listener,) = (ws for pid, ws in sockets.items() if pid != writer.pid)
                first_id = RUN + 500 + index * PUSH_ATTEMPTS
                pushed = await pushed_through(listener, writer, first_id)
                assert first_id <= pushed < first_id + PUSH_ATTEMPTS
        finally:
            for ws in sockets.values():
                await ws.close()


# -- rate limits: per worker without Redis, one limit with it --------------------------------


async def statuses(worker: Pinned, count: int) -> list[int]:
    codes = []
    for _ in range(count):
        response = await worker.request(
            "POST",
            "/graphql",
            json={"query": "{ talks(first: 1) { totalCount } }"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        codes.append(response.status_code)
    return codes


async def test_without_redis_each_worker_keeps_its_own_rate_limit(tmp_path: Path) -> None:
    env = environment(f"sqlite:///{tmp_path / 'talkgate.db'}", rate_limit_per_minute="3")
    async with serving(tmp_path, env) as served, one_client_per_worker(served) as (a, b):
        assert await statuses(a, 4) == [200, 200, 200, 429]
        assert await statuses(b, 4) == [200, 200, 200, 429]
    assert "each of the 2 workers keeps its own rate limits" in served.log()


async def test_with_redis_the_rate_limit_holds_across_workers(tmp_path: Path) -> None:
    env = environment(
        f"sqlite:///{tmp_path / 'talkgate.db'}",
        redis_url=await redis_url(),
        rate_limit_per_minute="4",
    )
    async with serving(tmp_path, env) as served, one_client_per_worker(served) as (a, b):
        codes = []
        for _ in range(3):
            codes += await statuses(a, 1) + await statuses(b, 1)
    assert codes == [200, 200, 200, 200, 429, 429]


# -- metrics: a scrape of any worker counts the requests of all ----------------------------


def counted(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_scrape_of_either_worker_counts_the_requests_of_both(tmp_path: Path) -> None:
    not_found = 'talkgate_http_requests_total{method="GET",route="other",status="404"}'
    async with (
        serving(tmp_path, environment(f"sqlite:///{tmp_path / 'talkgate.db'}")) as served,
        one_client_per_worker(served) as (a, b),
    ):
        for worker, count in ((a, 3), (b, 4)):
            for _ in range(count):
                assert (await worker.request("GET", "/nowhere")).status_code == 404
        scrapes = [
            await worker.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
            for worker in (a, b)
        ]
    assert [counted(scrape.text, not_found) for scrape in scrapes] == [7.0, 7.0]


# -- every worker keeps the connection limits of `serve` -----------------------------------


async def accepted_by(served: Workers, client_port: int) -> int:
    """The worker that accepted the connection from `client_port`, once one has."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return served.worker_of(client_port)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def test_every_worker_closes_a_connection_that_never_finishes_its_headers(
    tmp_path: Path,
) -> None:
    env = environment(f"sqlite:///{tmp_path / 'talkgate.db'}", header_timeout_s="1")
    async with serving(tmp_path, env) as served:
        slow: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        for _ in range(200):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            pid = await accepted_by(served, writer.get_extra_info("sockname")[1])
            if pid in slow:
                writer.close()
                continue
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            slow[pid] = (reader, writer)
            if len(slow) == 2:
                break
        started = time.monotonic()
        answers = [await asyncio.wait_for(reader.read(), 5) for reader, _ in slow.values()]
        elapsed = time.monotonic() - started
        for _, writer in slow.values():
            writer.close()
    assert len(answers) == 2
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
    assert elapsed < 3


# -- stopping, and workers that die ---------------------------------------------------------


async def test_sigterm_stops_every_worker_and_exits_0(tmp_path: Path) -> None:
    async with serving(tmp_path, environment(f"sqlite:///{tmp_path / 'talkgate.db'}")) as served:
        workers = served.pids()
        assert len(workers) == 2
        served.process.send_signal(signal.SIGTERM)
        code = await wait_exit(served.process, 20)
        assert code == 0, served.log()
        assert not running(workers)
        assert "Traceback" not in served.log()


async def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    async with serving(tmp_path, environment(f"sqlite:///{tmp_path / 'talkgate.db'}")) as served:
        first = served.pids()
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while len(served.pids() - {victim}) < 2:
            assert time.monotonic() < deadline, f"not replaced: {served.pids()}"
            await asyncio.sleep(0.1)
        async with one_client_per_worker(served) as pinned:
            assert victim not in {worker.pid for worker in pinned}


async def test_workers_end_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    async with serving(tmp_path, environment(f"sqlite:///{tmp_path / 'talkgate.db'}")) as served:
        workers = served.pids()
        served.process.send_signal(signal.SIGKILL)  # the supervisor alone, not its group
        served.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while running(workers):
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            await asyncio.sleep(0.1)


# -- start-up mistakes ----------------------------------------------------------------------


def refusal(directory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "gateway.cli", "serve", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_with_several_workers_is_a_one_line_error(tmp_path: Path) -> None:
    env = environment(f"sqlite:///{tmp_path / 'talkgate.db'}")
    done = refusal(tmp_path, env, "--demo", "--workers", "2")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("talkgate: --demo runs in one process")


def test_a_metrics_port_with_several_workers_is_a_one_line_error(tmp_path: Path) -> None:
    env = environment(f"sqlite:///{tmp_path / 'talkgate.db'}", metrics_port="0")
    done = refusal(tmp_path, env, "--workers", "2")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "TALKGATE_METRICS_PORT" in done.stderr


def test_a_store_that_cannot_be_reached_is_one_line_before_any_worker(tmp_path: Path) -> None:
    env = environment(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    done = refusal(tmp_path, env, "--port", str(free_port()), "--workers", "2")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "cannot be reached (connection refused)" in done.stderr


# Loaded by every interpreter on its PYTHONPATH: in the workers alone (their supervisor sets
# TALKGATE_SUPERVISOR_PID for them), SQLite can open no file.
BROKEN_WORKERS = """
import os
if "TALKGATE_SUPERVISOR_PID" in os.environ:
    import sqlite3

    def connect(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    sqlite3.connect = connect
"""


def test_a_worker_that_cannot_start_ends_serve_with_status_3(tmp_path: Path) -> None:
    # The checks before serving pass (the supervisor opens the store); the workers then fail.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BROKEN_WORKERS)
    env = environment(f"sqlite:///{tmp_path / 'talkgate.db'}")
    env["PYTHONPATH"] = f"{shim}{os.pathsep}{env['PYTHONPATH']}"
    done = refusal(tmp_path, env, "--port", str(free_port()), "--workers", "2")
    assert done.returncode == 3, done.stderr
    assert "failed to start" in done.stderr


def test_serve_help_and_the_readme_say_what_needs_redis_with_several_workers(
    tmp_path: Path,
) -> None:
    done = refusal(tmp_path, environment(f"sqlite:///{tmp_path / 'talkgate.db'}"), "--help")
    assert done.returncode == 0
    usage = " ".join(done.stdout.split())
    assert "[--workers N]" in usage
    assert "TALKGATE_REDIS_URL" in usage
    assert "own rate limits" in usage
    readme = (ROOT / "README.md").read_text()
    assert "`talkgate serve [--demo [--reset]] [--host H] [--port P] [--workers N]`" in readme
    assert "## Several workers on one machine" in readme
