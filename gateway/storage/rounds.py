"""One read shared by the callers that ask for it together, none given an answer older than
its own call.

The response cache asks the store for its generation on every hit. On PostgreSQL that is a
round trip per request (a pool acquire, a query, a release): at 8 concurrent cache hits it
cost more server CPU than the hit itself. Callers arriving together can share one read, as
long as each gets a value read *after* it asked: a caller that knew of a commit (its own
write's answer, another replica's) must see it. So reads go in rounds: a caller joins the
round that has not begun yet, which begins as soon as the one in flight ends (or at once when
none is); a round in flight never takes new callers.

Nothing in asyncio or a well-kept library does this "next read, shared" (single-flight
libraries share the read in flight, which may have begun before the caller asked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Rounds(Generic[T]):
    """`await rounds()`: the value of a `read` begun after the call, shared with the callers
    of the same round. A failed read fails its round's callers only; a caller cancelled
    leaves its round to the others."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._waiting: asyncio.Future[T] | None = None  # the round not begun yet
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a store reopened on another loop: nothing carries over
            self._loop, self._waiting, self._running = loop, None, False
        round_ = self._waiting
        if round_ is None:
            round_ = self._waiting = loop.create_future()
            round_.add_done_callback(_retrieved)
            if not self._running:
                self._begin()
        return await asyncio.shield(round_)

    def _begin(self) -> None:
        round_, self._waiting = self._waiting, None
        assert round_ is not None
        self._running = True
        task = asyncio.get_running_loop().create_task(self._run(round_))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, round_: asyncio.Future[T]) -> None:
        try:
            value = await self._read()
        except BaseException as exc:
            if not round_.done():
                if isinstance(exc, asyncio.CancelledError):
                    round_.cancel()
                else:
                    round_.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not round_.done():
                round_.set_result(value)
        finally:
            self._running = False
            if self._waiting is not None:
                self._begin()


def _retrieved(round_: asyncio.Future[Any]) -> None:
    """A round whose callers were all cancelled still fails quietly."""
    if not round_.cancelled():
        round_.exception()
