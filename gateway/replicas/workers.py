"""`talkgate serve --workers N`: N processes answering on one port.

uvicorn's supervisor runs them (uvicorn.supervisors.Multiprocess): it binds the port once and
hands the socket to every worker, starts a new worker in place of one that dies, and on
SIGTERM or SIGINT stops them all, each draining its requests as a single `serve` does. Each
worker builds its own app with `worker_app`, from the environment the supervisor leaves it.

The workers share the store (talks, the generation the response cache is keyed on, login
tickets, revoked sessions, agent statuses), the key that seals sessions and tickets (made
here when TALKGATE_SECRET_KEY is unset) and events: through Redis when TALKGATE_REDIS_URL is
set, else between themselves (gateway/replicas/siblings.py). Without Redis, rate limits,
the recording cache, automatic persisted queries and circuit breakers are each worker's
own. /metrics on any worker answers for all of them (prometheus_client's multiprocess
mode).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
from pathlib import Path

from starlette.applications import Starlette

from gateway.garbage import collect_less
from gateway.metrics import MULTIPROCESS_DIR_ENV
from gateway.settings import Settings

log = logging.getLogger("talkgate")

# What the supervisor tells its workers, beside the settings.
EVENTS_DIR_ENV = "TALKGATE_WORKER_EVENTS_DIR"
SUPERVISOR_ENV = "TALKGATE_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def worker_app() -> Starlette:
    """The app of one worker (uvicorn calls this factory in each worker process)."""
    from gateway.http.app import create_app
    from gateway.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    _end_with_supervisor()
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        from prometheus_client import multiprocess

        # This worker's live gauges leave the sum when it ends (its counters stay in it).
        atexit.register(multiprocess.mark_process_dead, os.getpid())
    events = os.environ.get(EVENTS_DIR_ENV)
    app = create_app(settings, siblings=Path(events) if events else None)
    collect_less()
    return app


def _end_with_supervisor() -> None:
    """Have this worker sent SIGTERM when its supervisor dies without stopping it (SIGKILL,
    the OOM killer), so that it never goes on serving alone, holding the port."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is not None and os.getppid() != int(supervisor):  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def serve_workers(settings: Settings, workers: int, sock: socket.socket) -> int:
    """Run `workers` processes on `sock` (bound to the settings' address) until SIGTERM or
    SIGINT; returns the exit status: 0, or 3 (uvicorn's start-up failure) when a worker could
    not start."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from gateway.http.server import uvicorn_config

    # Workers read their settings as this process did, with what the command line changed.
    os.environ["TALKGATE_HOST"] = settings.host
    os.environ["TALKGATE_PORT"] = str(settings.port)
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    if settings.secret_key is None:
        log.warning(
            "TALKGATE_SECRET_KEY is not set: agent sessions and login links are sealed with a "
            "key made at start-up for these workers; they stop working on restart and on "
            "other replicas"
        )
        os.environ["TALKGATE_SECRET_KEY"] = secrets.token_urlsafe(32)
    with contextlib.ExitStack() as stack:
        # Each worker keeps its metrics there; a scrape of any worker answers for all.
        figures = stack.enter_context(tempfile.TemporaryDirectory(prefix="talkgate-metrics-"))
        os.environ[MULTIPROCESS_DIR_ENV] = figures
        if settings.redis_url is None:
            events = stack.enter_context(tempfile.TemporaryDirectory(prefix="talkgate-"))
            os.environ[EVENTS_DIR_ENV] = events
            log.warning(
                "TALKGATE_REDIS_URL is not set: each of the %d workers keeps its own rate "
                "limits (a key may make up to %d requests a minute in all)",
                workers,
                workers * settings.rate_limit_per_minute,
            )
        config = uvicorn_config(f"{__name__}:worker_app", settings, workers=workers)
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0
