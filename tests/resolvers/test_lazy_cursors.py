"""Cursors encoded only when read: a store page keeps each item's sort key, and a
connection's Edge.cursor, PageInfo.startCursor and PageInfo.endCursor are encoded from it
when selected."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.storage import cursor
from gateway.storage.records import Page
from resolvers.pagination import connection
from schema.connections import Edge, PageInfo, connection_parts

KINDS = st.sampled_from(["talk:CREATED_AT_DESC", "talk:ID_ASC", "message", "customer", "agent"])
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
KEYS = st.integers(min_value=1, max_value=2).flatmap(
    lambda size: st.lists(st.tuples(*[INT64] * size), max_size=12)
)


async def _no_count() -> int:
    return 0


def _page(
    kind: str, keys: list[tuple[int, ...]], has_next: bool = False, has_previous: bool = False
) -> Page:
    page = Page(kind, has_next=has_next, has_previous=has_previous)
    for number, key in enumerate(keys):
        page.add(key, {"id": number})
    return page


@given(kind=KINDS, keys=KEYS, has_next=st.booleans(), has_previous=st.booleans())
def test_the_cursors_read_are_those_encoded_from_the_sort_keys(
    kind: str, keys: list[tuple[int, ...]], has_next: bool, has_previous: bool
) -> None:
    page = _page(kind, keys, has_next, has_previous)
    made = connection(page, lambda doc: doc["id"], _no_count)
    encoded = [cursor.encode(kind, *key) for key in keys]
    assert [edge.cursor for edge in made.edges] == encoded
    assert [edge.node for edge in made.edges] == list(range(len(keys)))
    assert made.page_info.start_cursor == (encoded[0] if encoded else None)
    assert made.page_info.end_cursor == (encoded[-1] if encoded else None)
    assert made.page_info.has_next_page is has_next
    assert made.page_info.has_previous_page is has_previous
    assert page.items == list(zip(encoded, page.docs, strict=True))
    assert page.start_cursor == made.page_info.start_cursor
    assert page.end_cursor == made.page_info.end_cursor
    for index, key in enumerate(keys):
        assert cursor.decode(kind, page.cursor(index), len(key)) == key


def test_no_cursor_is_encoded_until_one_is_read_and_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []
    real = cursor.encode

    def counted(kind: str, *key: int) -> str:
        calls.append((kind, *key))
        return real(kind, *key)

    monkeypatch.setattr(cursor, "encode", counted)
    edges, info = connection_parts("talk:ID_ASC", [(1,), (2,), (3,)], ["a", "b", "c"], True)
    assert calls == []
    assert [edges[1].cursor, edges[1].cursor] == [real("talk:ID_ASC", 2)] * 2
    assert info.end_cursor == info.end_cursor == real("talk:ID_ASC", 3)
    assert info.start_cursor == info.start_cursor == real("talk:ID_ASC", 1)
    assert calls == [("talk:ID_ASC", 2), ("talk:ID_ASC", 3), ("talk:ID_ASC", 1)]


def test_an_empty_page_has_no_end_cursor_and_no_edges() -> None:
    edges, info = connection_parts("agent", [], list[int](), False)
    assert edges == []
    assert info.start_cursor is None
    assert info.end_cursor is None
    assert info.has_next_page is False


def test_objects_made_by_init_keep_the_cursor_they_were_given() -> None:
    assert Edge(cursor="given", node=1).cursor == "given"
    given_info = PageInfo(
        has_next_page=True, has_previous_page=True, start_cursor="start", end_cursor="end"
    )
    assert (given_info.start_cursor, given_info.end_cursor) == ("start", "end")
    empty = PageInfo(
        has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None
    )
    assert (empty.start_cursor, empty.end_cursor) == (None, None)
    lazy, info = connection_parts("agent", [(7,)], [1], False)
    assert lazy == [Edge(cursor=cursor.encode("agent", 7), node=1)]
    assert info == PageInfo(
        has_next_page=False,
        has_previous_page=False,
        start_cursor=cursor.encode("agent", 7),
        end_cursor=cursor.encode("agent", 7),
    )


def test_the_class_has_no_cursor_value_of_its_own() -> None:
    with pytest.raises(AttributeError):
        _ = Edge.cursor
    with pytest.raises(AttributeError):
        _ = PageInfo.end_cursor
