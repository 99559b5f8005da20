"""`talkgate ingest`'s work: talks read from JSON and NDJSON files, checked (parsed and
validated) by worker processes in batches while this process stores earlier ones, in file
order, with a progress line and a tally of what went where."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.ingest.ingestor import Body, BodyRejected, Ingestor
from gateway.ingest.workers import CheckPool, decode
from gateway.progress import Progress
from gateway.settings import Settings
from gateway.startup import opened_store
from gateway.storage.records import DeliveryOutcome


@dataclass
class Tally:
    """What an ingest did with the talks it read."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    changed: int = 0
    rejections: list[str] = field(default_factory=list)


_READ_BLOCK = 4 << 20


def _bodies(path: Path) -> Iterator[tuple[bytes, str, int]]:
    """(body, source, bytes consumed so far) for each talk in a JSON or NDJSON file."""
    # Read in large blocks: each read lets go of the GIL, and the store's writer thread may
    # keep it a whole switch interval before this thread has it back.
    with path.open("rb", buffering=_READ_BLOCK) as handle:
        first_line = handle.readline()
        handle.seek(0)
        head = first_line.strip()
        ndjson = False
        if head.startswith(b"{"):
            try:
                orjson.loads(head)
                ndjson = True
            except orjson.JSONDecodeError:
                ndjson = False
        if ndjson:
            consumed = 0
            for number, line in enumerate(handle, start=1):
                consumed += len(line)
                if line.strip():
                    yield line.strip(), f"file:{path.name}:{number}", consumed
            return
        raw = handle.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Not JSON as a whole: ingest it as one body so it is dead-lettered with its reason.
        yield raw, f"file:{path.name}", len(raw)
        return
    items = data if isinstance(data, list) and data else [data]
    for index, item in enumerate(items):
        consumed = len(raw) * (index + 1) // len(items)
        yield _encoded(item), f"file:{path.name}[{index}]", consumed


def _encoded(item: object) -> bytes:
    """One talk of a JSON array file as a body of its own: orjson's text, or for a talk nested
    past the 254 levels orjson encodes, the standard library's (it is refused for its depth
    and kept as a dead letter, as the webhook keeps it)."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 4000))  # orjson decodes at most 1,024 levels
        try:
            return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        finally:
            sys.setrecursionlimit(limit)


async def ingest_files(
    settings: Settings, paths: Sequence[Path], batch: int, workers: int
) -> Tally:
    """Ingest the talks of `paths` into the store of `settings`, `batch` bodies at a time
    checked by `workers` processes; the tally of what went where."""
    store = await opened_store(settings.database_url, migrate=settings.auto_migrate)
    announcing = announcer(settings)
    try:
        # With Redis, running servers hear of the changed talks, as from their own webhook.
        ingestor = Ingestor(
            store,
            settings.zone,
            announcing.broker if announcing else None,
            max_depth=settings.max_json_depth,
        )
        with CheckPool(settings.zone, workers, settings.max_json_depth) as pool:
            return await _FileIngest(ingestor, pool, batch, workers).run(paths)
    finally:
        await store.close()
        if announcing is not None:
            await announcing.client.aclose()


class _FileIngest:
    """Batches are checked (parsed, validated) by worker processes while this one stores
    earlier batches, in file order. A few batches at most are in hand, so memory stays
    bounded: a batch being stored, one decoded before it is, one per worker and one more."""

    def __init__(self, ingestor: Ingestor, pool: CheckPool, batch: int, workers: int) -> None:
        self.ingestor = ingestor
        self.pool = pool
        self.batch = batch
        self.workers = workers
        self.tally = Tally()
        self.pending: list[Body] = []
        self.checking: deque[tuple[list[Body], asyncio.Future[str]]] = deque()
        self.storing: asyncio.Task[list[DeliveryOutcome | BodyRejected]] | None = None

    async def run(self, paths: Sequence[Path]) -> Tally:
        total = sum(p.stat().st_size for p in paths)
        progress = Progress("ingest", total, sys.stderr, unit="talks")
        done_before = items = 0
        try:
            for path in paths:
                for body, source, consumed in _bodies(path):
                    self.pending.append(Body(body, source))
                    items += 1
                    if len(self.pending) >= self.batch:
                        await self._flush()
                    progress.update(done_before + consumed, items)
                done_before += path.stat().st_size
            if self.pending:
                await self._flush()
            while self.checking:
                await self._store_oldest()
            if self.storing is not None:
                self._count(await self.storing)
                self.storing = None
        finally:
            for _, answer in self.checking:  # a failure above: these batches are dropped
                _discard(answer)
            if self.storing is not None:  # let the batch in hand finish first
                await asyncio.gather(self.storing, return_exceptions=True)
        progress.update(total, items, final=True)
        return self.tally

    async def _flush(self) -> None:
        bodies, self.pending = self.pending, []
        self.checking.append((bodies, self.pool.check([body.raw for body in bodies])))
        if len(self.checking) > self.workers + 1:
            await self._store_oldest()

    async def _store_oldest(self) -> None:
        bodies, answer = self.checking.popleft()
        # Decoded while the store's writer thread stores the batch before it.
        checks = decode(await answer)
        task = asyncio.create_task(self.ingestor.ingest_checked(bodies, checks))
        previous, self.storing = self.storing, task
        if previous is not None:
            self._count(await previous)

    def _count(self, outcomes: list[DeliveryOutcome | BodyRejected]) -> None:
        tally = self.tally
        for outcome in outcomes:
            if isinstance(outcome, BodyRejected):
                tally.rejected += 1
                tally.rejections.append(f"{outcome.reason} (dead letter {outcome.dead_letter_id})")
            elif outcome.duplicate:
                tally.duplicates += 1
            else:
                tally.accepted += 1
                tally.changed += len(outcome.changed_ids)


def _discard(answer: asyncio.Future[Any]) -> None:
    """Drop a worker's answer nobody will wait for, without a 'never retrieved' warning."""
    if answer.done() and not answer.cancelled():
        answer.exception()
    else:
        answer.cancel()


def default_workers() -> int:
    """A worker per CPU this process may use; one or two.

    A worker checks a talk in more CPU time than this process takes to store it. Workers
    run at a lower priority (`WORKER_NICENESS`), so on two CPUs two of them use what this
    process leaves of both without ever slowing it; more would only take memory (some
    60 MB each).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 2))


@dataclass
class Announcer:
    client: Any
    broker: Any


def announcer(settings: Settings) -> Announcer | None:
    """A publish-only broker on TALKGATE_REDIS_URL, if set."""
    if settings.redis_url is None:
        return None
    from redis.asyncio import Redis

    from gateway.replicas.pubsub import LocalFanout
    from gateway.replicas.redis_shared import RedisBroker

    client = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=2.0)
    return Announcer(client, RedisBroker(client, LocalFanout()))
