"""Bodies checked in worker processes, so that `talkgate ingest` spends its own GIL on storing.

Parsing and validating a talk costs more than storing it, and both need the GIL: in one
process they take turns. Workers check whole batches (`check_body`, as the webhook does) and
answer with a file of orjson lines, one per body: encoding them costs a quarter of pickling
the same talks, and decoding them no more than unpickling them.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import tzinfo
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from gateway.ingest.ingestor import DEFAULT_MAX_DEPTH, Invalid, Valid, check_body
from gateway.storage.documents import (
    CHANNEL_FIELDS,
    CUSTOMER_FIELDS,
    EVENT_FIELDS,
    MESSAGE_FIELDS,
    TALK_FIELDS,
    USER_FIELDS,
    Document,
    NormalizedTalk,
)

# How much lower the workers' scheduling priority is than the storing process's. It stores
# batches in file order, so it is the one part that must never wait for a CPU; the workers
# take whatever CPU it leaves. On two CPUs this lets two workers and the storing process
# share them fully: 5-18 % less wall time than one worker at the same priority.
WORKER_NICENESS = 10


def _start_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):  # not on Windows
        os.nice(WORKER_NICENESS)
    _die_with(parent)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """Linux: have this worker killed when the process that started it ends, however it ends
    (SIGKILL included), instead of waiting forever for work and holding that process's output
    pipes open."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


def _check_batch(raws: list[bytes], zone: tzinfo, max_depth: int, directory: str) -> str:
    # Through a file, not the pool's pipe: the main process reads a pipe 64 KiB at a time,
    # taking its busy GIL for each chunk while this worker waits, and a file at once (a few
    # per cent faster, and less memory, in bench.ingest_profile's runs).
    handle, path = tempfile.mkstemp(dir=directory, suffix=".ndjson")
    with os.fdopen(handle, "wb") as out:
        # Talks hold only what JSON holds (the store keeps them as JSON): orjson carries them
        # whole. One line per body, written as it is checked: a worker holds one body's
        # talks at a time, not the whole batch's (some 10 MB less per worker).
        for raw in raws:
            out.write(orjson.dumps(_plain(check_body(raw, zone, max_depth))) + b"\n")
    return path


def _plain(check: Valid | Invalid) -> list[Any]:
    if isinstance(check, Invalid):
        return [check.status, check.reason, check.errors, check.error_count, check.truncated]
    return [[_plain_talk(t) for t in check.talks]]


# A talk on the way: its id and agent ids, and each document as [id, text, field values],
# the values in the order of its kind's names. The texts travel as strings, which orjson
# decodes at the speed of a copy: the storing process never decodes a document.
def _plain_talk(talk: NormalizedTalk) -> list[Any]:
    return [
        talk.id,
        _plain_doc(talk.doc, TALK_FIELDS),
        [_plain_doc(m, MESSAGE_FIELDS) for m in talk.messages],
        [_plain_doc(e, EVENT_FIELDS) for e in talk.events],
        None if talk.customer is None else _plain_doc(talk.customer, CUSTOMER_FIELDS),
        [_plain_doc(u, USER_FIELDS) for u in talk.users],
        [_plain_doc(ch, CHANNEL_FIELDS) for ch in talk.channels],
        sorted(talk.agent_ids),
    ]


def _plain_doc(document: Document, names: tuple[str, ...]) -> list[Any]:
    return [document.id, document.text, [document.fields[name] for name in names]]


def decode(answer: str) -> list[Valid | Invalid]:
    """The checks of a batch, from a worker's answer (which is then gone)."""
    path = Path(answer)
    data = path.read_bytes()
    path.unlink()
    # orjson escapes every newline inside a string: each line is one body's check.
    return [_check(orjson.loads(line)) for line in data.splitlines()]


def _check(item: list[Any]) -> Valid | Invalid:
    return Invalid(*item) if len(item) == 5 else Valid([_talk(t) for t in item[0]])


def _talk(item: list[Any]) -> NormalizedTalk:
    talk_id, doc, messages, events, customer, users, channels, agent_ids = item
    return NormalizedTalk(
        talk_id,
        _doc(doc, TALK_FIELDS),
        [_doc(m, MESSAGE_FIELDS) for m in messages],
        [_doc(e, EVENT_FIELDS) for e in events],
        None if customer is None else _doc(customer, CUSTOMER_FIELDS),
        [_doc(u, USER_FIELDS) for u in users],
        [_doc(ch, CHANNEL_FIELDS) for ch in channels],
        frozenset(agent_ids),
    )


def _doc(item: list[Any], names: tuple[str, ...]) -> Document:
    doc_id, text, values = item
    return Document(doc_id, text, dict(zip(names, values, strict=True)))


class _KeptSpawnContext(SpawnContext):
    """multiprocessing's spawn context, keeping every process it makes (`made`)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[SpawnProcess] = []

    def Process(self, *args: Any, **kwargs: Any) -> SpawnProcess:  # type: ignore[override]
        process = SpawnProcess(*args, **kwargs)
        self.made.append(process)
        return process


class CheckPool:
    """Worker processes checking batches of bodies; each answer arrives on its own future.

    A worker that dies fails the futures of every batch in hand with BrokenProcessPool.
    """

    def __init__(self, zone: tzinfo, workers: int, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self._zone = zone
        self._max_depth = max_depth
        # Answers left behind by a failure go with it.
        self._answers = tempfile.TemporaryDirectory(prefix="talkgate-ingest-")
        # Spawned, not forked: the main process already runs threads (the store's writer).
        self._context = _KeptSpawnContext()
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=self._context,
            initializer=_start_worker,
            # Spawned from this (the event loop's) thread, whose end a worker's death follows.
            initargs=(os.getpid(),),
        )

    def check(self, raws: list[bytes]) -> asyncio.Future[str]:
        """Send a batch to the next free worker; `decode` its answer. BrokenProcessPool when
        a worker has died (raised by the pool, or by its spawning a replacement while the
        dead one's pipes close: CPython then fails with ValueError "bad value(s) in
        fds_to_keep", seen on a loaded machine)."""
        try:
            work = self._executor.submit(
                _check_batch, raws, self._zone, self._max_depth, self._answers.name
            )
        except (ValueError, OSError) as exc:
            raise BrokenProcessPool(f"a worker could not be started: {exc}") from exc
        return asyncio.wrap_future(work)

    def close(self, *, stop_now: bool = False) -> None:
        """Drop the batches not started, wait for the ones in hand, stop the workers; with
        `stop_now` (leaving on an error), kill the workers first instead of waiting."""
        # When a worker dies, the pool stops the others and waits for them, but a worker it
        # spawns for a batch submitted in that instant is never stopped: the pool would wait
        # for it, and it for work, forever. Killed here, every worker the pool made ends.
        if stop_now:
            self._kill_workers()
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            self._kill_workers()
            self._answers.cleanup()

    def _kill_workers(self) -> None:
        for process in self._context.made:
            if process.is_alive():
                process.kill()
                process.join()

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(stop_now=kind is not None)
