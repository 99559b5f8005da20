"""The store on its own: merging deliveries, transactions, pages, filters and search.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see backends.py).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadUserInput
from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.ingestor import Body, BodyRejected, Ingestor
from gateway.ingest.validation import validate_talks
from gateway.storage import TalkStore, cursor, merge, open_store, postgres
from gateway.storage import sqlite as sqlite_module
from gateway.storage.postgres import PostgresStore
from gateway.storage.protocol import StoreUnavailable
from gateway.storage.records import (
    DeliveryOutcome,
    Page,
    PageRequest,
    StoreOrder,
    TalkQuery,
)
from gateway.storage.sqlite import SQLiteStore
from gateway.storage.sqlite_schema import MIGRATIONS
from tests.backends import BACKENDS, empty_store_url, opened_store
from tests.factories import Payload, message, snapshot, talk
from tests.gateway.store_helpers import (
    TalkState,
    delivery,
    normalized,
    tagged_snapshot,
    talk_state,
)

TALK = 114700
CUSTOMER = 144527


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TalkStore]:
    """An empty store of each backend."""
    async with opened_store(request.param, tmp_path, request) as opened:
        yield opened


async def deliver(store: TalkStore, *payloads: Payload) -> list[DeliveryOutcome]:
    """Each payload as its own delivery, one after the other (so each arrives later)."""
    outcomes: list[DeliveryOutcome] = []
    for payload in payloads:
        outcomes += await store.ingest([delivery(payload)])
    return outcomes


async def talk_ids(
    store: TalkStore, query: TalkQuery, order: StoreOrder = StoreOrder.ID_ASC
) -> list[int]:
    pages = await store.talk_pages(query=query, page=PageRequest(first=100), order=order)
    return [doc["id"] for _, doc in pages[None].items]


async def walk_talks(store: TalkStore, order: StoreOrder, first: int) -> list[Page]:
    """Every page of talks in `order`, following end cursors until has_next is false."""
    pages: list[Page] = []
    after: str | None = None
    for _ in range(100):
        page = (
            await store.talk_pages(
                query=TalkQuery(), page=PageRequest(first=first, after=after), order=order
            )
        )[None]
        pages.append(page)
        if not page.has_next:
            return pages
        after = page.end_cursor
    raise AssertionError("pagination never ended")


def raw_cursor(value: object) -> str:
    """A cursor-shaped string holding any JSON, as a client could forge one."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


def described(value: object) -> str | None:
    """A short test id for a TalkQuery: only the fields it sets."""
    if not isinstance(value, TalkQuery):
        return None
    fields = {f: getattr(value, f) for f in TalkQuery.__dataclass_fields__}
    return ",".join(f"{k}={v}" for k, v in fields.items() if v is not None) or "everything"


def ids_in(page: Page) -> list[int]:
    return [doc["id"] for _, doc in page.items]


# -- merging out of order ----------------------------------------------------------------------


def advancing_snapshots() -> dict[str, Payload]:
    """Four snapshots of one talk: s3 is finished, so it is the most advanced one."""
    return {
        "s1": tagged_snapshot(TALK, [11, 12], "s1", queue_id=1, event_ids=(71,)),
        "s2": tagged_snapshot(TALK, [11, 12, 13], "s2", queue_id=2, event_ids=(71, 72)),
        "s3": tagged_snapshot(TALK, [12, 13, 14], "s3", finished=True, queue_id=3, event_ids=(73,)),
        "s4": tagged_snapshot(TALK, [11, 12, 13, 14, 15], "s4", queue_id=4, event_ids=(71, 74)),
    }


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["s1", "s2", "s3", "s4"])),
    ids="-".join,
)
async def test_snapshots_in_any_order_merge_to_the_in_order_state(
    store: TalkStore, order: tuple[str, ...]
) -> None:
    snapshots = advancing_snapshots()
    await deliver(store, *(snapshots[name] for name in order))

    state = await talk_state(store, TALK)

    winner = normalized(snapshots["s3"])
    assert state.doc == winner.doc
    assert sorted(state.messages) == [11, 12, 13, 14, 15]
    assert [state.messages[m["id"]] for m in winner.messages] == winner.messages
    assert sorted(state.events) == [71, 72, 73, 74]
    assert state.customer == winner.customer
    assert state.agents[2]["name"] == "PipeBot s3"


def tied_snapshots() -> dict[str, Payload]:
    """a and b tie on rank (unfinished, latest message 12); c is behind both."""
    return {
        "a": tagged_snapshot(TALK, [11, 12], "a", queue_id=1),
        "b": tagged_snapshot(TALK, [11, 12], "b", queue_id=2),
        "c": tagged_snapshot(TALK, [11], "c", queue_id=3),
    }


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])), ids="-".join)
async def test_between_tied_snapshots_the_later_arrival_wins_in_any_order(
    store: TalkStore, order: tuple[str, ...]
) -> None:
    snapshots = tied_snapshots()
    await deliver(store, *(snapshots[name] for name in order))

    state = await talk_state(store, TALK)

    later = next(name for name in reversed(order) if name in ("a", "b"))
    assert state.doc == normalized(snapshots[later]).doc
    assert state.messages[12]["message"] == f"message 12 from {later}"


@pytest.mark.parametrize("order", list(itertools.permutations(["x", "y", "z"])), ids="-".join)
async def test_a_message_missing_from_the_winner_keeps_the_most_advanced_version_held(
    store: TalkStore, order: tuple[str, ...]
) -> None:
    # z wins (finished) but lacks message 12; y outranks x and both hold 12.
    snapshots = {
        "x": tagged_snapshot(TALK, [11, 12], "x"),
        "y": tagged_snapshot(TALK, [11, 12, 13], "y"),
        "z": tagged_snapshot(TALK, [11, 13], "z", finished=True),
    }
    await deliver(store, *(snapshots[name] for name in order))

    state = await talk_state(store, TALK)

    assert state.doc == normalized(snapshots["z"]).doc
    assert state.messages[12]["message"] == "message 12 from y"
    assert state.messages[11]["message"] == "message 11 from z"


# Variants of one talk, some tied on rank, for the property below.
_POOL: tuple[tuple[list[int], bool], ...] = (
    ([11, 12], False),
    ([11, 12], False),
    ([11, 12, 13], False),
    ([12, 13], True),
    ([12, 13], True),
    ([11, 12, 13, 14, 15], False),
    ([10, 16], False),
)


def _pool_payload(index: int) -> Payload:
    message_ids, finished = _POOL[index]
    return tagged_snapshot(
        TALK, message_ids, f"v{index}", finished=finished, queue_id=index, event_ids=(80 + index,)
    )


async def _merged_state(
    backend: str, order: Sequence[int], request: pytest.FixtureRequest
) -> TalkState:
    with tempfile.TemporaryDirectory() as directory:
        async with opened_store(backend, Path(directory), request) as store:
            await deliver(store, *(_pool_payload(i) for i in order))
            return await talk_state(store, TALK)


