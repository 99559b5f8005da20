"""Customers and agents on every backend, and the agent control's queue status and login tickets.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import BadUserInput
from gateway.storage import TalkStore, cursor
from gateway.storage.records import (
    PageRequest,
)
from tests.factories import Payload, talk
from tests.gateway.storage.support import (
    TALK,
    customer_ids,
    deliver,
    delivery,
)

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
