"""Plans shared by the requests of a document, across requests."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Final

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
)

from gateway.graphql.execution.records import _Completion, _Entry

_PLAN_CACHE_SIZE: Final = 256

# Plans, subplans and completers shared by the requests of a document (`_SharedPlans`).
_SHARED_KEPT: Final = 1024
# Only documents this short share plans: an entry holds its nodes, and so the document's
# whole text, beside the parse cache's own bounds (1,024 entries of 8 KiB at most).
_SHARED_TEXT: Final = 8192


class _SharedPlans:
    """What FastExecutionContext works out per selection, kept across requests.

    A plan depends on the field nodes selected (a parsed document is cached and handed out
    again, so the same text gives the same nodes), the parent type, the schema, the
    caller's scopes (granted fields and `_MASKED` ones), the kind of loaders in the context
    (`_shape` asks whether they can `peek`), and on the variables only through directives
    (@skip, @include, @defer, @stream) that decide which fields are collected. So plans are
    shared only for operations without a directive anywhere (fragments included), under a
    key made of all the rest. Making them again for every request was a fifth of the cost
    of a cold one-talk page. Each entry holds the field groups (and so the nodes) its key
    names by id, so no id is reused while the entry is kept; the least recently used go
    first.
    """

    def __init__(self) -> None:
        self.plans: OrderedDict[Hashable, tuple[object, list[_Entry] | None]] = OrderedDict()
        self.completers: OrderedDict[Hashable, tuple[list[_Entry], _Completion | None]] = (
            OrderedDict()
        )
        self._static: OrderedDict[int, tuple[OperationDefinitionNode, bool]] = OrderedDict()

    def get(self, table: OrderedDict[Hashable, Any], key: Hashable) -> Any:
        found = table.get(key)
        if found is not None:
            table.move_to_end(key)
        return found

    def put(self, table: OrderedDict[Hashable, Any], key: Hashable, value: Any) -> None:
        table[key] = value
        if len(table) > _SHARED_KEPT:
            table.popitem(last=False)

    def static(self, operation: OperationDefinitionNode, fragments: Mapping[str, Any]) -> bool:
        """Whether no directive appears in the operation's selections or its fragments
        (graphql-core's FragmentDetails, each holding its `definition`)."""
        known = self._static.get(id(operation))
        if known is not None and known[0] is operation:
            return known[1]
        nodes: list[Node] = [operation]
        nodes += [getattr(f, "definition", f) for f in fragments.values()]
        found = False
        while nodes and not found:
            node = nodes.pop()
            if isinstance(node, (FieldNode, InlineFragmentNode, FragmentSpreadNode)):
                found = bool(node.directives)
            selection_set = getattr(node, "selection_set", None)
            if selection_set is not None:
                nodes.extend(selection_set.selections)
        self._static[id(operation)] = (operation, not found)
        if len(self._static) > _SHARED_KEPT:
            self._static.popitem(last=False)
        return not found


_SHARED_PLANS: Final = _SharedPlans()