# Each example needs an empty store of its own (a new file, a new schema): not a fixture.
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, database=None)
@given(order=st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=8))
def test_any_order_with_redeliveries_merges_to_the_most_advanced_snapshot(
    backend: str, request: pytest.FixtureRequest, order: list[int]
) -> None:
    state = asyncio.run(_merged_state(backend, order, request))

    first_arrival = {index: n for n, index in reversed(list(enumerate(order)))}
    talks = {i: normalized(_pool_payload(i)) for i in first_arrival}
    ranks = {i: merge.rank_of(validate_talks(_pool_payload(i))[0], first_arrival[i]) for i in talks}
    winner = max(first_arrival, key=ranks.__getitem__)
    assert state.doc == talks[winner].doc
    assert set(state.messages) == {m["id"] for t in talks.values() for m in t.messages}
    assert [state.messages[m["id"]] for m in talks[winner].messages] == talks[winner].messages
    assert set(state.events) == {80 + i for i in first_arrival}
    assert state.customer == talks[winner].customer


async def test_two_snapshots_of_a_talk_in_one_array_count_the_later_as_the_later_arrival(
    store: TalkStore,
) -> None:
    snapshots = tied_snapshots()

    await store.ingest([delivery([snapshots["a"], snapshots["b"]])])

    assert (await talk_state(store, TALK)).doc == normalized(snapshots["b"]).doc


# -- redelivery ---------------------------------------------------------------------------------


async def test_a_delivery_with_a_key_seen_before_is_a_duplicate_and_changes_nothing(
    store: TalkStore,
) -> None:
    first = delivery(snapshot(TALK, [11, 12]), key="webhook-1")
    await store.ingest([first])
    before = await talk_state(store, TALK)

    [outcome] = await store.ingest([delivery(snapshot(TALK, [11, 12, 13]), key="webhook-1")])

    assert outcome == DeliveryOutcome("id:webhook-1", True, [TALK], [])
    assert await talk_state(store, TALK) == before
    assert await store.raw_deliveries(talk_id=TALK) == [first.body]


async def test_the_same_body_under_another_key_changes_nothing(store: TalkStore) -> None:
    payload = tagged_snapshot(TALK, [11, 12], "only", event_ids=(71,))
    await store.ingest([delivery(payload, key="webhook-1")])
    before = await talk_state(store, TALK)

    [outcome] = await store.ingest([delivery(payload, key="webhook-2")])

    # A body received before is a redelivery whatever key it comes under.
    assert (outcome.duplicate, outcome.talk_ids, outcome.changed_ids) == (True, [TALK], [])
    assert await talk_state(store, TALK) == before
    assert len(await store.raw_deliveries(talk_id=TALK)) == 1


async def test_a_body_redelivered_under_another_key_does_not_take_back_a_tied_talk(
    store: TalkStore,
) -> None:
    snapshots = tied_snapshots()
    await store.ingest([delivery(snapshots["a"], key="webhook-a")])
    await store.ingest([delivery(snapshots["b"], key="webhook-b")])
    before = await talk_state(store, TALK)

    [outcome] = await store.ingest([delivery(snapshots["a"], key="webhook-a-again")])

    assert outcome.changed_ids == []
    assert await talk_state(store, TALK) == before


async def test_a_key_twice_in_one_call_stores_the_first_and_calls_the_second_a_duplicate(
    store: TalkStore,
) -> None:
    first = delivery(snapshot(TALK, [11, 12]), key="webhook-1")
    again = delivery(snapshot(TALK, [11, 12, 13]), key="webhook-1")

    outcomes = await store.ingest([first, again])

    assert [(o.duplicate, o.changed_ids) for o in outcomes] == [(False, [TALK]), (True, [])]
    assert sorted((await talk_state(store, TALK)).messages) == [11, 12]
    assert await store.raw_deliveries(talk_id=TALK) == [first.body]


async def test_a_body_twice_in_one_call_under_two_keys_is_stored_once(store: TalkStore) -> None:
    payload = snapshot(TALK, [11])

    outcomes = await store.ingest(
        [delivery(payload, key="webhook-1"), delivery(payload, key="webhook-2")]
    )

    assert [(o.duplicate, o.changed_ids) for o in outcomes] == [(False, [TALK]), (True, [])]
    assert len(await store.raw_deliveries(talk_id=TALK)) == 1


# Bodies of two talks sharing a customer and agents: the first talk's variants (_POOL), a
# second talk's, one of which carries its customer by id only, and a body holding both.
def _mixed_pool() -> list[Payload | list[Payload]]:
    other = TALK + 1
    second = [
        tagged_snapshot(other, [21], "o1", event_ids=(91,)),
        tagged_snapshot(other, [21, 22], "o2", finished=True, event_ids=(92,)),
        tagged_snapshot(other, [21, 23], "o3", event_ids=(91, 93)),
    ]
    second[2]["customer"] = None
    both = [tagged_snapshot(TALK, [12, 13, 17], "b1"), tagged_snapshot(other, [24], "b2")]
    return [*(_pool_payload(i) for i in range(len(_POOL))), *second, both]


async def _stored(
    backend: str,
    bodies: Sequence[Sequence[Payload | list[Payload]]],
    request: pytest.FixtureRequest,
) -> tuple[list[tuple[bool, list[int]]], list[TalkState]]:
    """Outcomes and final states of the talks after storing `bodies`, one call per group."""
    with tempfile.TemporaryDirectory() as directory:
        async with opened_store(backend, Path(directory), request) as store:
            outcomes: list[DeliveryOutcome] = []
            for group in bodies:
                outcomes += await store.ingest([delivery(body) for body in group])
            states = [await talk_state(store, t) for t in (TALK, TALK + 1)]
    return [(o.duplicate, o.changed_ids) for o in outcomes], states


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_deliveries_stored_in_one_call_merge_as_if_stored_one_at_a_time(
    backend: str, request: pytest.FixtureRequest, data: st.DataObject
) -> None:
    pool = _mixed_pool()
    # Every talk is stored at least once, so each has a state to compare.
    order = [len(_POOL), 0, *data.draw(st.lists(st.integers(0, len(pool) - 1), max_size=10))]
    order = data.draw(st.permutations(order))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(order) - 1), max_size=4)))
    bodies = [pool[i] for i in order]
    groups = [bodies[a:b] for a, b in itertools.pairwise([0, *cuts, len(bodies)])]

    together = asyncio.run(_stored(backend, groups, request))
    alone = asyncio.run(_stored(backend, [[body] for body in bodies], request))

    assert together == alone


async def test_a_new_talk_is_reported_changed(store: TalkStore) -> None:
    [outcome] = await deliver(store, snapshot(TALK, [11]))

    assert (outcome.duplicate, outcome.talk_ids, outcome.changed_ids) == (False, [TALK], [TALK])


# -- winners and losers -------------------------------------------------------------------------


