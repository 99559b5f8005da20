"""What the reliability tests share: a cuttable loopback TCP proxy and a real `serve` process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.auth import key_digest
from tests.support import KEYS, WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[2]


class TcpProxy:
    """Forwards loopback connections to `target`; `cut()` drops them all, `restore()` resumes.

    While cut, new connections are accepted and reset at once, as a host that went away
    would answer. `connections` counts every connection accepted, cut or not.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.cut_off = False
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Reset every open connection and every new one until `restore()`."""
        self.cut_off = True
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.cut_off:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self._target), 5)
        except (OSError, TimeoutError):
            _reset(writer)
            return
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.cut_off:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), not a polite FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@asynccontextmanager
async def proxy_to(host: str, port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


# -- a real `talkgate serve` ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a keyed `serve`: the test keys, webhook secret and store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    keys = [
        {"name": name, "sha256": key_digest(key), "scopes": sorted(scopes)}
        for key, (name, scopes) in KEYS.items()
    ]
    env |= {
        "TALKGATE_API_KEYS": json.dumps(keys),
        "TALKGATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TALKGATE_SECRET_KEY": "secret-key-for-reliability-tests-5b1",
        "TALKGATE_DATABASE_URL": database_url,
        "TALKGATE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


@dataclass
class Served:
    """A running `python -m gateway.cli serve`; its base URL and its stderr file."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def _spawn_serve(
    directory: Path, env: dict[str, str], port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def start_serve(directory: Path, env: dict[str, str], *, name: str = "serve") -> Served:
    """Start `serve` on a free port and wait (bounded) until /readyz answers 200."""
    port = free_port()
    log_path = directory / f"{name}-{port}.log"
    process = _spawn_serve(directory, env, port, log_path)
    served = Served(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{served.base}/readyz")).status_code == 200:
                    return served
            if process.poll() is not None or time.monotonic() > deadline:
                served.kill()
                raise RuntimeError(f"serve did not start: {served.log()}")
            await asyncio.sleep(0.1)


async def wait_exit(process: subprocess.Popen[bytes], within_s: float) -> int | None:
    """The exit code once the process ends, or None if it still runs after `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    return process.poll()
