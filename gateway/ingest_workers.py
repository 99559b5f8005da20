"""Bodies checked in worker processes, so that `talkgate ingest` spends its own GIL on storing.

Parsing and validating a talk costs more than storing it, and both need the GIL: in one
process they take turns. Workers check whole batches (`check_body`, as the webhook does) and
answer with one orjson document per batch, handed over in a file: encoding it costs a
quarter of pickling the same talks, and decoding it no more than unpickling them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from gateway.ingest import Invalid, Valid, check_body
from gateway.payload import (
    CHANNEL_FIELDS,
    CUSTOMER_FIELDS,
    EVENT_FIELDS,
    MESSAGE_FIELDS,
    TALK_FIELDS,
    USER_FIELDS,
    Document,
    NormalizedTalk,
)


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group: the main process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_batch(raws: list[bytes], zone: tzinfo, directory: str) -> str:
    # Talks hold only what JSON holds (the store keeps them as JSON): orjson carries them whole.
    answer = orjson.dumps([_plain(check_body(raw, zone)) for raw in raws])
    # Through a file, not the pool's pipe: the main process reads a pipe 64 KiB at a time,
    # taking its busy GIL for each chunk while this worker waits, and a file at once (a few
    # per cent faster, and less memory, in bench.ingest_profile's runs).
    handle, path = tempfile.mkstemp(dir=directory, suffix=".json")
    with os.fdopen(handle, "wb") as out:
        out.write(answer)
    return path


def _plain(check: Valid | Invalid) -> list[Any]:
    if isinstance(check, Invalid):
        return [check.status, check.reason, check.errors]
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
    return [
        Invalid(*item) if len(item) == 3 else Valid([_talk(t) for t in item[0]])
        for item in orjson.loads(data)
    ]


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


class CheckPool:
    """Worker processes checking batches of bodies; each answer arrives on its own future.

    A worker that dies fails the futures of every batch in hand with BrokenProcessPool.
    """

    def __init__(self, zone: tzinfo, workers: int) -> None:
        self._zone = zone
        # Answers left behind by a failure go with it.
        self._answers = tempfile.TemporaryDirectory(prefix="talkgate-ingest-")
        # Spawned, not forked: the main process already runs threads (the store's writer).
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
        )

    def check(self, raws: list[bytes]) -> asyncio.Future[str]:
        """Send a batch to the next free worker; `decode` its answer."""
        work = self._executor.submit(_check_batch, raws, self._zone, self._answers.name)
        return asyncio.wrap_future(work)

    def close(self) -> None:
        """Drop the batches not started, wait for the ones in hand, stop the workers."""
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            self._answers.cleanup()

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