def winner_and_loser() -> tuple[Payload, Payload]:
    winner = tagged_snapshot(TALK, [11, 12], "win", finished=True, queue_id=9, event_ids=(71,))
    loser = tagged_snapshot(TALK, [10, 11], "lose", queue_id=1, event_ids=(70, 71))
    return winner, loser


async def test_a_losing_snapshot_adds_missing_messages_and_events_only(
    store: TalkStore,
) -> None:
    winner, loser = winner_and_loser()
    await deliver(store, winner)

    [outcome] = await deliver(store, loser)

    state = await talk_state(store, TALK)
    assert outcome.changed_ids == [TALK]
    assert state.doc == normalized(winner).doc
    assert {i: m["message"] for i, m in state.messages.items()} == {
        10: "message 10 from lose",
        11: "message 11 from win",
        12: "message 12 from win",
    }
    assert sorted(state.events) == [70, 71]


async def test_a_winning_snapshot_replaces_stored_message_versions(store: TalkStore) -> None:
    winner, loser = winner_and_loser()

    await deliver(store, loser, winner)

    state = await talk_state(store, TALK)
    assert state.messages[11]["message"] == "message 11 from win"
    assert state.messages[10]["message"] == "message 10 from lose"


async def test_a_losing_snapshot_does_not_replace_the_customer_or_agents(
    store: TalkStore,
) -> None:
    winner, loser = winner_and_loser()

    await deliver(store, winner, loser)

    state = await talk_state(store, TALK)
    assert state.customer == normalized(winner).customer
    assert state.agents[2]["name"] == "PipeBot win"


async def test_a_winning_snapshot_replaces_the_customer_and_agents(store: TalkStore) -> None:
    winner, loser = winner_and_loser()

    await deliver(store, loser, winner)

    state = await talk_state(store, TALK)
    assert state.customer == normalized(winner).customer
    assert state.agents[2]["name"] == "PipeBot win"


async def test_a_customer_seen_only_by_id_is_a_stub(store: TalkStore) -> None:
    await deliver(store, snapshot(TALK, [11], customer=None))

    assert await store.customers_by_id([CUSTOMER]) == {CUSTOMER: {"id": CUSTOMER}}


async def test_a_customer_stub_is_upgraded_even_by_a_losing_snapshot(store: TalkStore) -> None:
    winner, loser = winner_and_loser()
    winner["customer"] = None

    await deliver(store, winner, loser)

    assert (await store.customers_by_id([CUSTOMER]))[CUSTOMER] == normalized(loser).customer


async def test_a_snapshot_without_customer_leaves_the_stored_customer_whole(
    store: TalkStore,
) -> None:
    earlier = tagged_snapshot(TALK, [11], "earlier")
    later = tagged_snapshot(TALK, [11, 12], "later", finished=True)
    later["customer"] = None

    await deliver(store, earlier, later)

    assert (await store.customers_by_id([CUSTOMER]))[CUSTOMER] == normalized(earlier).customer


async def test_an_agent_seen_only_by_id_is_upgraded_even_by_a_losing_snapshot(
    store: TalkStore,
) -> None:
    winner, loser = winner_and_loser()
    winner["agent_id"] = 77
    history = loser["talk_histories"][0]
    history["user_id"] = 77
    history["user"] = {**history["user"], "id": 77, "login": "carla", "name": "Carla Mendes"}
    await deliver(store, winner)
    assert await store.agents_by_id([77]) == {77: {"id": 77}}

    await deliver(store, loser)

    assert (await store.agents_by_id([77]))[77]["name"] == "Carla Mendes"
    carla = await store.agent_by_login("carla")
    assert carla is not None
    assert carla["id"] == 77


# -- transactions -------------------------------------------------------------------------------

CRASHING_TALK = 114799


@pytest.fixture
def crash_on_talk(monkeypatch: pytest.MonkeyPatch, store: TalkStore) -> None:
    """Make a batch holding CRASHING_TALK raise inside the write transaction, like a crash
    would: once all of the batch is written, before the commit."""
    if isinstance(store, SQLiteStore):
        write_batch = SQLiteStore._write_batch

        def write_or_crash(self: SQLiteStore, c: sqlite3.Connection, batch: merge.Batch) -> None:
            write_batch(self, c, batch)
            if CRASHING_TALK in batch.talks:
                raise RuntimeError("simulated crash")

        monkeypatch.setattr(SQLiteStore, "_write_batch", write_or_crash)
        return
    assert isinstance(store, PostgresStore)
    write_batch_async = postgres._write_batch

    async def write_or_crash_async(c: Any, batch: merge.Batch, *, advance: bool) -> None:
        await write_batch_async(c, batch, advance=advance)
        if CRASHING_TALK in batch.talks:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(postgres, "_write_batch", write_or_crash_async)


@pytest.mark.usefixtures("crash_on_talk")
async def test_a_batch_failing_midway_leaves_the_previous_state_whole(
    store: TalkStore,
) -> None:
    first = delivery(tagged_snapshot(TALK, [11, 12], "first", event_ids=(71,)))
    await store.ingest([first])
    before = await talk_state(store, TALK)
    advancing = tagged_snapshot(TALK, [11, 12, 13], "second", finished=True, event_ids=(72,))
    advancing["customer"]["name"] = "CHANGED"
    new_talk = snapshot(114798, [31])
    crashing = snapshot(CRASHING_TALK, [41])

    with pytest.raises(RuntimeError, match="simulated crash"):
        await store.ingest([delivery(advancing), delivery([new_talk, crashing])])

    assert await talk_state(store, TALK) == before
    assert await store.count_messages([TALK, 114798, CRASHING_TALK]) == {
        TALK: 2,
        114798: 0,
        CRASHING_TALK: 0,
    }
    assert await store.talks_by_id([114798, CRASHING_TALK]) == {}
    assert await store.raw_deliveries(talk_id=TALK) == [first.body]
    assert await store.raw_deliveries(talk_id=114798) == []


@pytest.mark.usefixtures("crash_on_talk")
async def test_the_store_accepts_deliveries_after_a_failed_batch(store: TalkStore) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        await store.ingest([delivery(snapshot(CRASHING_TALK, [41]))])

    [outcome] = await deliver(store, snapshot(TALK, [11]))

    assert outcome.changed_ids == [TALK]
    assert list(await store.talks_by_id([TALK])) == [TALK]


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


# -- filters ------------------------------------------------------------------------------------

T1, T2, T3 = 114801, 114802, 114803


