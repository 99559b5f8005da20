"""One source stream per distinct subscription, however many subscribers hold it.

Dashboards open the same subscription many times. `CoalescedStreams` runs a stream once per key
and hands each of its items to every subscriber through that subscriber's bounded queue: one
that does not keep up loses its oldest items (counted), the others lose nothing. The stream
starts with its first subscriber and is cancelled when its last one leaves; a subscriber that
joins later gets only the items that come after it joined.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from contextlib import aclosing
from typing import Generic, TypeVar

from gateway.logs import new_request_id
from gateway.replicas.pubsub import SubscriberQueue

log = logging.getLogger("talkgate.subscriptions")

T = TypeVar("T")


class _End(enum.Enum):
    END = enum.auto()


class _Stream(Generic[T]):
    def __init__(self) -> None:
        # Its own request id: the subscribers' connections come and go while it runs.
        self.request_id = new_request_id()
        self.subscribers: set[SubscriberQueue[T | _End]] = set()
        self.task: asyncio.Task[None] | None = None


class CoalescedStreams(Generic[T]):
    """Streams shared by key among the subscribers that join them."""

    def __init__(self) -> None:
        self._streams: dict[Hashable, _Stream[T]] = {}
        self.dropped = 0

    def subscriber_counts(self) -> list[int]:
        """How many subscribers each running stream has."""
        return [len(stream.subscribers) for stream in self._streams.values()]

    async def join(
        self,
        key: Hashable,
        start: Callable[[str], Awaitable[AsyncGenerator[T, None]]],
        *,
        queue_size: int,
        on_drop: Callable[[], None] = lambda: None,
    ) -> AsyncGenerator[T, None]:
        """The items of the stream under `key`; `start(request_id)` opens it if none runs yet."""
        stream = self._streams.get(key)

        def dropped() -> None:
            self.dropped += 1
            on_drop()

        queue = SubscriberQueue[T | _End](queue_size, dropped)
        if stream is None:
            stream = self._streams[key] = _Stream()
            stream.task = asyncio.create_task(self._run(key, stream, start))
        stream.subscribers.add(queue)
        log.info(
            "joined a shared subscription",
            extra={"shared_request_id": stream.request_id, "subscribers": len(stream.subscribers)},
        )
        try:
            while (item := await queue.next()) is not _End.END:
                yield item
        finally:
            stream.subscribers.discard(queue)
            if not stream.subscribers and self._streams.get(key) is stream:
                del self._streams[key]
                assert stream.task is not None
                stream.task.cancel()
                # Let the source close (its broker subscription, its operation hooks) before
                # this subscriber's operation reports itself done.
                await asyncio.wait([stream.task])

    async def _run(
        self,
        key: Hashable,
        stream: _Stream[T],
        start: Callable[[str], Awaitable[AsyncGenerator[T, None]]],
    ) -> None:
        try:
            source = await start(stream.request_id)
            async with aclosing(source):
                async for item in source:
                    for subscriber in tuple(stream.subscribers):
                        subscriber.offer(item)
        except Exception:
            log.exception("a shared subscription failed")
        finally:
            if self._streams.get(key) is stream:
                del self._streams[key]
            for subscriber in stream.subscribers:
                subscriber.offer_last(_End.END)
