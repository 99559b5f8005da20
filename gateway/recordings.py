"""Call recordings by protocol: fetched from Talk.me once per protocol, reused for a while."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.talkme import TalkmeError, check_protocol
from gateway.utc import now_iso


@dataclass(frozen=True, slots=True)
class FetchedRecording:
    """A public link to a call's recording, and when talkgate got it."""

    protocol: str
    url: str
    fetched_at: str


class AudioSource(Protocol):
    async def fetch_audio(self, protocol: str) -> str: ...


class SharedRecordings(Protocol):
    """Recordings other replicas fetched (Redis); misses and failures are both None."""

    async def get(self, protocol: str) -> FetchedRecording | None: ...

    async def put(self, recording: FetchedRecording) -> None: ...


class RecordingCache:
    """Recent answers kept for `ttl_s`, at most `max_entries`, oldest evicted first."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, FetchedRecording]] = OrderedDict()

    def get(self, protocol: str) -> FetchedRecording | None:
        entry = self._entries.get(protocol)
        if entry is None:
            return None
        stored_at, recording = entry
        if self._clock() - stored_at >= self._ttl:
            del self._entries[protocol]
            return None
        return recording

    def put(self, recording: FetchedRecording) -> None:
        if self._ttl <= 0:
            return
        self._entries[recording.protocol] = (self._clock(), recording)
        self._entries.move_to_end(recording.protocol)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class Recordings:
    """Fetches recordings: cache first, then one upstream call per protocol, bounded.

    The bound is process-wide, so many concurrent requests cannot flood Talk.me; a protocol
    already being fetched by another request is awaited, not fetched again.
    """

    def __init__(
        self,
        source: AudioSource,
        cache: RecordingCache,
        *,
        concurrency: int,
        shared: SharedRecordings | None = None,
    ) -> None:
        self._source = source
        self._cache = cache
        self._shared = shared
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, asyncio.Task[FetchedRecording]] = {}

    async def fetch_many(self, protocols: Sequence[str]) -> list[FetchedRecording | TalkmeError]:
        """One result per protocol, in order; failures are returned, not raised."""
        unique = list(dict.fromkeys(protocols))
        results = await asyncio.gather(*(self.fetch(p) for p in unique), return_exceptions=True)
        by_protocol: dict[str, FetchedRecording | TalkmeError] = {}
        for protocol, result in zip(unique, results, strict=True):
            if isinstance(result, FetchedRecording | TalkmeError):
                by_protocol[protocol] = result
            else:
                raise result
        return [by_protocol[p] for p in protocols]

    async def fetch(self, protocol: str) -> FetchedRecording:
        # Refused before the caches too: a 100 KB "protocol" is neither a key nor a call.
        check_protocol(protocol)
        cached = self._cache.get(protocol)
        if cached is not None:
            return cached
        task = self._in_flight.get(protocol)
        if task is None:
            # Its own task: a caller that goes away (client disconnect) cancels only its wait,
            # never the fetch other callers share.
            task = asyncio.create_task(self._fetch_upstream(protocol))
            self._in_flight[protocol] = task
            task.add_done_callback(lambda done: self._settled(protocol, done))
        return await asyncio.shield(task)

    async def _fetch_upstream(self, protocol: str) -> FetchedRecording:
        if self._shared is not None:
            known = await self._shared.get(protocol)
            if known is not None:
                return known
        async with self._slots:
            url = await self._source.fetch_audio(protocol)
        recording = FetchedRecording(protocol, url, now_iso(timespec="seconds"))
        self._cache.put(recording)
        if self._shared is not None:
            await self._shared.put(recording)
        return recording

    def _settled(self, protocol: str, task: asyncio.Task[FetchedRecording]) -> None:
        if self._in_flight.get(protocol) is task:
            del self._in_flight[protocol]
        if not task.cancelled():
            task.exception()  # retrieved, so a failure nobody waits for any more is not "lost"