@pytest.fixture
async def filtered_talks(store: TalkStore) -> None:
    """Three talks that differ in every filtered field."""
    payloads = [
        talk(
            T1,
            customer_id=1,
            agent_id=31,
            queue_id=17,
            channel_id=1,
            external_protocol="PRT-1",
            created_at="2025-09-01T10:00:00.000000Z",
            finished_at="2025-09-01 07:30:00",
            is_waiting=False,
            was_success=True,
            is_critical=False,
            customer=None,
            talk_histories=[message(811, "Minha fatura veio errada", talk_id=T1)],
        ),
        talk(
            T2,
            customer_id=2,
            agent_id=32,
            queue_id=18,
            channel_id=2,
            external_protocol=None,
            created_at="2025-09-02 07:00:00",
            finished_at=None,
            is_waiting=True,
            was_success=False,
            is_critical=True,
            customer=None,
            talk_histories=[message(821, "Quero a segunda via do boleto", talk_id=T2)],
        ),
        talk(
            T3,
            customer_id=1,
            agent_id=32,
            queue_id=17,
            channel_id=1,
            external_protocol="PRT-3",
            created_at="2025-09-03T10:00:00.000000Z",
            finished_at=None,
            is_waiting=False,
            was_success=False,
            is_critical=False,
            customer=None,
            talk_histories=[message(831, "Internet lenta", talk_id=T3)],
        ),
    ]
    await store.ingest([delivery(payloads)])


SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@pytest.mark.usefixtures("filtered_talks")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TalkQuery(), [T1, T2, T3]),
        (TalkQuery(customer_id=1), [T1, T3]),
        (TalkQuery(agent_id=32), [T2, T3]),
        (TalkQuery(queue_id=18), [T2]),
        (TalkQuery(channel_id=1), [T1, T3]),
        (TalkQuery(tracking_number=f"TN{T3}"), [T3]),
        (TalkQuery(external_protocol="PRT-1"), [T1]),
        (TalkQuery(created_from=datetime(2025, 9, 2, 10, tzinfo=UTC)), [T2, T3]),
        (TalkQuery(created_from=datetime(2025, 9, 2, 7, tzinfo=SAO_PAULO)), [T2, T3]),
        (TalkQuery(created_from=datetime(2025, 9, 2, 10, 0, 1, tzinfo=UTC)), [T3]),
        (TalkQuery(created_to=datetime(2025, 9, 2, 10, tzinfo=UTC)), [T1]),
        (
            TalkQuery(
                created_from=datetime(2025, 9, 2, 10, tzinfo=UTC),
                created_to=datetime(2025, 9, 3, 10, tzinfo=UTC),
            ),
            [T2],
        ),
        (TalkQuery(status="FINISHED"), [T1]),
        (TalkQuery(status="WAITING"), [T2]),
        (TalkQuery(status="IN_PROGRESS"), [T3]),
        (TalkQuery(was_success=True), [T1]),
        (TalkQuery(was_success=False), [T2, T3]),
        (TalkQuery(is_critical=True), [T2]),
        (TalkQuery(is_critical=False), [T1, T3]),
        (TalkQuery(text="boleto"), [T2]),
        (TalkQuery(customer_id=1, status="IN_PROGRESS"), [T3]),
        (TalkQuery(customer_id=2, queue_id=17), []),
    ],
    ids=described,
)
async def test_each_filter_narrows_talks_and_their_count(
    store: TalkStore, query: TalkQuery, expected: list[int]
) -> None:
    assert await talk_ids(store, query) == expected
    assert await store.count_talks(query=query) == {None: len(expected)}


@pytest.mark.usefixtures("filtered_talks")
async def test_a_talk_is_found_by_its_tracking_number(store: TalkStore) -> None:
    found = await store.talk_by_tracking_number(f"TN{T2}")

    assert found is not None
    assert found["id"] == T2
    assert await store.talk_by_tracking_number("TN-UNKNOWN") is None


# -- text search --------------------------------------------------------------------------------

X1, X2, X3, X4 = 114901, 114902, 114903, 114904


@pytest.fixture
async def texts(store: TalkStore) -> None:
    bodies = {
        X1: ["Olá, preciso de ajuda com minha fatura", "📣 Atenção! Nosso número mudou."],
        X2: ["fatura or boleto"],
        X3: ["Boleto atrasado"],
        X4: ["near the fatura boleto"],
    }
    payloads = [
        talk(i, talk_histories=[message(i * 10 + n, t, talk_id=i) for n, t in enumerate(lines)])
        for i, lines in bodies.items()
    ]
    await store.ingest([delivery(payloads)])


@pytest.mark.usefixtures("texts")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fatura", [X1, X2, X4]),
        ("FATURA", [X1, X2, X4]),
        ("fatur", []),
        ("atencao", [X1]),
        ("ATENÇÃO", [X1]),
        ("numero", [X1]),
        ("  boleto   atrasado ", [X3]),
        ("atrasado boleto", [X3]),
    ],
)
async def test_text_search_is_whole_word_and_ignores_case_and_accents(
    store: TalkStore, text: str, expected: list[int]
) -> None:
    assert await talk_ids(store, TalkQuery(text=text)) == expected


@pytest.mark.usefixtures("texts")
async def test_text_search_words_may_be_in_different_messages_of_a_talk(
    store: TalkStore,
) -> None:
    assert await talk_ids(store, TalkQuery(text="ajuda mudou")) == [X1]


@pytest.mark.usefixtures("texts")
async def test_text_search_needs_every_word_in_the_talk(store: TalkStore) -> None:
    assert await talk_ids(store, TalkQuery(text="ajuda boleto")) == []


@pytest.mark.usefixtures("texts")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"fatura', [X1, X2, X4]),
        ('fatura"', [X1, X2, X4]),
        ("fatura OR boleto", [X2]),
        ("fatur*", []),
        ("fatura*", [X1, X2, X4]),
        ("NEAR(fatura boleto)", [X4]),
        ("NEAR(fatura boleto, 1)", []),
        ("boleto NOT atrasado", []),
        ("-boleto", [X2, X3, X4]),
        ("message:fatura", []),
        ("^fatura", [X1, X2, X4]),
        ("(fatura)", [X1, X2, X4]),
    ],
)
async def test_search_syntax_characters_are_words_not_syntax(
    store: TalkStore, text: str, expected: list[int]
) -> None:
    assert await talk_ids(store, TalkQuery(text=text)) == expected


@pytest.mark.parametrize("text", ["", "   ", "!!! ???", '"*"', "📣"])
async def test_a_text_filter_without_words_is_bad_input(store: TalkStore, text: str) -> None:
    with pytest.raises(BadUserInput):
        await talk_ids(store, TalkQuery(text=text))
    with pytest.raises(BadUserInput):
        await store.count_talks(query=TalkQuery(text=text))


async def test_search_follows_a_message_text_replaced_by_a_winning_snapshot(
    store: TalkStore,
) -> None:
    first = talk(TALK, finished_at=None, talk_histories=[message(501, "alpha", talk_id=TALK)])
    winner = talk(TALK, talk_histories=[message(501, "bravo", talk_id=TALK)])
    loser = talk(TALK, finished_at=None, talk_histories=[message(501, "charlie", talk_id=TALK)])

    await deliver(store, first, winner, loser)

    assert await talk_ids(store, TalkQuery(text="alpha")) == []
    assert await talk_ids(store, TalkQuery(text="bravo")) == [TALK]
    assert await talk_ids(store, TalkQuery(text="charlie")) == []


# -- messages and events ------------------------------------------------------------------------


