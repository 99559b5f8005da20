"""Pages of talks on every backend: keyset pagination and grouped pages.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.errors import BadUserInput
from gateway.storage import TalkStore, cursor
from gateway.storage.records import (
    PageRequest,
    StoreOrder,
    TalkQuery,
)
from tests.factories import talk
from tests.gateway.storage.support import (
    delivery,
    ids_in,
    raw_cursor,
    walk_talks,
)

# -- keyset pagination --------------------------------------------------------------------------

MANY = 37
START = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def many_talks(store: TalkStore) -> dict[int, datetime]:
    """MANY talks, three to a creation time (so ties need the id), stored in shuffled order."""
    created = {114700 + n: START + timedelta(hours=n // 3 * 5 % 17) for n in range(MANY)}
    payloads = [
        talk(i, created_at=moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))
        for i, moment in created.items()
    ]
    random.Random(5).shuffle(payloads)
    await store.ingest([delivery(payloads)])
    return created


def expected_order(created: dict[int, datetime], order: StoreOrder) -> list[int]:
    if order is StoreOrder.ID_ASC:
        return sorted(created)
    if order is StoreOrder.ID_DESC:
        return sorted(created, reverse=True)
    by_time = sorted(created, key=lambda i: (created[i], i))
    return by_time if order is StoreOrder.CREATED_AT_ASC else by_time[::-1]


@pytest.mark.parametrize("order", list(StoreOrder), ids=lambda o: o.value)
async def test_talk_pages_follow_each_order_without_gaps_or_repeats(
    store: TalkStore, many_talks: dict[int, datetime], order: StoreOrder
) -> None:
    pages = await walk_talks(store, order, first=5)

    assert [i for page in pages for i in ids_in(page)] == expected_order(many_talks, order)
    assert [len(page.items) for page in pages] == [5] * 7 + [2]
    assert [page.has_next for page in pages] == [True] * 7 + [False]


async def test_talk_count_is_the_number_of_talks(
    store: TalkStore, many_talks: dict[int, datetime]
) -> None:
    assert await store.count_talks(query=TalkQuery()) == {None: MANY}


async def test_a_page_holding_everything_has_no_next_page(
    store: TalkStore, many_talks: dict[int, datetime]
) -> None:
    [page] = await walk_talks(store, StoreOrder.ID_ASC, first=MANY)

    assert len(page.items) == MANY
    assert not page.has_next


@pytest.mark.parametrize(
    ("issued", "used"),
    [(o, p) for o in StoreOrder for p in StoreOrder if o is not p],
    ids=lambda o: o.value,
)
async def test_a_cursor_from_another_order_is_rejected(
    store: TalkStore, many_talks: dict[int, datetime], issued: StoreOrder, used: StoreOrder
) -> None:
    [first_page, *_] = await walk_talks(store, issued, first=5)

    with pytest.raises(BadUserInput):
        await store.talk_pages(
            query=TalkQuery(), page=PageRequest(first=5, after=first_page.end_cursor), order=used
        )


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "!!!",
        raw_cursor([]),
        raw_cursor({"talk:ID_ASC": 1}),
        raw_cursor(["talk:ID_ASC", "114700"]),
        raw_cursor(["talk:ID_ASC", True]),
        raw_cursor(["talk:ID_ASC", 1.5]),
        cursor.encode("talk:ID_ASC"),
        cursor.encode("talk:ID_ASC", 1, 2),
        cursor.encode("message", 2077775),
    ],
)
async def test_a_garbage_cursor_is_rejected(store: TalkStore, garbage: str) -> None:
    with pytest.raises(BadUserInput):
        await store.talk_pages(
            query=TalkQuery(), page=PageRequest(first=5, after=garbage), order=StoreOrder.ID_ASC
        )


async def test_a_cursor_holding_a_number_out_of_range_is_rejected(store: TalkStore) -> None:
    forged = cursor.encode("talk:ID_ASC", 2**63)

    with pytest.raises(BadUserInput):
        await store.talk_pages(
            query=TalkQuery(), page=PageRequest(first=5, after=forged), order=StoreOrder.ID_ASC
        )


# -- grouped pages ------------------------------------------------------------------------------


@pytest.fixture
async def grouped_talks(store: TalkStore) -> None:
    """Customer 900001 has talks 114951-114953, customer 900002 has 114954, 900003 none."""
    owners = {114951: (900001, 31), 114952: (900001, 32), 114953: (900001, 32)}
    owners[114954] = (900002, 31)
    payloads = [talk(i, customer_id=c, agent_id=a, customer=None) for i, (c, a) in owners.items()]
    await store.ingest([delivery(payloads)])


@pytest.mark.usefixtures("grouped_talks")
async def test_grouped_pages_hold_one_page_per_requested_customer(store: TalkStore) -> None:
    pages = await store.talk_pages(
        query=TalkQuery(),
        page=PageRequest(first=2),
        order=StoreOrder.ID_ASC,
        group="customer_id",
        group_ids=[900001, 900002, 900003],
    )

    assert {c: (ids_in(p), p.has_next) for c, p in pages.items()} == {
        900001: ([114951, 114952], True),
        900002: ([114954], False),
        900003: ([], False),
    }


@pytest.mark.usefixtures("grouped_talks")
async def test_pages_read_with_customers_hold_the_customers_of_their_own_talks(
    store: TalkStore,
) -> None:
    def read(**kwargs: Any) -> Any:
        return store.talk_pages(query=TalkQuery(), order=StoreOrder.ID_DESC, **kwargs)

    plain = await read(page=PageRequest(first=10))
    page = await read(page=PageRequest(first=10), with_customers=True)
    # by agent, one talk a page: the talk after it (has_next) brings no customer
    grouped = await read(
        page=PageRequest(first=1), group="agent_id", group_ids=[31, 32], with_customers=True
    )

    assert plain[None].customers == {}
    assert page[None].customers == await store.customers_by_id([900001, 900002])
    assert {a: (ids_in(p), sorted(p.customers)) for a, p in grouped.items()} == {
        31: ([114954], [900002]),
        32: ([114953], [900001]),
    }


@pytest.mark.usefixtures("grouped_talks")
async def test_a_grouped_page_continues_after_its_cursor(store: TalkStore) -> None:
    first = await store.talk_pages(
        query=TalkQuery(),
        page=PageRequest(first=2),
        order=StoreOrder.CREATED_AT_DESC,
        group="customer_id",
        group_ids=[900001],
    )

    rest = await store.talk_pages(
        query=TalkQuery(),
        page=PageRequest(first=2, after=first[900001].end_cursor),
        order=StoreOrder.CREATED_AT_DESC,
        group="customer_id",
        group_ids=[900001],
    )

    assert ids_in(first[900001]) + ids_in(rest[900001]) == [114953, 114952, 114951]
    assert not rest[900001].has_next


@pytest.mark.usefixtures("grouped_talks")
async def test_grouped_pages_by_agent_follow_the_talk_agent(store: TalkStore) -> None:
    pages = await store.talk_pages(
        query=TalkQuery(),
        page=PageRequest(first=10),
        order=StoreOrder.ID_DESC,
        group="agent_id",
        group_ids=[31, 32],
    )

    assert {a: ids_in(p) for a, p in pages.items()} == {31: [114954, 114951], 32: [114953, 114952]}


@pytest.mark.usefixtures("grouped_talks")
async def test_grouped_counts_include_groups_without_talks(store: TalkStore) -> None:
    counts = await store.count_talks(
        query=TalkQuery(), group="customer_id", group_ids=[900001, 900002, 900003]
    )

    assert counts == {900001: 3, 900002: 1, 900003: 0}


@pytest.mark.usefixtures("grouped_talks")
async def test_grouped_pages_and_counts_honour_the_filter(store: TalkStore) -> None:
    query = TalkQuery(agent_id=32)

    pages = await store.talk_pages(
        query=query,
        page=PageRequest(first=10),
        order=StoreOrder.ID_ASC,
        group="customer_id",
        group_ids=[900001, 900002],
    )
    counts = await store.count_talks(query=query, group="customer_id", group_ids=[900001, 900002])

    assert {c: ids_in(p) for c, p in pages.items()} == {900001: [114952, 114953], 900002: []}
    assert counts == {900001: 2, 900002: 0}
