"""Relay connections: the pagination arguments, pages of items with opaque keyset cursors
(encoded only when read), and the loader key of a parent's page of children."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Final, Generic, TypeVar

import strawberry

from gateway.storage import cursor
from schema.building import field
from schema.context import ChildPageKey, PageArgs

T = TypeVar("T")

DEFAULT_FIRST: Final = 20  # a connection's page size when neither `first` nor `last` is given
First = Annotated[
    int | None,
    strawberry.argument(
        description=(
            "Page size, 0 to 100, from the list's start or `after` "
            f"({DEFAULT_FIRST} when neither `first` nor `last` is given)."
        )
    ),
]
After = Annotated[
    str | None, strawberry.argument(description="Cursor of the item to start after (`endCursor`).")
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description=(
            "Page size, 0 to 100, back from the list's end or `before` (backward pagination; "
            "give `first` or `last`, not both)."
        )
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(
        description="Cursor of the item to end just before (`startCursor`), with `last`."
    ),
]


def child_page(
    parent_id: int,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> ChildPageKey:
    """The loader key of a page of a parent's children (`loaded_by`'s `keyed`)."""
    return ChildPageKey(parent_id, PageArgs(first, after, last, before))


@strawberry.type(description="Where a page of a connection begins and ends (Relay's PageInfo).")
class PageInfo:
    has_next_page: bool = field(
        "Whether items follow this page: more after it, or (a backward page, `last`/`before`)"
        " the items from `before` on."
    )
    has_previous_page: bool = field(
        "Whether items precede this page: more before it (a backward page), or (`first`/"
        "`after`) the items up to `after`."
    )
    start_cursor: str | None = field(
        "Cursor of the first item of this page; pass it as `before` (with `last`) to get the"
        " previous page."
    )
    end_cursor: str | None = field(
        "Cursor of the last item of this page; pass it as `after` to get the next page."
    )


@strawberry.type(description="One item of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = field("Opaque cursor of this item.")
    node: T = field("The item.")


class _EncodedOnRead:
    """A cursor field of an Edge or a PageInfo made from a store page's sort key
    (`connection_parts`): the cursor is encoded when the field is first read, then kept on
    the object as if __init__ had been given it. A page whose selection reads no cursor,
    as most do, so encodes none (each was ~1.5 us, a sixth of a 100-talk page's read).

    A non-data descriptor, set on the class once strawberry made it: an object built by
    __init__ holds its own value, which attribute lookup finds first, and plain-field
    execution (gateway/graphql/execution/) reads the field with getattr either way."""

    def __init__(self, name: str, key: str = "_key") -> None:
        self._name = name
        self._key = key

    def __get__(self, instance: object, owner: type | None = None) -> str | None:
        if instance is None:
            raise AttributeError(self._name)  # as for a dataclass field without a default
        values = instance.__dict__
        key: tuple[int, ...] | None = values[self._key]
        value = None if key is None else cursor.encode(values["_kind"], *key)
        values[self._name] = value
        return value


Edge.cursor = _EncodedOnRead("cursor")  # type: ignore[assignment]
PageInfo.start_cursor = _EncodedOnRead("start_cursor", "_start")  # type: ignore[assignment]
PageInfo.end_cursor = _EncodedOnRead("end_cursor")  # type: ignore[assignment]


def connection_parts(
    kind: str,
    keys: Sequence[tuple[int, ...]],
    nodes: Iterable[T],
    has_next: bool,
    has_previous: bool = False,
) -> tuple[list[Edge[T]], PageInfo]:
    """The edges of `nodes` and the page info of a store page (`gateway.storage.records.
    Page`: its cursors' `kind`, each item's sort key in `keys`), their cursors encoded
    only when read (`_EncodedOnRead`). Built without __init__, which would want them."""
    new = object.__new__
    edges: list[Edge[T]] = []
    for key, node in zip(keys, nodes, strict=True):
        edge = new(Edge)
        edge.__dict__ = {"node": node, "_kind": kind, "_key": key}
        edges.append(edge)
    info = new(PageInfo)
    info.__dict__ = {
        "has_next_page": has_next,
        "has_previous_page": has_previous,
        "_kind": kind,
        "_start": keys[0] if keys else None,
        "_key": keys[-1] if keys else None,
    }
    return edges, info


@strawberry.type(description="A page of items, Relay style, with opaque keyset cursors.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = field("The items of this page, in order.")
    page_info: PageInfo = field("Whether more items follow, and the cursor to get them.")
    count: strawberry.Private[Any]

    @strawberry.field(description="How many items the whole list holds, across all pages.")
    async def total_count(self) -> int:
        result: int = await self.count()
        return result