@pytest.fixture
async def two_talks_with_messages(store: TalkStore) -> None:
    payloads = [
        talk(TALK, talk_histories=[message(i, f"m{i}", talk_id=TALK) for i in (305, 301, 303)]),
        talk(114701, talk_histories=[message(i, f"m{i}", talk_id=114701) for i in (302, 304)]),
    ]
    await store.ingest([delivery(payloads)])
    await deliver(
        store,
        talk(TALK, talk_histories=[message(i, f"m{i}", talk_id=TALK) for i in (306, 300)]),
    )


@pytest.mark.usefixtures("two_talks_with_messages")
async def test_message_pages_list_each_talk_oldest_first_through_cursors(
    store: TalkStore,
) -> None:
    seen: list[int] = []
    after: str | None = None
    for _ in range(10):
        pages = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=2, after=after))
        seen += [m["id"] for _, m in pages[TALK].items]
        if not pages[TALK].has_next:
            break
        after = pages[TALK].end_cursor

    assert seen == [300, 301, 303, 305, 306]


@pytest.mark.usefixtures("two_talks_with_messages")
async def test_message_pages_keep_talks_apart(store: TalkStore) -> None:
    pages = await store.message_pages(talk_ids=[TALK, 114701, 114799], page=PageRequest(first=2))

    assert {t: ([m["id"] for _, m in p.items], p.has_next) for t, p in pages.items()} == {
        TALK: ([300, 301], True),
        114701: ([302, 304], False),
        114799: ([], False),
    }


@pytest.mark.usefixtures("two_talks_with_messages")
async def test_messages_are_counted_per_talk(store: TalkStore) -> None:
    assert await store.count_messages([TALK, 114701, 114799]) == {TALK: 5, 114701: 2, 114799: 0}


@pytest.mark.parametrize("garbage", ["nope", cursor.encode("talk:ID_ASC", 3)])
async def test_a_message_cursor_of_another_kind_is_rejected(store: TalkStore, garbage: str) -> None:
    with pytest.raises(BadUserInput):
        await store.message_pages(talk_ids=[TALK], page=PageRequest(first=2, after=garbage))


async def test_events_are_listed_per_talk_by_id(store: TalkStore) -> None:
    await deliver(
        store,
        tagged_snapshot(TALK, [11], "a", event_ids=(75, 71)),
        tagged_snapshot(TALK, [11], "b", event_ids=(73,)),
        tagged_snapshot(114701, [21], "c", event_ids=(72,)),
    )

    events = await store.events_by_talk([TALK, 114701, 114799])

    assert {t: [e["id"] for e in docs] for t, docs in events.items()} == {
        TALK: [71, 73, 75],
        114701: [72],
        114799: [],
    }
    assert all(e["talk_id"] == TALK for e in events[TALK])


# -- customers and agents -----------------------------------------------------------------------


def customer_talk(talk_id: int, customer_id: int, name: str, external_id: str) -> Payload:
    payload = talk(talk_id, customer_id=customer_id)
    payload["customer"].update(id=customer_id, name=name, external_id=external_id)
    return payload


@pytest.fixture
async def customers(store: TalkStore) -> None:
    people = [
        (700001, "JONAS", "95238935"),
        (700002, "MARIA SILVA", "A-1"),
        (700003, "JOÃO PEREIRA", "A-2"),
        (700004, "100% CLIENTE", "A-3"),
        (700005, "A_B LTDA", "A-4"),
        (700006, "AXB LTDA", "A-5"),
        (700007, "Ana Costa", "A-6"),
    ]
    await store.ingest(
        [delivery([customer_talk(114700 + n, *person) for n, person in enumerate(people)])]
    )


async def customer_ids(store: TalkStore, search: str | None) -> list[int]:
    page = await store.customer_page(search=search, page=PageRequest(first=100))
    return [doc["id"] for _, doc in page.items]


@pytest.mark.usefixtures("customers")
@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("maria", [700002]),
        ("Silv", [700002]),
        ("ana", [700007]),
        ("ANA COSTA", [700007]),
        (" jonas ", [700001]),
        ("joão", [700003]),
        ("95238935", [700001]),
        ("9523893", []),
        ("A-2", [700003]),
        ("ltda", [700005, 700006]),
    ],
)
async def test_customers_are_found_by_part_of_the_name_or_exact_external_id(
    store: TalkStore, search: str, expected: list[int]
) -> None:
    assert await customer_ids(store, search) == expected
    assert await store.count_customers(search=search) == len(expected)


@pytest.mark.usefixtures("customers")
@pytest.mark.parametrize(
    ("search", "expected"), [("%", [700004]), ("_", [700005]), ("A_B", [700005]), ("0%", [700004])]
)
async def test_percent_and_underscore_in_a_customer_search_are_literal(
    store: TalkStore, search: str, expected: list[int]
) -> None:
    assert await customer_ids(store, search) == expected
    assert await store.count_customers(search=search) == len(expected)


@pytest.mark.usefixtures("customers")
@pytest.mark.parametrize("search", [None, "", "   "])
async def test_a_blank_customer_search_lists_every_customer(
    store: TalkStore, search: str | None
) -> None:
    assert await customer_ids(store, search) == list(range(700001, 700008))
    assert await store.count_customers(search=search) == 7


@pytest.mark.usefixtures("customers")
async def test_customer_pages_follow_their_cursors(store: TalkStore) -> None:
    first = await store.customer_page(search="a", page=PageRequest(first=3))
    rest = await store.customer_page(search="a", page=PageRequest(first=3, after=first.end_cursor))

    assert [d["id"] for _, d in first.items] == [700001, 700002, 700003]
    assert first.has_next
    assert [d["id"] for _, d in rest.items] == [700005, 700006, 700007]
    assert not rest.has_next


async def test_a_customer_cursor_of_another_kind_is_rejected(store: TalkStore) -> None:
    with pytest.raises(BadUserInput):
        await store.customer_page(
            search=None, page=PageRequest(first=3, after=cursor.encode("agent", 1))
        )


async def test_agents_are_found_by_login(store: TalkStore) -> None:
    await deliver(store, talk(TALK))

    bot = await store.agent_by_login("bot")

    assert bot is not None
    assert (bot["id"], bot["name"], bot["is_bot"]) == (2, "PipeBot", True)
    assert await store.agent_by_login("nobody") is None


async def test_agent_pages_list_agents_and_stubs_by_id(store: TalkStore) -> None:
    await deliver(store, talk(TALK, agent_id=40, delivered_to=41, scaled_to=39))

    first = await store.agent_page(page=PageRequest(first=2))
    rest = await store.agent_page(page=PageRequest(first=2, after=first.end_cursor))

    assert [d["id"] for _, d in first.items + rest.items] == [2, 39, 40, 41]
    assert (first.has_next, rest.has_next) == (True, False)
    assert await store.count_agents() == 4


async def test_channels_are_kept_from_message_channel_objects(store: TalkStore) -> None:
    await deliver(store, talk(TALK))

    channels = await store.channels_by_id([1, 2])

    assert list(channels) == [1]
    assert channels[1]["description"] == "WhatsApp"


