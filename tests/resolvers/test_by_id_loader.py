"""ByIdLoader: batches by event-loop turn, one load per id per request, failures per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.storage.documents import Doc
from resolvers.loaders import ByIdLoader


class Fetches:
    """A store method that records each call's ids and answers from `docs`."""

    def __init__(self, docs: dict[int, Doc], fail: BaseException | None = None) -> None:
        self.docs = docs
        self.fail = fail
        self.calls: list[list[int]] = []

    async def __call__(self, ids: Sequence[int]) -> dict[int, Doc]:
        self.calls.append(list(ids))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return {i: self.docs[i] for i in ids if i in self.docs}


def names(doc: Doc) -> str:
    return str(doc["name"])


DOCS: dict[int, Doc] = {1: {"name": "one"}, 2: {"name": "two"}, 3: {"name": "three"}}


async def test_loads_of_one_turn_are_one_fetch_each_id_once() -> None:
    fetch = Fetches(DOCS)
    loader = ByIdLoader(fetch, names)

    values = await asyncio.gather(*(loader.load(i) for i in [2, 1, 2, 9, 1]))

    assert values == ["two", "one", "two", None, "one"]
    assert fetch.calls == [[2, 1, 9]]


async def test_a_known_id_is_not_fetched_again_and_a_new_one_makes_a_new_batch() -> None:
    fetch = Fetches(DOCS)
    loader = ByIdLoader(fetch, names)
    assert await loader.load(1) == "one"

    assert list(await asyncio.gather(loader.load(1), loader.load(3))) == ["one", "three"]
    assert fetch.calls == [[1], [3]]


async def test_a_failed_fetch_fails_every_load_of_its_batch_only() -> None:
    fetch = Fetches(DOCS, fail=RuntimeError("store down"))
    loader = ByIdLoader(fetch, names)
    first = [loader.load(1), loader.load(2)]

    results = await asyncio.gather(*first, return_exceptions=True)

    assert [str(r) for r in results] == ["store down", "store down"]
    fetch.fail = None
    assert await loader.load(3) == "three"  # a later batch is fetched as usual
    with pytest.raises(RuntimeError):  # a failed id stays failed for this request
        await loader.load(1)


async def test_one_waiter_cancelled_leaves_the_others_their_value() -> None:
    fetch = Fetches(DOCS)
    loader = ByIdLoader(fetch, names)

    async def wait(key: int) -> str | None:
        return await loader.load(key)

    gone = asyncio.ensure_future(wait(1))
    stays = asyncio.ensure_future(wait(2))
    await asyncio.sleep(0)
    gone.cancel()

    assert await stays == "two"
    assert gone.cancelled()
    assert await loader.load(1) == "one"  # loaded again: its first load was cancelled


async def test_primed_documents_are_loaded_without_a_fetch() -> None:
    fetch = Fetches(DOCS)
    loader = ByIdLoader(fetch, names)
    loader.prime({1: {"name": "one, read with its page"}, 2: {"name": "two, read with it"}})

    values = await asyncio.gather(loader.load(1), loader.load(2), loader.load(3))

    assert list(values) == ["one, read with its page", "two, read with it", "three"]
    assert fetch.calls == [[3]]  # only the one not primed


async def test_peek_tells_only_what_is_loaded_already() -> None:
    fetch = Fetches(DOCS)
    loader = ByIdLoader(fetch, names)
    loader.prime({1: {"name": "one, read with its page"}})
    missing = object()
    waiting = loader.load(2)

    assert loader.peek(1, missing) == "one, read with its page"
    assert loader.peek(2, missing) is missing  # its batch has not run yet
    assert loader.peek(3, missing) is missing  # never asked for
    assert await waiting == "two"
    assert loader.peek(2, missing) == "two"
    assert fetch.calls == [[2]]


async def test_a_primed_object_is_the_one_its_loads_give() -> None:
    loader = ByIdLoader(Fetches(DOCS), lambda doc: dict(doc))
    loader.prime({1: {"name": "primed"}})
    loader.prime({1: {"name": "primed again"}})  # the first one stays

    first = await loader.load(1)
    assert first == {"name": "primed"}
    assert await loader.load(1) is first
    assert loader.peek(1, None) is first


async def test_priming_keeps_a_load_already_made() -> None:
    fetch = Fetches(DOCS)
    loader = ByIdLoader(fetch, names)
    pending = loader.load(1)
    loader.prime({1: {"name": "other"}})

    assert loader.load(1) is pending
    assert await pending == "one"
    assert fetch.calls == [[1]]


class Builds:
    """A builder that makes many objects in one call too (as schema.types' do), and records
    the calls of each kind."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, doc: Doc) -> str:
        self.calls.append("one")
        return names(doc)

    def many(self, docs: Sequence[Doc]) -> list[str]:
        self.calls.append("many")
        return [names(doc) for doc in docs]


async def test_a_page_s_documents_are_primed_in_one_call_of_the_builder() -> None:
    fetch, build = Fetches(DOCS), Builds()
    loader = ByIdLoader(fetch, build)
    loader.prime({2: {"name": "two, read with its page"}, 1: {"name": "one, read with it"}})

    assert build.calls == ["many"]
    values = await asyncio.gather(loader.load(1), loader.load(2), loader.load(3))
    assert list(values) == ["one, read with it", "two, read with its page", "three"]
    assert fetch.calls == [[3]]


async def test_priming_after_loads_keeps_them_and_builds_only_the_others() -> None:
    fetch, build = Fetches(DOCS), Builds()
    loader = ByIdLoader(fetch, build)
    pending = loader.load(1)
    loader.prime({1: {"name": "other"}, 2: {"name": "two, read with its page"}})

    assert build.calls == ["one"]  # for 2 only
    assert loader.load(1) is pending
    assert await pending == "one"
    assert await loader.load(2) == "two, read with its page"
