"""Group commit: webhook bodies arriving together share one store transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.ingestor import Body, BodyRejected, Ingestor
from gateway.storage import StoreUnavailable, TalkStore
from gateway.storage.records import Delivery, DeliveryOutcome
from tests.factories import talk


class GatedStore:
    """A store whose first transaction waits for `release`; it records every transaction."""

    def __init__(self, store: TalkStore, fail: Exception | None = None) -> None:
        self.store = store
        self.fail = fail
        self.transactions: list[list[str]] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def ingest(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        self.transactions.append([d.key for d in deliveries])
        if len(self.transactions) == 1:
            self.entered.set()
            await self.release.wait()
        elif self.fail is not None:
            raise self.fail
        return await self.store.ingest(deliveries)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def body(talk_id: int, key: str | None = None) -> Body:
    return Body(orjson.dumps(talk(talk_id)), "webhook", key)


async def while_one_commits(
    gated: GatedStore, ingestor: Ingestor, bodies: list[Body]
) -> list[DeliveryOutcome | BaseException]:
    """Send `bodies` at once while a first delivery's transaction is in progress."""
    first = asyncio.create_task(ingestor.ingest(body(1)))
    await gated.entered.wait()
    rest = [asyncio.create_task(ingestor.ingest(b)) for b in bodies]
    await asyncio.sleep(0.05)  # every one validated and waiting
    gated.release.set()
    await first
    return await asyncio.gather(*rest, return_exceptions=True)


async def test_bodies_arriving_during_a_commit_share_the_next_transaction(
    store: TalkStore,
) -> None:
    gated = GatedStore(store)
    ingestor = Ingestor(gated, DEFAULT_ZONE)
    outcomes = await while_one_commits(gated, ingestor, [body(i) for i in (2, 3, 4)])
    assert [len(t) for t in gated.transactions] == [1, 3]
    assert [o.talk_ids for o in outcomes if isinstance(o, DeliveryOutcome)] == [[2], [3], [4]]
    assert sorted(await store.talks_by_id([1, 2, 3, 4])) == [1, 2, 3, 4]


async def test_each_body_of_a_shared_transaction_gets_its_own_outcome(store: TalkStore) -> None:
    gated = GatedStore(store)
    ingestor = Ingestor(gated, DEFAULT_ZONE)
    bad = Body(b'{"id": "not a number"}', "webhook")
    outcomes = await while_one_commits(
        gated, ingestor, [body(2, "k2"), bad, body(3, "k2"), body(1)]
    )
    fresh, rejected, same_key, same_body = outcomes
    assert isinstance(fresh, DeliveryOutcome)
    assert not fresh.duplicate
    assert isinstance(rejected, BodyRejected)
    assert rejected.status == 422
    assert isinstance(same_key, DeliveryOutcome)
    assert same_key.duplicate
    assert isinstance(same_body, DeliveryOutcome)
    assert same_body.duplicate
    assert [len(t) for t in gated.transactions] == [1, 3]
    assert [d.id for d in await store.dead_letters()] == [rejected.dead_letter_id]
    assert sorted(await store.talks_by_id([1, 2, 3])) == [1, 2]


async def test_a_failed_shared_transaction_fails_every_body_in_it(store: TalkStore) -> None:
    gated = GatedStore(store, fail=StoreUnavailable("gone"))
    ingestor = Ingestor(gated, DEFAULT_ZONE)
    outcomes = await while_one_commits(gated, ingestor, [body(i) for i in (2, 3, 4)])
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert [len(t) for t in gated.transactions] == [1, 3]
    assert sorted(await store.talks_by_id([1, 2, 3, 4])) == [1]


async def test_a_body_that_breaks_a_shared_transaction_fails_alone(store: TalkStore) -> None:
    class OneBreaks(GatedStore):
        async def ingest(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
            if len(self.transactions) >= 1 and any(d.key == "id:poison" for d in deliveries):
                self.transactions.append([d.key for d in deliveries])
                raise RuntimeError("a bug this body sets off")
            return await super().ingest(deliveries)

    gated = OneBreaks(store)
    ingestor = Ingestor(gated, DEFAULT_ZONE)
    outcomes = await while_one_commits(gated, ingestor, [body(2), body(3, "poison"), body(4)])
    first, poisoned, last = outcomes
    assert isinstance(first, DeliveryOutcome)
    assert first.talk_ids == [2]
    # Refused, not raised: the body is kept as a dead letter (never a 500 with nothing kept).
    assert isinstance(poisoned, BodyRejected)
    assert (poisoned.status, poisoned.reason) == (422, "the body could not be stored")
    assert poisoned.errors == [{"loc": "", "msg": "RuntimeError"}]
    [letter] = await store.dead_letters()
    assert letter.id == poisoned.dead_letter_id
    assert letter.body == body(3, "poison").raw
    assert isinstance(last, DeliveryOutcome)
    assert last.talk_ids == [4]
    assert [len(t) for t in gated.transactions] == [1, 3, 1, 1, 1]
    assert sorted(await store.talks_by_id([1, 2, 3, 4])) == [1, 2, 4]


@pytest.mark.parametrize("count", [1, 20])
async def test_concurrent_bodies_are_all_stored(store: TalkStore, count: int) -> None:
    ingestor = Ingestor(store, DEFAULT_ZONE)
    outcomes = await asyncio.gather(*(ingestor.ingest(body(i)) for i in range(1, count + 1)))
    assert [o.talk_ids for o in outcomes] == [[i] for i in range(1, count + 1)]
    assert len(await store.talks_by_id(range(1, count + 1))) == count