async def test_messages_and_events_are_read_by_their_own_id_whatever_their_talk(
    store: TalkStore,
) -> None:
    first, second = talk(TALK), talk(TALK + 1)
    await deliver(store, first)
    await deliver(store, second)
    message_ids = [first["talk_histories"][0]["id"], second["talk_histories"][2]["id"]]
    event_id = second["talk_events"][0]["id"]

    messages = await store.messages_by_id([*message_ids, 1, message_ids[0]])
    events = await store.events_by_id([event_id, message_ids[0]])

    assert sorted(messages) == sorted(message_ids)  # an unknown id is absent, a repeat once
    assert messages[message_ids[0]]["talk_id"] == TALK
    assert messages[message_ids[1]]["talk_id"] == TALK + 1
    assert list(events) == [event_id]  # a message's id names no event
    assert events[event_id]["talk_id"] == TALK + 1
    assert await store.messages_by_id([]) == await store.events_by_id([]) == {}


# -- dead letters and raw deliveries ------------------------------------------------------------


async def test_dead_letters_are_kept_and_listed_newest_first(store: TalkStore) -> None:
    errors = [{"loc": "id", "msg": "Field required"}]
    older = await store.add_dead_letter(
        source="webhook", reason="not a talk", errors=errors, body=b'{"x": 1}', body_size=8
    )
    newer = await store.add_dead_letter(
        source="cli:a.json", reason="too big", errors=[], body=b"{", body_size=9000, truncated=True
    )

    letters = await store.dead_letters()

    assert [letter.id for letter in letters] == [newer, older]
    latest, earliest = letters
    assert (latest.source, latest.reason, latest.errors) == ("cli:a.json", "too big", [])
    assert (latest.body, latest.body_size, latest.truncated) == (b"{", 9000, True)
    assert (earliest.reason, earliest.errors, earliest.body) == ("not a talk", errors, b'{"x": 1}')
    assert not earliest.truncated
    assert await store.dead_letters(limit=1) == [latest]


@pytest.mark.parametrize(
    ("raw", "status"), [(b"{not json", 400), (orjson.dumps({"id": "nope"}), 422)]
)
async def test_a_rejected_body_is_dead_lettered_with_its_reason(
    store: TalkStore, raw: bytes, status: int
) -> None:
    ingestor = Ingestor(store, DEFAULT_ZONE)

    with pytest.raises(BodyRejected) as caught:
        await ingestor.ingest(Body(raw, "webhook"))

    [letter] = await store.dead_letters()
    assert caught.value.status == status
    assert letter.id == caught.value.dead_letter_id
    assert (letter.body, letter.body_size, letter.source) == (raw, len(raw), "webhook")
    assert letter.errors == caught.value.errors
    assert letter.errors


async def test_raw_deliveries_of_a_talk_are_kept_in_arrival_order(store: TalkStore) -> None:
    bodies: list[Any] = [
        snapshot(TALK, [12]),
        [snapshot(114701, [21]), snapshot(TALK, [11, 12])],
        snapshot(TALK, [11]),
        snapshot(114701, [21, 22]),
    ]
    sent = [delivery(b) for b in bodies]
    for one in sent:
        await store.ingest([one])
    await store.ingest([sent[0]])

    assert await store.raw_deliveries(talk_id=TALK) == [sent[0].body, sent[1].body, sent[2].body]
    assert await store.raw_deliveries(talk_id=114701) == [sent[1].body, sent[3].body]
    assert await store.raw_deliveries(talk_id=114799) == []


async def test_raw_deliveries_keep_the_exact_bytes_received(store: TalkStore) -> None:
    raw = b'{  "weird" : true,\n' + orjson.dumps(talk(TALK))[1:]
    await Ingestor(store, DEFAULT_ZONE).ingest(Body(raw, "webhook"))

    assert await store.raw_deliveries(talk_id=TALK) == [raw]


# -- text PostgreSQL cannot hold as such -------------------------------------------------------


async def test_text_holding_nul_characters_is_kept_whole_and_found(store: TalkStore) -> None:
    payload = talk(
        TALK,
        tracking_number="TN\x00X",
        talk_histories=[message(901, "antes\x00depois fatura", talk_id=TALK)],
    )
    payload["customer"].update(name="ANA\x00BEL", external_id="EXT\x00")
    sent = delivery(payload)

    await store.ingest([sent])

    state = await talk_state(store, TALK)
    assert state.messages[901]["message"] == "antes\x00depois fatura"
    assert state.customer == normalized(payload).customer
    assert await talk_ids(store, TalkQuery(text="depois fatura")) == [TALK]
    assert await talk_ids(store, TalkQuery(tracking_number="TN\x00X")) == [TALK]
    assert await talk_ids(store, TalkQuery(tracking_number="TN")) == []
    found = await store.talk_by_tracking_number("TN\x00X")
    assert found is not None
    assert found["id"] == TALK
    assert await customer_ids(store, "ana") == [CUSTOMER]
    assert await customer_ids(store, "EXT\x00") == [CUSTOMER]
    assert await store.raw_deliveries(talk_id=TALK) == [sent.body]


# -- agent control: queue status and login tickets ----------------------------------------------


async def test_the_last_status_set_for_each_login_is_kept(store: TalkStore) -> None:
    await store.set_agent_status(login="1234", status="PAUSED", changed_at="2025-09-08T14:00:00Z")
    await store.set_agent_status(login="1234", status="ACTIVE", changed_at="2025-09-08T14:05:00Z")
    await store.set_agent_status(login="odd\x00login", status="PAUSED", changed_at="t")

    statuses = await store.agent_statuses(["1234", "odd\x00login", "5678", "1234"])

    assert statuses == {"1234": ("ACTIVE", "2025-09-08T14:05:00Z"), "odd\x00login": ("PAUSED", "t")}
    assert await store.agent_statuses([]) == {}


async def test_a_login_ticket_is_given_once(store: TalkStore) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=1)
    await store.put_ticket(digest="d1", sealed="sealed-1", expires_at=expires)

    assert await store.take_ticket(digest="d1", now=datetime.now(UTC)) == "sealed-1"
    assert await store.take_ticket(digest="d1", now=datetime.now(UTC)) is None
    assert await store.take_ticket(digest="unknown", now=datetime.now(UTC)) is None


async def test_an_expired_login_ticket_is_not_given(store: TalkStore) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=1)
    await store.put_ticket(digest="d2", sealed="sealed-2", expires_at=expires)

    assert await store.take_ticket(digest="d2", now=expires + timedelta(seconds=1)) is None


# -- reopening ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reopening_the_same_store_keeps_the_data(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = await empty_store_url(backend, tmp_path, request)
    first = open_store(url)
    await first.open()
    await deliver(first, tagged_snapshot(TALK, [11, 12], "kept", event_ids=(71,)))
    before = await talk_state(first, TALK)
    await first.close()

    second = open_store(url)
    await second.open()
    try:
        assert await talk_state(second, TALK) == before
        assert await talk_ids(second, TalkQuery(text="kept")) == [TALK]
    finally:
        await second.close()


