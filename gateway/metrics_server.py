"""The metrics port: /metrics on a listener of its own (TALKGATE_METRICS_PORT).

A scraper then reaches the gateway on a port that the proxy in front never forwards, so the
metrics need no key; with TALKGATE_METRICS_TOKEN set they still ask for it. The lifespan
starts the listener beside whatever serves the app, and stops it before the app closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.metrics import MetricsEndpoint

log = logging.getLogger("talkgate")


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM and SIGINT to the one serving the app."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def metrics_port(endpoint: MetricsEndpoint, host: str, port: int) -> AsyncIterator[int]:
    """Serve `endpoint` on `host:port` while the block runs; yields the port bound (for 0).

    A port that cannot be bound fails the start-up with the reason, as the main port does.
    """
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise OSError(f"cannot listen for metrics on {host}:{port}: {exc.strerror}") from None
    app = Starlette(routes=[Route("/metrics", endpoint.handle, methods=["GET"])])
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = _Listener(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        bound: int = sock.getsockname()[1]
        log.info("metrics served on their own port", extra={"host": host, "port": bound})
        yield bound
    finally:
        server.should_exit = True
        await task
        sock.close()
