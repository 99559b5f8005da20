"""Publish/subscribe of change events: talks changed, agent statuses set.

Each subscriber has a bounded queue. A subscriber that does not keep up loses its oldest
events (counted), so one slow client can never grow the process's memory without bound.
`LocalBroker` fans out within this process; a Redis broker (scale-out) shares events between
replicas and fans out locally the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("talkgate.pubsub")

TALKS = "talks"
AGENT_STATUS = "agent-status"

Event = dict[str, Any]
T = TypeVar("T")


class Broker(Protocol):
    # Its subscribers' queues: their bound and drop count serve other per-subscriber queues too.
    fanout: LocalFanout

    async def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(self, topic: str) -> AsyncIterator[Event]:
        """Events of `topic` published after the subscription starts, until it is closed."""
        ...


class SubscriberQueue(Generic[T]):
    """One subscriber's bounded queue; drops the oldest event when full."""

    def __init__(self, size: int, on_drop: Callable[[], None]) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._size = size
        self._on_drop = on_drop

    def offer(self, event: T) -> None:
        if self._queue.qsize() >= self._size:
            self._queue.get_nowait()
            self._on_drop()
        self._queue.put_nowait(event)

    def offer_last(self, event: T) -> None:
        """Queues `event` after the held ones whatever the bound: a stream's end is not lost."""
        self._queue.put_nowait(event)

    async def next(self) -> T:
        return await self._queue.get()


class LocalFanout:
    """Delivers events to this process's subscribers; the part every broker shares."""

    def __init__(
        self,
        queue_size: int = 100,
        on_drop: Callable[[], None] | None = None,
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.on_drop = on_drop or (lambda: None)
        # Told a topic's subscriber count each time it changes (a gauge of the metrics).
        self.on_count = on_count or (lambda topic, count: None)
        self._subscribers: dict[str, set[SubscriberQueue[Event]]] = defaultdict(set)

    def deliver(self, topic: str, event: Event) -> None:
        for subscriber in tuple(self._subscribers.get(topic, ())):
            subscriber.offer(event)

    def subscribers(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    @asynccontextmanager
    async def subscription(self, topic: str) -> AsyncIterator[SubscriberQueue[Event]]:
        subscriber = SubscriberQueue[Event](self.queue_size, self.on_drop)
        subscribers = self._subscribers[topic]
        subscribers.add(subscriber)
        self.on_count(topic, len(subscribers))
        try:
            yield subscriber
        finally:
            subscribers.discard(subscriber)
            self.on_count(topic, len(subscribers))
            if not subscribers:
                del self._subscribers[topic]

    async def stream(self, topic: str) -> AsyncIterator[Event]:
        async with self.subscription(topic) as subscriber:
            while True:
                yield await subscriber.next()


class LocalBroker:
    """Events stay in this process (one replica, or Redis unavailable)."""

    def __init__(self, fanout: LocalFanout) -> None:
        self.fanout = fanout

    async def publish(self, topic: str, event: Event) -> None:
        self.fanout.deliver(topic, event)

    def subscribe(self, topic: str) -> AsyncIterator[Event]:
        return self.fanout.stream(topic)
