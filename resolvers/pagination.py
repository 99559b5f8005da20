"""Turning `first`/`after` and `last`/`before` into page requests, store pages into
connections; and what a connection's selection asks for."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionNode,
)
from strawberry import ID, Info

from gateway.errors import BadUserInput
from gateway.storage.documents import Doc
from gateway.storage.records import Page, PageRequest
from schema.connections import DEFAULT_FIRST, Connection, connection_parts

T = TypeVar("T")

MAX_FIRST = 100


def page_request(
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> PageRequest:
    """The page a connection's arguments ask for: `first` (20 when neither is given) after
    `after`, or `last` before `before`. The two directions do not mix (Relay's algorithm
    allows it, and no client needs it): BAD_USER_INPUT, naming the argument."""
    if last is None:
        if before is not None:
            raise BadUserInput("before goes with last; with first, use after", argument="before")
        size = DEFAULT_FIRST if first is None else first
        return PageRequest(_size(size, "first"), after)
    if first is not None:
        raise BadUserInput("give first or last, not both", argument="last")
    if after is not None:
        raise BadUserInput("after goes with first; with last, use before", argument="after")
    return PageRequest(last=_size(last, "last"), before=before)


def _size(size: int, argument: str) -> int:
    if size < 0 or size > MAX_FIRST:
        raise BadUserInput(
            f"{argument} must be between 0 and {MAX_FIRST}, got {size}", argument=argument
        )
    return size


def connection(
    page: Page, node: Callable[[Doc], T], count: Callable[[], Awaitable[int]]
) -> Connection[T]:
    """The connection of a store page, `node` making each item from its document (all at
    once when it is a `schema.building.OncePerDocument`)."""
    many = getattr(node, "many", None)
    nodes = map(node, page.docs) if many is None else many(page.docs)
    edges, page_info = connection_parts(
        page.kind, page.keys, nodes, page.has_next, page.has_previous
    )
    return Connection(edges=edges, page_info=page_info, count=count)


def parse_id(value: ID | str, argument: str) -> int:
    """An integer id from a GraphQL ID argument."""
    try:
        number = int(str(value))
    except ValueError:
        raise BadUserInput(f"{argument} must be a numeric id", argument=argument) from None
    if not -(2**63) <= number < 2**63:
        raise BadUserInput(f"{argument} is out of range", argument=argument)
    return number


# What `selects` found, by the ids of the field nodes and the path; each entry holds its
# nodes, so that no id is reused while it is kept.
_SELECTED: dict[tuple[object, ...], tuple[list[FieldNode], bool]] = {}
_SELECTED_KEPT: Final = 1024


def selects(info: Info[Any, Any], *path: str) -> bool:
    """Whether `path` (field names, each under the one before) is selected below the field
    `info` resolves, through fragments of any kind. Directives are not read: a field that
    @skip leaves out still counts, which only costs a read.

    Read off graphql-core's nodes (strawberry's Info shows them only as `_raw_info`):
    `info.selected_fields` builds strawberry's copy of the whole selection first, which
    was a twentieth of a cold page's cost. The answer depends on the nodes alone (and the
    fragments of their document), and a parsed document is handed out again for the same
    text: it is worked out once for each field's nodes."""
    raw = info._raw_info
    nodes = raw.field_nodes
    key = (*map(id, nodes), *path)
    known = _SELECTED.get(key)
    if known is not None and all(map(operator.is_, known[0], nodes)):
        return known[1]
    found = _selects(raw, path)
    if len(_SELECTED) >= _SELECTED_KEPT:
        _SELECTED.clear()
    _SELECTED[key] = (list(nodes), found)
    return found


def _selects(raw: GraphQLResolveInfo[Any], path: tuple[str, ...]) -> bool:
    level: list[SelectionNode] = [
        child
        for node in raw.field_nodes
        if node.selection_set is not None
        for child in node.selection_set.selections
    ]
    for name in path:
        found: list[FieldNode] = []
        while level:
            selection = level.pop()
            if isinstance(selection, FieldNode):
                if selection.name.value == name:
                    found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                level.extend(selection.selection_set.selections)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = raw.fragments.get(selection.name.value)
                # graphql-core 3.3 hands out FragmentDetails, earlier the definition.
                definition = getattr(fragment, "definition", fragment)
                if definition is not None:
                    level.extend(definition.selection_set.selections)
        if not found:
            return False
        level = [
            child
            for field in found
            if field.selection_set is not None
            for child in field.selection_set.selections
        ]
    return True