async def test_reopening_leaves_the_sqlite_schema_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    for _ in range(3):
        opened = SQLiteStore(f"sqlite:///{path}")
        await opened.open()
        await opened.close()

    with sqlite3.connect(path) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        (journal,) = connection.execute("PRAGMA journal_mode").fetchone()
    connection.close()
    assert version == len(MIGRATIONS)
    assert journal == "wal"


async def test_a_store_of_an_earlier_schema_keeps_its_talks_and_pages_from_the_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "earlier.db"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await deliver(store, tagged_snapshot(TALK, [11, 12], "kept", event_ids=(71,)))
    before = await talk_state(store, TALK)
    await store.close()
    # Back to the schema before the page's index held versions and customers.
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "DROP INDEX talks_created; CREATE INDEX talks_created ON talks (created_us, id);"
            f" PRAGMA user_version = {len(MIGRATIONS) - 1};"
        )
    connection.close()

    again = SQLiteStore(f"sqlite:///{path}")
    await again.open()
    try:
        assert await talk_state(again, TALK) == before
    finally:
        await again.close()
    with sqlite3.connect(path) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        columns = [row[2] for row in connection.execute("PRAGMA index_info(talks_created)")]
        plan = " ".join(
            str(row[3])
            for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT created_us, id, version, customer_id FROM talks"
                " WHERE (created_us, id) < (?, ?) ORDER BY created_us DESC, id DESC LIMIT 101",
                (1 << 60, 1 << 60),
            )
        )
    connection.close()
    assert version == len(MIGRATIONS)
    assert columns == ["created_us", "id", "version", "customer_id"]
    assert "COVERING INDEX talks_created" in plan


def test_stores_opening_one_new_sqlite_file_at_once_all_migrate_it(tmp_path: Path) -> None:
    """`serve --workers N` opens a new file from N processes at once."""
    path = tmp_path / "raced.db"
    openers = 6
    for attempt in range(5):
        url = f"sqlite:///{path.with_name(f'raced-{attempt}.db')}"
        start = threading.Barrier(openers)

        def open_and_close(url: str = url, start: threading.Barrier = start) -> None:
            async def run() -> None:
                store = SQLiteStore(url)
                start.wait()
                await store.open()
                await store.close()

            asyncio.run(run())

        with ThreadPoolExecutor(openers) as pool:
            for opened in [pool.submit(open_and_close) for _ in range(openers)]:
                opened.result()


# -- message and event ids belong to one talk ------------------------------------------------


def _with_events(payload: Payload, event_ids: Sequence[int]) -> Payload:
    payload["talk_events"] = [
        {**payload["talk_events"][0], "id": i, "talk_id": payload["id"]} for i in event_ids
    ]
    return payload


async def test_a_body_whose_messages_are_another_talks_is_refused_and_dead_lettered(
    store: TalkStore,
) -> None:
    await store.ingest([delivery(snapshot(TALK, [11, 12]))])
    before = await talk_state(store, TALK)
    thief = delivery(snapshot(TALK + 1, [12, 13]))

    [outcome] = await store.ingest([thief])

    # Refused whole: talk TALK keeps message 12, talk TALK + 1 is not stored at all.
    assert outcome.refused is not None
    assert outcome.changed_ids == []
    assert outcome.refused.errors == [
        {"loc": "talk_histories", "msg": f"message 12 belongs to talk {TALK}"}
    ]
    assert await talk_state(store, TALK) == before
    assert await store.talks_by_id([TALK + 1]) == {}
    assert await store.raw_deliveries(talk_id=TALK + 1) == []
    [letter] = await store.dead_letters()
    assert letter.id == outcome.refused.dead_letter_id
    assert letter.body == thief.body  # kept whole: nothing sent is lost
    assert letter.reason == "the body's messages or events belong to another talk"


async def test_a_body_whose_events_are_another_talks_is_refused(store: TalkStore) -> None:
    await store.ingest([delivery(_with_events(snapshot(TALK, [11]), [71]))])
    [outcome] = await store.ingest([delivery(_with_events(snapshot(TALK + 1, [21]), [71, 72]))])
    assert outcome.refused is not None
    assert outcome.refused.errors == [
        {"loc": "talk_events", "msg": f"event 71 belongs to talk {TALK}"}
    ]
    assert [e["id"] for e in (await store.events_by_talk([TALK]))[TALK]] == [71]
    assert await store.talks_by_id([TALK + 1]) == {}


async def test_conflicting_talks_in_one_body_or_one_call_are_refused_the_first_kept(
    store: TalkStore,
) -> None:
    # In one array: the whole body is refused.
    [in_body] = await store.ingest([delivery([snapshot(TALK, [11]), snapshot(TALK + 1, [11])])])
    assert in_body.refused is not None
    assert in_body.refused.errors == [
        {"loc": "1.talk_histories", "msg": f"message 11 belongs to talk {TALK}"}
    ]
    assert await store.talks_by_id([TALK, TALK + 1]) == {}
    # In one group commit: the first delivery is stored, the second refused, a third stored.
    first, second, third = await store.ingest(
        [
            delivery(snapshot(TALK, [11])),
            delivery(snapshot(TALK + 1, [11])),
            delivery(snapshot(TALK + 2, [31])),
        ]
    )
    assert (first.refused, first.changed_ids) == (None, [TALK])
    assert second.refused is not None
    assert (third.refused, third.changed_ids) == (None, [TALK + 2])
    assert sorted(await store.talks_by_id([TALK, TALK + 1, TALK + 2])) == [TALK, TALK + 2]
    assert list((await talk_state(store, TALK)).messages) == [11]
    assert len(await store.dead_letters()) == 2


async def test_a_refused_body_is_refused_again_and_its_talk_stays_deliverable(
    store: TalkStore,
) -> None:
    await store.ingest([delivery(snapshot(TALK, [11]))])
    thief = delivery(snapshot(TALK + 1, [11]))
    [once] = await store.ingest([thief])
    [again] = await store.ingest([thief])  # not a duplicate: it was never stored
    assert once.refused is not None
    assert again.refused is not None
    assert not again.duplicate
    [fixed] = await store.ingest([delivery(snapshot(TALK + 1, [21]))])
    assert (fixed.refused, fixed.changed_ids) == (None, [TALK + 1])


async def test_a_refused_body_repeated_in_the_same_batch_is_refused_with_it(
    store: TalkStore,
) -> None:
    await store.ingest([delivery(snapshot(TALK, [11]))])
    thief = delivery(snapshot(TALK + 1, [11]))
    first, second = await store.ingest([thief, thief])
    assert first.refused is not None
    assert second.refused == first.refused
    assert not second.duplicate
    assert list((await talk_state(store, TALK)).messages) == [11]


