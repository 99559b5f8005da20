"""Recordings: a cache with a time to live, one fetch per protocol at a time, under a bound."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import pytest

from gateway.recordings import FetchedRecording, RecordingCache, Recordings
from gateway.talkme import TalkmeError, TalkmeNotFound, TalkmeUnavailable
from tests.clock import FakeClock

TTL_S = 300.0


class FakeSource:
    """An AudioSource whose answers wait for `release()` while `gated`, counting calls."""

    def __init__(self, *, gated: bool = False) -> None:
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, TalkmeError] = {}
        self.in_flight = 0
        self.peak = 0
        self.started = asyncio.Event()
        self._gate = asyncio.Event()
        if not gated:
            self._gate.set()

    def release(self) -> None:
        self._gate.set()

    async def fetch_audio(self, protocol: str) -> str:
        self.calls[protocol] += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.started.set()
        try:
            await self._gate.wait()
        finally:
            self.in_flight -= 1
        failure = self.failures.get(protocol)
        if failure is not None:
            raise failure
        return f"https://cdn.example/{protocol}.mp3"


def recording(protocol: str, fetched_at: str = "2025-09-08T14:01:17Z") -> FetchedRecording:
    return FetchedRecording(protocol, f"https://cdn.example/{protocol}.mp3", fetched_at)


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


# -- RecordingCache --------------------------------------------------------------------------


def test_the_cache_answers_a_stored_recording_before_its_ttl() -> None:
    clock = FakeClock()
    cache = RecordingCache(TTL_S, clock=clock)
    cache.put(recording("P1"))
    clock.advance(TTL_S - 0.001)
    assert cache.get("P1") == recording("P1")


def test_the_cache_forgets_a_recording_once_its_ttl_has_passed() -> None:
    clock = FakeClock()
    cache = RecordingCache(TTL_S, clock=clock)
    cache.put(recording("P1"))
    clock.advance(TTL_S)
    assert cache.get("P1") is None


def test_the_cache_knows_nothing_it_was_not_given() -> None:
    cache = RecordingCache(TTL_S, clock=FakeClock())
    cache.put(recording("P1"))
    assert cache.get("P2") is None


def test_storing_again_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache = RecordingCache(TTL_S, clock=clock)
    cache.put(recording("P1", "2025-09-08T14:00:00Z"))
    clock.advance(TTL_S - 1)
    cache.put(recording("P1", "2025-09-08T14:05:00Z"))
    clock.advance(TTL_S - 1)
    assert cache.get("P1") == recording("P1", "2025-09-08T14:05:00Z")


def test_a_zero_ttl_cache_keeps_nothing() -> None:
    cache = RecordingCache(0, clock=FakeClock())
    cache.put(recording("P1"))
    assert cache.get("P1") is None


def test_the_cache_evicts_the_oldest_entries_beyond_max_entries() -> None:
    cache = RecordingCache(TTL_S, max_entries=3, clock=FakeClock())
    for n in range(5):
        cache.put(recording(f"P{n}"))
    assert [cache.get(f"P{n}") is not None for n in range(5)] == [False, False, True, True, True]


def test_a_recording_stored_again_is_evicted_after_newer_ones() -> None:
    cache = RecordingCache(TTL_S, max_entries=2, clock=FakeClock())
    cache.put(recording("P1"))
    cache.put(recording("P2"))
    cache.put(recording("P1"))
    cache.put(recording("P3"))
    assert cache.get("P1") is not None
    assert cache.get("P2") is None


# -- Recordings.fetch ------------------------------------------------------------------------


async def test_a_fetch_returns_the_link_with_an_iso_utc_fetch_time() -> None:
    source = FakeSource()
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    got = await recordings.fetch("P1")
    assert (got.protocol, got.url) == ("P1", "https://cdn.example/P1.mp3")
    assert got.fetched_at.endswith("Z")
    assert datetime.fromisoformat(got.fetched_at).utcoffset() == timedelta(0)


async def test_a_cached_recording_is_answered_without_calling_the_source() -> None:
    source = FakeSource()
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    first = await recordings.fetch("P1")
    second = await recordings.fetch("P1")
    assert second == first
    assert source.calls == Counter({"P1": 1})


async def test_an_expired_recording_is_fetched_again() -> None:
    clock = FakeClock()
    source = FakeSource()
    recordings = Recordings(source, RecordingCache(TTL_S, clock=clock), concurrency=4)
    await recordings.fetch("P1")
    clock.advance(TTL_S)
    await recordings.fetch("P1")
    assert source.calls == Counter({"P1": 2})


async def test_concurrent_fetches_of_one_protocol_cost_one_source_call() -> None:
    source = FakeSource(gated=True)
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    first = asyncio.create_task(recordings.fetch("P1"))
    second = asyncio.create_task(recordings.fetch("P1"))
    await settle()
    source.release()
    results = await asyncio.gather(first, second)
    assert source.calls == Counter({"P1": 1})
    assert results[0] == results[1]


async def test_concurrent_fetches_share_the_failure_of_their_one_call() -> None:
    source = FakeSource(gated=True)
    source.failures["P1"] = TalkmeUnavailable("answered 503")
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    tasks = [asyncio.create_task(recordings.fetch("P1")) for _ in range(2)]
    await settle()
    source.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert source.calls == Counter({"P1": 1})
    assert all(isinstance(r, TalkmeUnavailable) for r in results)


async def test_a_failure_is_not_cached() -> None:
    source = FakeSource()
    source.failures["P1"] = TalkmeNotFound("P1")
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    with pytest.raises(TalkmeNotFound):
        await recordings.fetch("P1")
    del source.failures["P1"]
    got = await recordings.fetch("P1")
    assert got.url == "https://cdn.example/P1.mp3"
    assert source.calls == Counter({"P1": 2})


async def test_no_more_source_calls_run_at_once_than_the_bound() -> None:
    source = FakeSource(gated=True)
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=3)
    tasks = [asyncio.create_task(recordings.fetch(f"P{n}")) for n in range(10)]
    await settle()
    assert source.in_flight == 3
    source.release()
    await asyncio.gather(*tasks)
    assert source.peak == 3
    assert sum(source.calls.values()) == 10


async def test_the_bound_is_shared_by_every_caller() -> None:
    source = FakeSource(gated=True)
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=3)
    batches = [
        asyncio.create_task(recordings.fetch_many([f"{batch}-{n}" for n in range(5)]))
        for batch in ("A", "B")
    ]
    await settle()
    assert source.in_flight == 3
    source.release()
    await asyncio.gather(*batches)
    assert source.peak == 3


# -- Recordings.fetch_many -------------------------------------------------------------------


async def test_fetch_many_answers_in_order_with_one_call_per_distinct_protocol() -> None:
    source = FakeSource()
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    results = await recordings.fetch_many(["P2", "P1", "P2", "P3", "P1"])
    assert [r.protocol for r in results if isinstance(r, FetchedRecording)] == [
        "P2",
        "P1",
        "P2",
        "P3",
        "P1",
    ]
    assert source.calls == Counter({"P1": 1, "P2": 1, "P3": 1})


async def test_fetch_many_returns_failures_beside_the_other_answers() -> None:
    source = FakeSource()
    source.failures["P2"] = TalkmeNotFound("P2")
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    first, second, third = await recordings.fetch_many(["P1", "P2", "P3"])
    assert isinstance(first, FetchedRecording)
    assert isinstance(second, TalkmeNotFound)
    assert isinstance(third, FetchedRecording)


# -- cancellation ----------------------------------------------------------------------------


async def abandon_a_fetch(recordings: Recordings, source: FakeSource, protocol: str) -> None:
    """Fetch `protocol` and cancel the caller once the (gated) source is asked; then release
    the source."""
    owner = asyncio.create_task(recordings.fetch(protocol))
    await source.started.wait()
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    source.release()


async def test_a_fetch_abandoned_by_its_caller_still_completes_for_the_next_one() -> None:
    source = FakeSource(gated=True)
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    await abandon_a_fetch(recordings, source, "P1")
    got = await asyncio.wait_for(recordings.fetch("P1"), timeout=5)
    assert got.url == "https://cdn.example/P1.mp3"
    # The abandoned fetch ran on and was reused: no second upstream call.
    assert source.calls == Counter({"P1": 1})


async def test_a_cancelled_fetch_gives_its_slot_back() -> None:
    source = FakeSource(gated=True)
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=1)
    await abandon_a_fetch(recordings, source, "P1")
    got = await asyncio.wait_for(recordings.fetch("P2"), timeout=5)
    assert got.protocol == "P2"


async def test_a_waiter_is_not_cancelled_when_the_fetch_it_joined_is() -> None:
    source = FakeSource(gated=True)
    recordings = Recordings(source, RecordingCache(TTL_S), concurrency=4)
    owner = asyncio.create_task(recordings.fetch("P1"))
    await source.started.wait()
    waiter = asyncio.create_task(recordings.fetch("P1"))
    await settle()
    owner.cancel()
    await settle()
    source.release()
    got = await asyncio.wait_for(waiter, timeout=5)
    assert got.url == "https://cdn.example/P1.mp3"
