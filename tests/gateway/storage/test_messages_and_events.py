"""Messages and events on every backend, and their ids belonging to one talk.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadUserInput
from gateway.storage import TalkStore, cursor, open_store
from gateway.storage.records import (
    PageRequest,
)
from tests.factories import Payload, message, snapshot, talk
from tests.gateway.storage.support import (
    TALK,
    deliver,
    delivery,
    tagged_snapshot,
    talk_state,
)

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