async def test_the_conflicts_listed_are_at_most_100_with_their_count(store: TalkStore) -> None:
    await store.ingest([delivery(snapshot(TALK, list(range(1, 151))))])
    [outcome] = await store.ingest([delivery(snapshot(TALK + 1, list(range(1, 151))))])
    assert outcome.refused is not None
    assert len(outcome.refused.errors) == 100
    assert outcome.refused.error_count == 150
    [letter] = await store.dead_letters()
    assert len(letter.errors) == 100
    assert letter.reason == (
        "the body's messages or events belong to another talk"
        " (150 errors; the first 100 are listed)"
    )


@settings(max_examples=25, deadline=None, database=None)
@given(
    owners=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    ids=st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=4), min_size=6, max_size=6),
)
def test_a_message_never_changes_talk_whatever_the_deliveries(
    tmp_path_factory: pytest.TempPathFactory, owners: list[int], ids: list[list[int]]
) -> None:
    # Random deliveries of talks sharing message ids, one per call and all in one call: each
    # message ends in the talk that first brought it, and a body is stored whole or not at all.
    async def run(together: bool) -> dict[int, int]:
        url = f"sqlite:///{tmp_path_factory.mktemp('ids') / 'db.sqlite'}"
        opened = open_store(url)
        await opened.open()
        try:
            deliveries = [
                delivery(snapshot(TALK + owner, ids[n])) for n, owner in enumerate(owners)
            ]
            outcomes = (
                await opened.ingest(deliveries)
                if together
                else [(await opened.ingest([d]))[0] for d in deliveries]
            )
            expected: dict[int, int] = {}
            for n, (owner, outcome) in enumerate(zip(owners, outcomes, strict=True)):
                clash = any(expected.get(i, TALK + owner) != TALK + owner for i in ids[n])
                assert (outcome.refused is not None) == clash
                if not clash:
                    expected.update(dict.fromkeys(ids[n], TALK + owner))
            talks = sorted(set(expected.values()))
            pages = await opened.message_pages(talk_ids=talks, page=PageRequest(first=100))
            found = {m["id"]: t for t, page in pages.items() for _, m in page.items}
            assert found == expected
            return found
        finally:
            await opened.close()

    assert asyncio.run(run(False)) == asyncio.run(run(True))


# -- SQLite reads on the event loop, within a budget (SQLiteStore._read) ---------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'loop.db'}")
    await opened.open()
    await deliver(opened, *(talk(TALK + n) for n in range(30)))
    yield opened
    await opened.close()


def _threaded_reads(monkeypatch: pytest.MonkeyPatch, store: SQLiteStore) -> list[str]:
    """The names of the threads that open a reader connection from now on."""
    seen: list[str] = []
    reader = store._reader

    def recorded() -> sqlite3.Connection:
        seen.append(threading.current_thread().name)
        return reader()

    monkeypatch.setattr(store, "_reader", recorded)
    return seen


async def _page_ids(store: SQLiteStore) -> list[int]:
    pages = await store.talk_pages(
        query=TalkQuery(), page=PageRequest(first=25), order=StoreOrder.CREATED_AT_DESC
    )
    return ids_in(pages[None])


async def test_a_page_is_read_on_the_loop_and_a_longer_read_on_a_thread(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded = _threaded_reads(monkeypatch, sqlite_store)
    on_the_loop = await _page_ids(sqlite_store)
    assert threaded == []
    # A budget the same page cannot stay within (whatever number of SQLite steps its
    # statements take): interrupted, read again on a thread.
    monkeypatch.setattr("gateway.storage.sqlite._STEPS_PER_CALL", 1)
    monkeypatch.setattr("gateway.storage.sqlite.LOOP_READ_STEPS", 0)
    assert await _page_ids(sqlite_store) == on_the_loop
    assert threaded
    assert all(name != threading.main_thread().name for name in threaded)
    assert not sqlite_store._loop_reader().in_transaction


async def test_counts_are_read_on_a_thread(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite counts a table's rows in one step the budget cannot interrupt."""
    threaded = _threaded_reads(monkeypatch, sqlite_store)
    counted = await sqlite_store.count_talks(query=TalkQuery())
    assert counted == {None: 30}
    assert threaded


@pytest.mark.parametrize("budget", [0, 1, 2, 3, 5, 8])
async def test_a_read_interrupted_anywhere_leaves_the_loop_s_connection_clean(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    """Wherever the budget runs out (inside a read transaction of several statements
    included), the answer is the thread's, and the next write is seen by the next read."""
    monkeypatch.setattr("gateway.storage.sqlite._STEPS_PER_CALL", 1)
    monkeypatch.setattr("gateway.storage.sqlite.LOOP_READ_STEPS", budget)
    before = await _page_ids(sqlite_store)
    assert len(before) == 25
    assert not sqlite_store._loop_reader().in_transaction
    await deliver(sqlite_store, talk(TALK + 100))
    monkeypatch.undo()
    assert list(await sqlite_store.talks_by_id([TALK + 100])) == [TALK + 100]
    assert len(await _page_ids(sqlite_store)) == 25


async def test_a_read_interrupted_inside_its_transaction_leaves_none_open(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of several statements in one read transaction (_consistently's second try),
    interrupted at the budget: the loop's connection is left outside any transaction, so
    the next read there sees commits made since."""

    def in_one_transaction(c: sqlite3.Connection) -> int:
        # _consistently commits in a `finally`, itself interrupted past the budget; this
        # work leaves its transaction to whoever interrupts it, and runs out of budget at
        # once once it is in (the handler the store set, replaced by one that stops all).
        c.execute("BEGIN")
        c.set_progress_handler(lambda: True, 1)
        return int(c.execute("SELECT count(*) FROM talks WHERE id > 0").fetchone()[0])

    assert sqlite_store._on_the_loop(in_one_transaction) is sqlite_module._TOO_LONG
    assert not sqlite_store._loop_reader().in_transaction


async def test_after_the_file_was_found_busy_reads_skip_the_loop_for_a_while(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locked by another process, SQLite may retry and sleep for seconds inside a read (10 s
    seen with every shared-memory lock held): once the file was found busy, reads wait on
    the reader threads, not on the loop, for BUSY_PAUSE_S."""

    class Busy:
        in_transaction = False

        def execute(self, *_: object) -> None:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error

        def set_progress_handler(self, *_: object) -> None:
            pass

    real = sqlite_store._loop_reader
    monkeypatch.setattr(sqlite_store, "_loop_reader", Busy)
    with pytest.raises(StoreUnavailable):
        await sqlite_store.generation()
    monkeypatch.setattr(sqlite_store, "_loop_reader", real)
    threaded = _threaded_reads(monkeypatch, sqlite_store)
    assert len(await _page_ids(sqlite_store)) == 25
    assert threaded  # on a thread while the pause lasts
    sqlite_store._busy_until = 0.0  # as when BUSY_PAUSE_S has passed
    threaded.clear()
    assert len(await _page_ids(sqlite_store)) == 25
    assert threaded == []  # back on the loop once it is over
