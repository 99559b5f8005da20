"""Retention on every backend: a purge removes the talks finished before a date with their
messages, events and search words, the raw deliveries and the customers and agents left with
no talk, and the dead letters received before it; nothing else; a dry run counts the same
and changes nothing; the generation moves on.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

from typing import Any

from gateway.storage import TalkStore
from gateway.storage.records import Purged, TalkQuery
from tests.factories import message, talk
from tests.gateway.storage.support import delivery, talk_ids

CUTOFF = "2025-01-01T00:00:00Z"
MESSAGES = [10, 11, 20, 21, 30, 31, 40, 41, 50, 51]


def payload(talk_id: int, *, finished: str | None, customer: int, agent: int) -> dict[str, Any]:
    """A talk with its own messages (written by user `agent`) and event, finished then."""
    body = talk(talk_id)
    body["finished_at"] = finished
    body["customer"] = {**body["customer"], "id": customer, "name": f"Customer {customer}"}
    body["customer_id"] = customer
    body["agent_id"] = agent
    text = f"words of {talk_id}" + (" purgeable" if finished and finished < "2025" else "")
    body["talk_histories"] = [message(talk_id * 10 + n, text, talk_id=talk_id) for n in range(2)]
    for history in body["talk_histories"]:
        history["user"] = {**history["user"], "id": agent, "login": f"agent{agent}"}
        history["user_id"] = agent
    return body


async def fill(store: TalkStore) -> None:
    old = "2024-06-01 10:00:00"  # naive local time, as PipeRun sends it
    recent = "2025-06-01 10:00:00"
    await store.ingest([delivery(payload(1, finished=old, customer=501, agent=901))])
    await store.ingest([delivery(payload(2, finished=old, customer=501, agent=901))])
    # One delivery holding an old talk and a recent one: it stays for the recent one.
    await store.ingest(
        [
            delivery(
                [
                    payload(3, finished=old, customer=502, agent=902),
                    payload(4, finished=recent, customer=502, agent=903),
                ]
            )
        ]
    )
    await store.ingest([delivery(payload(5, finished=None, customer=503, agent=904))])
    for when in ("2024-03-01T00:00:00.000000Z", "2025-03-01T00:00:00.000000Z"):
        await store.add_dead_letter(
            source="webhook", reason=when, errors=[], body=b"x", body_size=1, received_at=when
        )


async def state(store: TalkStore) -> dict[str, Any]:
    return {
        "talks": await talk_ids(store, TalkQuery()),
        "found": {w: await talk_ids(store, TalkQuery(text=w)) for w in ("words", "purgeable")},
        "customers": sorted((await store.customers_by_id([501, 502, 503])).keys()),
        "agents": sorted((await store.agents_by_id([901, 902, 903, 904])).keys()),
        "messages": sorted(
            (await store.messages_by_id([10, 11, 20, 21, 30, 31, 40, 41, 50, 51])).keys()
        ),
        "raw": {t: len(await store.raw_deliveries(talk_id=t)) for t in (1, 2, 3, 4, 5)},
        "deliveries": await store.count_deliveries(),
        "dead_letters": await store.count_dead_letters(),
    }


BEFORE = {
    "talks": [1, 2, 3, 4, 5],
    "found": {"words": [1, 2, 3, 4, 5], "purgeable": [1, 2, 3]},
    "customers": [501, 502, 503],
    "agents": [901, 902, 903, 904],
    "messages": [10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
    "raw": {1: 1, 2: 1, 3: 1, 4: 1, 5: 1},
    "deliveries": 4,
    "dead_letters": 2,
}
GONE = Purged(talks=3, messages=6, events=3, deliveries=2, dead_letters=1, customers=1, agents=2)


async def test_a_purge_takes_what_finished_before_the_date_and_what_only_it_held(
    store: TalkStore,
) -> None:
    await fill(store)
    assert await state(store) == BEFORE
    generation = await store.generation()
    assert await store.purge(before=CUTOFF) == GONE
    assert await state(store) == {
        "talks": [4, 5],  # finished later, and not finished
        "found": {"words": [4, 5], "purgeable": []},  # their words left the search too
        "customers": [502, 503],  # 502 still has talk 4
        "agents": [903, 904],  # 902 wrote only in talk 3
        "messages": [40, 41, 50, 51],
        "raw": {1: 0, 2: 0, 3: 0, 4: 1, 5: 1},  # talk 4's delivery held talk 3 too: kept
        "deliveries": 2,
        "dead_letters": 1,
    }
    assert await store.generation() != generation  # cached answers go
    assert await store.purge(before=CUTOFF) == Purged()  # nothing left to take


async def test_a_dry_purge_counts_what_would_go_and_changes_nothing(store: TalkStore) -> None:
    await fill(store)
    generation = await store.generation()
    assert await store.purge(before=CUTOFF, dry=True) == GONE
    assert await state(store) == BEFORE
    assert await store.generation() == generation


async def test_a_purge_in_batches_takes_the_same(store: TalkStore) -> None:
    await fill(store)
    total = Purged()
    while done := await store.purge(before=CUTOFF, limit=1):
        total += done
        if done == Purged():
            break
    assert total == GONE
