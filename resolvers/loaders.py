"""Per-request batch loaders: each level of a query costs one store call, whatever its width."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import Generic, TypeVar

from strawberry.dataloader import DataLoader

from gateway.errors import TalkgateError
from gateway.recordings import FetchedRecording, Recordings
from gateway.storage import TalkStore
from gateway.storage.documents import Doc
from gateway.storage.protocol import TalkGroup
from gateway.storage.records import PageRequest, StoreOrder, TalkQuery
from resolvers.pagination import connection, page_request
from resolvers.upstream import upstream_error
from schema.agent_control import AgentQueueStatus, QueueStatus, Recording
from schema.connections import Connection
from schema.context import ChildPageKey, Loaders, PageArgs
from schema.scalars import UtcDateTime
from schema.types import (
    Agent,
    Channel,
    Customer,
    Talk,
    TalkEvent,
    TalkHistory,
    agent_from_doc,
    channel_from_doc,
    customer_from_doc,
    event_from_doc,
    history_from_doc,
    talk_from_doc,
)

T = TypeVar("T")
D = TypeVar("D")


class ByIdLoader(Generic[T]):
    """Objects by id, as strawberry's DataLoader loads them, for the widest lists of a query
    (a page's customers): the ids asked for in one turn of the event loop are fetched in one
    call, each id once per request, and a fetch that fails fails every load of its batch.

    Leaner than DataLoader: a load is a future and a place in the batch, where DataLoader
    adds a task record, a done-callback and, once the batch is in, a loop callback for each
    key. A batch is fetched even when all its loads were cancelled (DataLoader skips it).
    """

    def __init__(
        self, fetch: Callable[[Sequence[int]], Awaitable[dict[int, Doc]]], build: Callable[[Doc], T]
    ) -> None:
        self._fetch = fetch
        self._build = build
        self._loads: dict[int, asyncio.Future[T | None]] = {}
        # Objects primed (read with the page that needs them): a future only when loaded.
        self._primed: dict[int, T] = {}
        self._batch: list[tuple[int, asyncio.Future[T | None]]] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def load(self, key: int) -> asyncio.Future[T | None]:
        known = self._loads.get(key)
        if known is not None and not known.cancelled():
            return known
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T | None] = loop.create_future()
        self._loads[key] = future
        if key in self._primed:
            future.set_result(self._primed[key])
            return future
        if self._batch is None:
            self._batch = []
            loop.call_soon(self._dispatch)
        self._batch.append((key, future))
        return future

    def peek(self, key: int, default: D) -> T | D | None:
        """The object of a load of `key` already done (None for an id not found), or
        `default` when none was made, is still waiting, failed or was cancelled."""
        primed = self._primed.get(key)
        if primed is not None:
            return primed
        known = self._loads.get(key)
        if known is None or not known.done() or known.cancelled() or known.exception():
            return default
        return known.result()

    def prime(self, docs: Mapping[int, Doc]) -> None:
        """Documents read already (with the page that needs them): their loads are done, and
        fetch nothing. A key loaded, loading or primed already keeps its object."""
        build, primed, loads = self._build, self._primed, self._loads
        many = getattr(build, "many", None)
        if many is not None and not primed and not loads:
            # A page's first priming (nothing loaded or primed yet): all in one call.
            primed.update(zip(docs, many(docs.values()), strict=True))
            return
        for key, doc in docs.items():
            if key in primed:
                continue
            known = loads.get(key)
            if known is not None and not known.cancelled():
                continue
            primed[key] = build(doc)

    def _dispatch(self) -> None:
        batch, self._batch = self._batch or [], None
        task = asyncio.get_running_loop().create_task(self._settle(batch))
        self._running.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._running.discard)

    async def _settle(self, batch: list[tuple[int, asyncio.Future[T | None]]]) -> None:
        try:
            docs = await self._fetch([key for key, _ in batch])
            values = [self._build(docs[key]) if key in docs else None for key, _ in batch]
        except BaseException as error:
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(error, Exception):
                    future.set_exception(error)
                else:  # cancelled: so are the loads that waited for it
                    future.cancel()
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), value in zip(batch, values, strict=True):
            if not future.done():
                future.set_result(value)


def _counts(
    fetch: Callable[[list[int]], Awaitable[dict[int, int]]],
) -> DataLoader[int, int]:
    async def load(ids: list[int]) -> list[int]:
        counts = await fetch(ids)
        return [counts.get(i, 0) for i in ids]

    return DataLoader(load_fn=load)


async def _child_pages(
    keys: list[ChildPageKey],
    fetch: Callable[[list[int], PageRequest], Awaitable[dict[int, T]]],
) -> list[T | BaseException]:
    """Group keys by page arguments: one store call per distinct (first, after, last,
    before)."""
    groups: dict[PageArgs, list[int]] = defaultdict(list)
    for key in keys:
        groups[key.page].append(key.parent_id)
    results: dict[ChildPageKey, T | BaseException] = {}
    for args, parent_ids in groups.items():
        try:
            pages = await fetch(
                parent_ids, page_request(args.first, args.after, args.last, args.before)
            )
        except TalkgateError as exc:
            results.update((ChildPageKey(i, args), exc) for i in parent_ids)
            continue
        results.update((ChildPageKey(i, args), pages[i]) for i in parent_ids)
    return [results[key] for key in keys]


class RequestLoaders:
    """The loaders of one request; their caches live exactly as long as it. Each is made
    when first used: a request uses two or three of them."""

    def __init__(self, store: TalkStore, recordings: Recordings) -> None:
        self._store = store
        self._recordings = recordings

    @cached_property
    def talk(self) -> ByIdLoader[Talk]:
        return ByIdLoader(self._store.talks_by_id, talk_from_doc)

    @cached_property
    def customer(self) -> ByIdLoader[Customer]:
        return ByIdLoader(self._store.customers_by_id, customer_from_doc)

    @cached_property
    def agent(self) -> ByIdLoader[Agent]:
        return ByIdLoader(self._store.agents_by_id, agent_from_doc)

    @cached_property
    def agent_by_login(self) -> DataLoader[str, Agent | None]:
        return DataLoader(load_fn=self._agents_by_login)

    @cached_property
    def channel(self) -> ByIdLoader[Channel]:
        return ByIdLoader(self._store.channels_by_id, channel_from_doc)

    @cached_property
    def history(self) -> ByIdLoader[TalkHistory]:
        return ByIdLoader(self._store.messages_by_id, history_from_doc)

    @cached_property
    def event(self) -> ByIdLoader[TalkEvent]:
        return ByIdLoader(self._store.events_by_id, event_from_doc)

    @cached_property
    def events(self) -> DataLoader[int, list[TalkEvent]]:
        return DataLoader(load_fn=self._events)

    @cached_property
    def histories(self) -> DataLoader[ChildPageKey, Connection[TalkHistory]]:
        return DataLoader(load_fn=self._histories)

    @cached_property
    def history_count(self) -> DataLoader[int, int]:
        return _counts(self._store.count_messages)

    @cached_property
    def customer_talks(self) -> DataLoader[ChildPageKey, Connection[Talk]]:
        return self._talks_of("customer_id")

    @cached_property
    def agent_talks(self) -> DataLoader[ChildPageKey, Connection[Talk]]:
        return self._talks_of("agent_id")

    @cached_property
    def queue_status(self) -> DataLoader[str, AgentQueueStatus]:
        return DataLoader(load_fn=self._queue_statuses)

    @cached_property
    def recording(self) -> DataLoader[str, Recording]:
        return DataLoader(load_fn=self._recordings_of)

    @cached_property
    def raw_payloads(self) -> DataLoader[int, list[bytes]]:
        return DataLoader(load_fn=self._raw_payloads)

    async def _raw_payloads(self, talk_ids: list[int]) -> list[list[bytes]]:
        # An admin's debugging aid, not a hot path: one store call per talk.
        return [await self._store.raw_deliveries(talk_id=i) for i in talk_ids]

    async def _agents_by_login(self, logins: list[str]) -> list[Agent | None]:
        # One agent per request in practice (agent(login:), a status payload): no batch call.
        docs = [await self._store.agent_by_login(login) for login in logins]
        return [agent_from_doc(doc) if doc else None for doc in docs]

    async def _queue_statuses(self, logins: list[str]) -> list[AgentQueueStatus]:
        known = await self._store.agent_statuses(logins)
        unknown = AgentQueueStatus(status=QueueStatus.UNKNOWN, changed_at=None)
        return [
            AgentQueueStatus(
                status=QueueStatus[known[login][0]], changed_at=UtcDateTime(known[login][1])
            )
            if login in known
            else unknown
            for login in logins
        ]

    async def _recordings_of(self, protocols: list[str]) -> list[Recording | BaseException]:
        """One upstream call per distinct protocol (the loader dedupes), run concurrently."""
        results = await self._recordings.fetch_many(protocols)
        return [
            Recording(protocol=r.protocol, url=r.url, fetched_at=UtcDateTime(r.fetched_at))
            if isinstance(r, FetchedRecording)
            else upstream_error(r)
            for r in results
        ]

    async def _events(self, talk_ids: list[int]) -> list[list[TalkEvent]]:
        events = await self._store.events_by_talk(talk_ids)
        return [[event_from_doc(d) for d in events.get(i, ())] for i in talk_ids]

    async def _histories(
        self, keys: list[ChildPageKey]
    ) -> list[Connection[TalkHistory] | BaseException]:
        async def fetch(
            talk_ids: list[int], page: PageRequest
        ) -> dict[int, Connection[TalkHistory]]:
            pages = await self._store.message_pages(talk_ids=talk_ids, page=page)
            return {
                i: connection(pages[i], history_from_doc, self._count(self.history_count, i))
                for i in talk_ids
            }

        return await _child_pages(keys, fetch)

    def _talks_of(self, group: TalkGroup) -> DataLoader[ChildPageKey, Connection[Talk]]:
        async def count(ids: list[int]) -> dict[int, int]:
            counts = await self._store.count_talks(query=TalkQuery(), group=group, group_ids=ids)
            return {k: v for k, v in counts.items() if k is not None}

        counter = _counts(count)

        async def fetch(parent_ids: list[int], page: PageRequest) -> dict[int, Connection[Talk]]:
            pages = await self._store.talk_pages(
                query=TalkQuery(),
                page=page,
                order=StoreOrder.CREATED_AT_DESC,
                group=group,
                group_ids=parent_ids,
            )
            return {
                i: connection(pages[i], talk_from_doc, self._count(counter, i)) for i in parent_ids
            }

        async def load(keys: list[ChildPageKey]) -> list[Connection[Talk] | BaseException]:
            return await _child_pages(keys, fetch)

        return DataLoader(load_fn=load)

    @staticmethod
    def _count(loader: DataLoader[int, int], key: int) -> Callable[[], Awaitable[int]]:
        async def count() -> int:
            return await loader.load(key)

        return count


def _conforms(loaders: RequestLoaders) -> Loaders:
    """mypy's check that RequestLoaders is what the types may ask of a context's loaders
    (`schema.context.Loaders`, `peek` included); never called."""
    return loaders
