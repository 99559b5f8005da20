"""Decoded documents are reused only while a row's stored text is the same.

The cache on its own (gateway/storage/docs.py), then on each backend through the store's
reads: an unchanged row comes back as the very same dict, a changed one with its new
content, and the objects built from documents follow them (schema/types.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from gateway.storage import TalkStore
from gateway.storage.docs import DecodedDocs
from gateway.storage.records import PageRequest, TalkOrder, TalkQuery
from schema.types import customer_from_doc, talk_from_doc
from tests.backends import BACKENDS, opened_store
from tests.factories import snapshot
from tests.gateway.store_helpers import delivery

TALK = 114800


def text(**fields: object) -> str:
    return orjson.dumps(fields).decode()


def test_the_same_text_gives_the_same_document() -> None:
    docs = DecodedDocs(1 << 20)
    first = docs.decode("talks", 1, text(id=1, status="open"))
    again = docs.decode("talks", 1, text(id=1, status="open"))
    assert again is first
    assert (docs.hits, docs.misses) == (1, 1)


def test_changed_text_is_decoded_again_and_replaces_the_old_document() -> None:
    docs = DecodedDocs(1 << 20)
    old = docs.decode("talks", 1, text(id=1, status="open"))
    new = docs.decode("talks", 1, text(id=1, status="closed"))
    assert new == {"id": 1, "status": "closed"}
    assert old == {"id": 1, "status": "open"}  # a caller holding the old one keeps it
    assert docs.decode("talks", 1, text(id=1, status="closed")) is new


def test_rows_of_other_tables_do_not_share_entries() -> None:
    docs = DecodedDocs(1 << 20)
    talk = docs.decode("talks", 7, text(id=7))
    customer = docs.decode("customers", 7, text(id=7))
    assert customer is not talk
    assert docs.decode("talks", 7, text(id=7)) is talk


def test_the_least_recently_used_go_first_when_over_budget() -> None:
    one = text(id=1, pad="x" * 80)
    size = len(one) * 4  # what an entry counts for
    docs = DecodedDocs(size * 2)
    a = docs.decode("talks", 1, one)
    b = docs.decode("talks", 2, text(id=2, pad="y" * 80))
    assert docs.decode("talks", 1, one) is a  # 1 is now the most recently used
    docs.decode("talks", 3, text(id=3, pad="z" * 80))  # over budget: 2 goes
    assert docs.decode("talks", 1, one) is a
    assert docs.decode("talks", 2, text(id=2, pad="y" * 80)) is not b


def test_a_budget_of_zero_keeps_nothing_and_a_huge_row_is_not_kept() -> None:
    off = DecodedDocs(0)
    assert off.decode("talks", 1, text(id=1)) is not off.decode("talks", 1, text(id=1))
    small = DecodedDocs(64)
    huge = text(id=1, pad="x" * 200)
    assert small.decode("talks", 1, huge) is not small.decode("talks", 1, huge)
    assert small.decode("talks", 1, huge) == orjson.loads(huge)


def test_reader_threads_get_correct_documents() -> None:
    docs = DecodedDocs(4096)  # small: entries come and go while threads read

    def read(worker: int) -> bool:
        ok = True
        for i in range(2_000):
            row = (i * 7 + worker) % 40
            version = i % 3
            got = docs.decode("talks", row, text(id=row, version=version))
            ok = ok and got == {"id": row, "version": version}
        return ok

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(read, range(4)))


# -- through the stores -------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TalkStore]:
    async with opened_store(request.param, tmp_path, request) as opened:
        yield opened


async def page_of_talks(store: TalkStore) -> list[dict[str, object]]:
    pages = await store.talk_pages(
        query=TalkQuery(), page=PageRequest(first=10), order=TalkOrder.ID_ASC
    )
    return [doc for _, doc in pages[None].items]


async def test_an_unchanged_row_is_read_as_the_same_document(store: TalkStore) -> None:
    await store.ingest([delivery(snapshot(TALK, [1, 2]))])
    await store.ingest([delivery(snapshot(TALK + 1, [3]))])
    first = await page_of_talks(store)
    again = await page_of_talks(store)
    assert [a is b for a, b in zip(first, again, strict=True)] == [True, True]
    customer_id = int(str(first[0]["customer_id"]))
    customers = [(await store.customers_by_id([customer_id]))[customer_id] for _ in range(2)]
    assert customers[0] is customers[1]
    # and so is the object built from it, while a changed document gets a new one
    assert talk_from_doc(first[0]) is talk_from_doc(again[0])
    assert customer_from_doc(customers[0]) is customer_from_doc(customers[1])


async def test_a_row_changed_by_a_delivery_is_read_with_its_new_content(
    store: TalkStore,
) -> None:
    await store.ingest([delivery(snapshot(TALK, [1, 2]))])
    before = (await page_of_talks(store))[0]
    messages_before = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=10))
    await store.ingest([delivery(snapshot(TALK, [1, 2, 3], finished=True))])
    after = (await page_of_talks(store))[0]
    assert after is not before
    assert before["finished_at"] is None
    assert after["finished_at"] is not None
    assert talk_from_doc(after) is not talk_from_doc(before)
    assert talk_from_doc(after).finished_at is not None
    messages = await store.message_pages(talk_ids=[TALK], page=PageRequest(first=10))
    assert [m["id"] for _, m in messages_before[TALK].items] == [1, 2]
    assert [m["id"] for _, m in messages[TALK].items] == [1, 2, 3]
