"""Dead letters and raw deliveries on every backend.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.ingestor import Body, BodyRejected, Ingestor
from gateway.storage import TalkStore
from tests.factories import snapshot, talk
from tests.gateway.storage.support import (
    TALK,
    delivery,
)

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


async def _letters(store: TalkStore, reasons: list[str]) -> list[int]:
    return [
        await store.add_dead_letter(
            source="webhook", reason=reason, errors=[], body=reason.encode(), body_size=1
        )
        for reason in reasons
    ]


async def test_dead_letters_are_paged_newest_first_and_filtered_by_reason(
    store: TalkStore,
) -> None:
    reasons = ["the body is not JSON", "not a valid talk", "The Body Is Not JSON", "too big"]
    ids = await _letters(store, reasons * 3)
    newest_first = ids[::-1]
    pages: list[int] = []
    before: int | None = None
    while page := await store.dead_letters(limit=5, before_id=before):
        pages += [letter.id for letter in page]
        before = page[-1].id
    assert pages == newest_first
    assert await store.count_dead_letters() == 12
    json = await store.dead_letters(limit=100, reason="body is not json")
    assert [letter.id for letter in json] == [
        i for i, r in zip(ids, reasons * 3, strict=True) if "json" in r.lower()
    ][::-1]
    assert await store.count_dead_letters(reason="BODY IS NOT JSON") == 6
    assert await store.count_dead_letters(reason="nothing like it") == 0
    older = await store.dead_letters(limit=100, before_id=ids[5], reason="json")
    assert all(letter.id < ids[5] and "json" in letter.reason.lower() for letter in older)
    # A reason is text to look for, not a pattern.
    assert await store.count_dead_letters(reason="%") == 0
    assert await store.count_dead_letters(reason="_") == 0


async def test_dead_letters_are_read_by_id_changed_and_removed(store: TalkStore) -> None:
    first, second, third = await _letters(store, ["a", "b", "c"])
    found = await store.dead_letters_by_id([third, 999_999, first])
    assert [letter.id for letter in found] == [third, first]  # in the order asked; none missing
    await store.update_dead_letter(
        second, reason="still not a talk", errors=[{"loc": "id", "msg": "Field required"}]
    )
    [changed] = await store.dead_letters_by_id([second])
    assert (changed.reason, changed.errors) == (
        "still not a talk",
        [{"loc": "id", "msg": "Field required"}],
    )
    assert changed.body == b"b"  # the body as received, untouched
    assert await store.remove_dead_letters([first, third, 999_999]) == 2
    assert [letter.id for letter in await store.dead_letters()] == [second]
    assert await store.remove_dead_letters([]) == 0
