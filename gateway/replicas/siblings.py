"""Events between the worker processes of one `talkgate serve --workers N`, without Redis.

Without it a delivery through one worker would not reach a subscriber on another; this makes
subscriptions correct on one machine instead of refusing several workers without Redis
(which uvicorn has no answer for: its workers share a socket, nothing else).

Each worker binds a Unix datagram socket, named by its pid, in a directory the supervisor
makes for the run, and sends every event it publishes to each other socket there: the kernel
carries them, nothing runs in between, and a worker the supervisor starts in place of a dead
one joins by binding its own. Events are small (a talk id, an agent status). A worker whose
socket buffer is full loses the event, counted as a slow subscriber's loss is; the socket of
a worker that died is removed by the first publisher it refuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson

from gateway.replicas.pubsub import Event, LocalFanout

log = logging.getLogger("talkgate.pubsub")

# Far above any event (~100 bytes), within a Unix datagram socket's default buffer.
MAX_EVENT_BYTES = 64 * 1024
SUFFIX = ".sock"


class SiblingBroker:
    """Events reach the subscribers of every worker of this `serve`; each fans out locally."""

    def __init__(
        self,
        fanout: LocalFanout,
        directory: Path,
        *,
        on_drop: Callable[[], None] | None = None,
        name: str | None = None,
    ) -> None:
        """`name` is this worker's in `directory`: its pid unless told (tests)."""
        self.fanout = fanout
        self._directory = directory
        self._on_drop = on_drop or (lambda: None)
        self._path = directory / f"{name or os.getpid()}{SUFFIX}"
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        self._path.unlink(missing_ok=True)  # left by a dead process that had this pid
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(self._path))
        self._socket = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)

    async def close(self) -> None:
        if self._socket is None:
            return
        asyncio.get_running_loop().remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        self._path.unlink(missing_ok=True)

    async def publish(self, topic: str, event: Event) -> None:
        self.fanout.deliver(topic, event)
        frame = orjson.dumps([topic, event])
        if self._socket is None or len(frame) > MAX_EVENT_BYTES:
            log.warning("event not shared with the other workers", extra={"topic": topic})
            return
        for path in self._directory.glob(f"*{SUFFIX}"):
            if path != self._path:
                self._send(self._socket, path, frame)

    def subscribe(self, topic: str) -> AsyncIterator[Event]:
        return self.fanout.stream(topic)

    def _send(self, sock: socket.socket, path: Path, frame: bytes) -> None:
        try:
            sock.sendto(frame, str(path))
        except BlockingIOError:  # that worker's buffer is full: it is not keeping up
            self._on_drop()
        except (ConnectionRefusedError, FileNotFoundError):  # that worker has died
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("event not shared with worker %s: %s", path.stem, exc)

    def _receive(self) -> None:
        sock = self._socket
        while sock is not None:
            try:
                frame = sock.recv(MAX_EVENT_BYTES)
            except BlockingIOError:
                return
            topic, event = orjson.loads(frame)
            self.fanout.deliver(topic, event)
