"""Talk filters on every backend.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.storage import TalkStore
from gateway.storage.records import (
    TalkQuery,
)
from tests.factories import message, talk
from tests.gateway.storage.support import (
    delivery,
    described,
    talk_ids,
)

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
