"""Builders for the store tests: deliveries made from payloads, and a talk's whole stored state."""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.ingest.ingestor import delivery_key
from gateway.ingest.validation import validate_talks
from gateway.storage import TalkStore
from gateway.storage.documents import Doc
from gateway.storage.records import (
    Delivery,
    DeliveryOutcome,
    Page,
    PageRequest,
    StoreOrder,
    TalkQuery,
)
from tests.factories import DecodedTalk, Payload, decoded, snapshot


def delivery(
    data: Payload | list[Payload], *, key: str | None = None, source: str = "test"
) -> Delivery:
    """A delivery of this body as the webhook would store it (keyed by its hash unless `key`)."""
    body = orjson.dumps(data)
    digest = hashlib.sha256(body).hexdigest()
    return Delivery(
        key=delivery_key(digest, key),
        source=source,
        body=body,
        body_sha256=digest,
        talks=validate_talks(data),
    )


def normalized(payload: Payload) -> DecodedTalk:
    """The talk of `payload` as validation leaves it, its documents decoded."""
    [talk] = validate_talks(payload)
    return decoded(talk)


def tagged_snapshot(
    talk_id: int,
    message_ids: list[int],
    tag: str,
    *,
    finished: bool = False,
    event_ids: tuple[int, ...] = (),
    **fields: Any,
) -> Payload:
    """A snapshot whose messages, customer and agent all carry `tag`, to see which version won."""
    payload = snapshot(talk_id, message_ids, finished=finished, **fields)
    for history in payload["talk_histories"]:
        history["message"] = f"message {history['id']} from {tag}"
        history["user"]["name"] = f"PipeBot {tag}"
    payload["customer"]["name"] = f"CLIENTE {tag}"
    payload["talk_events"] = [
        {**payload["talk_events"][0], "id": event_id, "talk_id": talk_id} for event_id in event_ids
    ]
    return payload


@dataclass(frozen=True, slots=True)
class TalkState:
    """Everything the store answers about one talk."""

    doc: Doc
    messages: dict[int, Doc]
    events: dict[int, Doc]
    customer: Doc | None
    agents: dict[int, Doc]


async def talk_state(store: TalkStore, talk_id: int) -> TalkState:
    docs = await store.talks_by_id([talk_id])
    doc = docs[talk_id]
    pages = await store.message_pages(talk_ids=[talk_id], page=PageRequest(first=1000))
    messages = {m["id"]: m for _, m in pages[talk_id].items}
    events = {e["id"]: e for e in (await store.events_by_talk([talk_id]))[talk_id]}
    customers = await store.customers_by_id([doc["customer_id"]])
    user_ids = {m["user_id"] for m in messages.values() if m.get("user_id") is not None}
    agents = await store.agents_by_id(sorted(user_ids))
    return TalkState(
        doc=doc,
        messages=messages,
        events=events,
        customer=customers.get(doc["customer_id"]),
        agents=agents,
    )


def scattered_snapshots(talk_id: int, count: int, *, seed: int, base: int = 0) -> list[Payload]:
    """`count` snapshots of one talk, each holding its own subset of the messages.

    Each has a latest message of its own, so no two tie on rank and the merge has exactly
    one right answer whatever the arrival order; snapshot 17 is the finished one."""
    rng = random.Random(seed)
    snapshots = []
    for n in range(count):
        shared = rng.sample(range(base + 1, base + 41), rng.randint(1, 12))
        snapshots.append(
            tagged_snapshot(
                talk_id,
                [*sorted(shared), base + 100 + n],
                f"s{n}",
                finished=n == 17,
                queue_id=n,
                event_ids=(base + 500 + n % 7,),
            )
        )
    return snapshots


TALK = 114700
CUSTOMER = 144527


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


async def customer_ids(store: TalkStore, search: str | None) -> list[int]:
    page = await store.customer_page(search=search, page=PageRequest(first=100))
    return [doc["id"] for _, doc in page.items]
