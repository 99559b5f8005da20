"""Backward pages (`last`/`before`) of every list a store pages, on every backend.

Each list is read whole forward once; then every backward page a client can ask for (each
size, ending before each item or at the end) must be the matching slice of it, with the
same cursors, and say which sides go on. The lists are small so that every page is asked.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.storage import TalkStore
from gateway.storage.records import Page, PageRequest, StoreOrder, TalkQuery
from tests.backends import BACKENDS, opened_store
from tests.factories import message, talk
from tests.gateway.storage.support import delivery

START = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
TALKS = range(114700, 114711)  # 11 talks, three to a creation time: ties need the id
CUSTOMERS = (700001, 700002, 700003)
AGENTS = (31, 32, 33)
CHATTY = (114700, 114701)  # the talks with messages of their own


def _talk(talk_id: int) -> dict[str, object]:
    n = talk_id - TALKS[0]
    payload = talk(
        talk_id,
        created_at=(START + timedelta(hours=n // 3 * 5 % 7)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        customer_id=CUSTOMERS[n % 3],
        agent_id=AGENTS[n % 3],
    )
    payload["customer"].update(id=CUSTOMERS[n % 3])
    if talk_id in CHATTY:
        payload["talk_histories"] = [
            message(talk_id * 10 + i, f"m{i}", talk_id=talk_id) for i in (3, 0, 4, 1, 2)
        ]
    return payload


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TalkStore]:
    async with opened_store(request.param, tmp_path, request) as opened:
        payloads = [_talk(i) for i in TALKS]
        random.Random(7).shuffle(payloads)
        await opened.ingest([delivery(payloads)])
        yield opened


Read = Callable[[PageRequest], Awaitable[Page]]


def ids_in(page: Page) -> list[int]:
    return [doc["id"] for doc in page.docs]


async def check_every_backward_page(read: Read) -> int:
    """Every backward page of the list `read` reads is the slice of the whole list read
    forward; forward pages say items precede them exactly when they start after a cursor.
    Returns how many items the list holds."""
    whole = await read(PageRequest(first=100))
    assert (whole.has_previous, whole.has_next) == (False, False)
    ids = ids_in(whole)
    n = len(ids)
    cursors = [whole.cursor(i) for i in range(n)]
    for size in sorted({0, 1, 2, 3, n, n + 1}):
        for before in [None, *range(n)]:
            end = n if before is None else before
            page = await read(
                PageRequest(last=size, before=None if before is None else cursors[before])
            )
            start = max(0, end - size)
            where = f"last {size} before {before} of {n}"
            assert ids_in(page) == ids[start:end], where
            assert [page.cursor(i) for i in range(len(page.keys))] == cursors[start:end], where
            assert page.has_previous == (start > 0), where
            assert page.has_next == (before is not None), where
            assert page.start_cursor == (cursors[start] if end > start else None), where
    for after in [None, *range(n)]:
        page = await read(PageRequest(first=2, after=None if after is None else cursors[after]))
        begin = 0 if after is None else after + 1
        assert ids_in(page) == ids[begin : begin + 2]
        assert page.has_previous == (after is not None)
        assert page.has_next == (begin + 2 < n)
    return n


@pytest.mark.parametrize("order", list(StoreOrder), ids=lambda o: o.value)
async def test_every_backward_page_of_talks_is_a_slice_of_the_list(
    store: TalkStore, order: StoreOrder
) -> None:
    async def read(page: PageRequest) -> Page:
        return (await store.talk_pages(query=TalkQuery(), page=page, order=order))[None]

    assert await check_every_backward_page(read) == len(TALKS)


@pytest.mark.parametrize("group", ["customer_id", "agent_id"])
@pytest.mark.parametrize("order", [StoreOrder.CREATED_AT_DESC, StoreOrder.ID_ASC], ids=str)
async def test_every_backward_page_of_a_parents_talks_is_a_slice_of_its_list(
    store: TalkStore, group: str, order: StoreOrder
) -> None:
    parents = CUSTOMERS if group == "customer_id" else AGENTS
    for parent in parents:
        # Read with the other parents, as one statement reads a page of them all.
        async def read(page: PageRequest, parent: int = parent) -> Page:
            pages = await store.talk_pages(
                query=TalkQuery(),
                page=page,
                order=order,
                group=group,  # type: ignore[arg-type]
                group_ids=parents,
            )
            return pages[parent]

        assert await check_every_backward_page(read) in (3, 4)


async def test_every_backward_page_of_a_talks_messages_is_a_slice_of_its_list(
    store: TalkStore,
) -> None:
    for talk_id in CHATTY:

        async def read(page: PageRequest, talk_id: int = talk_id) -> Page:
            return (await store.message_pages(talk_ids=[*CHATTY, 114702], page=page))[talk_id]

        assert await check_every_backward_page(read) == 5


async def test_every_backward_page_of_customers_is_a_slice_of_the_list(store: TalkStore) -> None:
    async def read(page: PageRequest) -> Page:
        return await store.customer_page(search=None, page=page)

    assert await check_every_backward_page(read) == len(CUSTOMERS)


async def test_every_backward_page_of_agents_is_a_slice_of_the_list(store: TalkStore) -> None:
    async def read(page: PageRequest) -> Page:
        return await store.agent_page(page=page)

    assert await check_every_backward_page(read) >= len(AGENTS)
