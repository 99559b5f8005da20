"""Turning `first`/`after` into page requests, store pages into connections; and what a
connection's selection asks for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from strawberry import ID
from strawberry.types.nodes import SelectedField, Selection

from gateway.errors import BadUserInput
from gateway.storage.records import Doc, Page, PageRequest
from schema.types import Connection, Edge, PageInfo

T = TypeVar("T")

MAX_FIRST = 100


def page_request(first: int, after: str | None) -> PageRequest:
    if first < 0 or first > MAX_FIRST:
        raise BadUserInput(
            f"first must be between 0 and {MAX_FIRST}, got {first}", argument="first"
        )
    return PageRequest(first, after)


def connection(
    page: Page, node: Callable[[Doc], T], count: Callable[[], Awaitable[int]]
) -> Connection[T]:
    return Connection(
        edges=[Edge(cursor=c, node=node(doc)) for c, doc in page.items],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        count=count,
    )


def parse_id(value: ID | str, argument: str) -> int:
    """An integer id from a GraphQL ID argument."""
    try:
        number = int(str(value))
    except ValueError:
        raise BadUserInput(f"{argument} must be a numeric id", argument=argument) from None
    if not -(2**63) <= number < 2**63:
        raise BadUserInput(f"{argument} is out of range", argument=argument)
    return number


def selects(selections: Sequence[Selection], *path: str) -> bool:
    """Whether `path` (field names, each under the one before) is selected below the fields
    of `selections` (`info.selected_fields`), through fragments of any kind. Directives are
    not read: a field that @skip leaves out still counts, which only costs a read."""
    level = [child for selection in selections for child in selection.selections]
    for name in path:
        found: list[Selection] = []
        while level:
            selection = level.pop()
            if isinstance(selection, SelectedField):
                if selection.name == name:
                    found.append(selection)
            else:  # an inline fragment or a fragment spread: its own selections count
                level.extend(selection.selections)
        if not found:
            return False
        level = [child for selection in found for child in selection.selections]
    return True
