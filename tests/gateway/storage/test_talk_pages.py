"""How a store's rows become pages of talks (records.TalkPages), and SQLite's integer rows
(`_integers`), checked against a plain model on generated rows."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.storage import cursor
from gateway.storage.records import PageRequest, TalkPages
from gateway.storage.sqlite import _integers

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# (group, created_us, talk id, version, customer id): talk ids unique.
ROWS = st.lists(
    st.tuples(st.integers(0, 4), INT64, st.integers(1, 10**6), INT64, st.integers(1, 9)),
    max_size=40,
    unique_by=lambda row: row[2],
)


def _model(
    rows: list[tuple[int, ...]], first: int, grouped: bool
) -> dict[int | None, tuple[list[int], bool]]:
    """Each group's talk ids (its first `first` rows) and whether more rows followed."""
    pages: dict[int | None, tuple[list[int], bool]] = {}
    for row in rows:
        grp = row[0] if grouped else None
        ids, more = pages.get(grp, ([], False))
        if len(ids) == first:
            more = True
        else:
            ids = [*ids, row[2]]
        pages[grp] = (ids, more)
    return pages


@given(
    rows=ROWS,
    first=st.integers(0, 6),
    grouped=st.booleans(),
    size=st.sampled_from([1, 2]),
    with_customers=st.booleans(),
    backward=st.booleans(),
    from_cursor=st.booleans(),
)
def test_pages_hold_each_groups_first_rows_their_keys_and_customers(
    rows: list[tuple[int, ...]],
    first: int,
    grouped: bool,
    size: int,
    with_customers: bool,
    backward: bool,
    from_cursor: bool,
) -> None:
    if grouped:
        rows = sorted(rows, key=lambda row: row[0])  # the statement orders by group first
    group_ids = [0, 2, 7] if grouped else None
    mark = "c" if from_cursor else None  # the store decoded it; the pages only see it is there
    # A backward page's rows come in the opposite order; the page turns them back.
    request = PageRequest(last=first, before=mark) if backward else PageRequest(first, mark)
    pages = TalkPages(request, "talk:X", size, group_ids)
    pages.place(rows)
    model = _model(rows, first, grouped)
    placed = {row[2]: row for grp in model for row in rows if row[2] in model[grp][0]}
    assert sorted(pages.stamps) == sorted((row[2], row[3]) for row in placed.values())
    talks = {talk_id: {"id": talk_id, "customer_id": row[4]} for talk_id, row in placed.items()}
    customers = {c: {"id": c} for c in range(1, 9, 2)} if with_customers else {}
    filled = pages.filled(talks, customers)
    expected_groups = set(model) | (set(group_ids) if group_ids is not None else {None})
    assert set(filled) == expected_groups
    for grp, page in filled.items():
        ids, more = model.get(grp, ([], False))
        if backward:
            ids = ids[::-1]
        assert [doc["id"] for doc in page.docs] == ids
        assert (page.has_previous, page.has_next) == (
            (more, from_cursor) if backward else (from_cursor, more)
        )
        keys = [(placed[i][1], i) if size == 2 else (i,) for i in ids]
        assert page.keys == keys
        assert page.end_cursor == (cursor.encode("talk:X", *keys[-1]) if keys else None)
        named = {talks[i]["customer_id"] for i in ids}
        assert page.customers == {c: customers[c] for c in named if c in customers}


@given(rows=st.lists(st.tuples(INT64, INT64, INT64), max_size=30))
def test_integer_rows_come_back_exactly(rows: list[tuple[int, int, int]]) -> None:
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE t (a INTEGER NOT NULL, b INTEGER NOT NULL, c INTEGER NOT NULL)")
    c.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    read: list[Any] = _integers(
        c, "SELECT a, b, c FROM t WHERE a >= ?", [-(2**63)], ("a", "b", "c")
    )
    assert sorted(map(tuple, read)) == sorted(rows)
    c.close()
