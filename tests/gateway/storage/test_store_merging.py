"""Merging deliveries on every backend: out of order, redelivered, winners and losers.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.validation import validate_talks
from gateway.storage import TalkStore, merge
from gateway.storage.records import (
    DeliveryOutcome,
)
from tests.backends import BACKENDS, opened_store
from tests.factories import Payload, snapshot
from tests.gateway.storage.support import (
    CUSTOMER,
    TALK,
    TalkState,
    deliver,
    delivery,
    normalized,
    tagged_snapshot,
    talk_state,
)

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


@pytest.mark.parametrize(
    "winner_first",
    [
        pytest.param(True, id="a-losing-snapshot-after-does-not-replace-them"),
        pytest.param(False, id="a-winning-snapshot-after-replaces-them"),
    ],
)
async def test_the_customer_and_agents_are_the_winning_snapshot_s_in_either_order(
    store: TalkStore, winner_first: bool
) -> None:
    winner, loser = winner_and_loser()

    await deliver(store, *((winner, loser) if winner_first else (loser, winner)))

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
