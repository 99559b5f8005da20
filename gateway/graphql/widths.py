"""The widest selection set of a document, merged and expanded as execution does: the
`fields` limit (gateway/graphql/limits.py), which bounds validation's quadratic work, and is
checked before it."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from gateway.errors import QueryTooComplex

# Costs, alias counts and widths grow by multiplication (a list under a list, a fragment spread five
# times in a fragment spread five times): past this they are reported as this, which is over
# any limit a setting can give.
MEASURE_CAP = 2**53

# What checking the widths may cost at most (fields and fragment entries merged): documents
# the token limit lets through stay far below it unless built to make the check itself slow.
MERGE_WORK_LIMIT = 200_000

# A selection set's fields with inline fragments and fragments spread in it expanded:
# how many there are (duplicates included, each spread counted), and, by response name, the
# selection sets of the object fields under that name with how many times each occurs.
_Groups = dict[str, dict[int, tuple[SelectionSetNode, int]]]


@dataclass(slots=True)
class _Flat:
    count: int
    groups: _Groups


class MergeWorkExceeded(Exception):
    """Checking how the selection sets merge would take more than MERGE_WORK_LIMIT."""


class _Widths:
    """The widest selection set of a whole document, as execution merges it.

    Execution merges the fields of one response name into one selection set (their
    sub-selections together), expands inline fragments and fragments in place, and
    validation compares every pair of same-named fields of such a merged set: the fields of
    the widest one bound that work. Every operation and fragment of the document counts
    (validation checks them all), types are not looked at (inline fragments count as if
    they all applied) and `__typename` and introspection fields count like any other.
    Each fragment is expanded once and added wherever it is spread.
    """

    def __init__(self, document: DocumentNode, limit: int) -> None:
        self.limit = limit
        self.work = 0
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.flats: dict[int, _Flat] = {}  # by id() of the selection set, fragments' included
        self.widest = 0

    def _spend(self, amount: int) -> None:
        self.work += amount
        if self.work > MERGE_WORK_LIMIT:
            raise MergeWorkExceeded

    def measure(self, document: DocumentNode) -> int:
        """The fields of the widest merged selection set; stops at the first over `limit`."""
        self._flatten_fragments()
        if self.widest > self.limit:
            return self.widest
        seen: set[frozenset[tuple[int, int]]] = set()
        pending: list[dict[int, tuple[SelectionSetNode, int]]] = [
            {id(d.selection_set): (d.selection_set, 1)}
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
        ]
        while pending:
            merged = pending.pop()
            key = frozenset((k, times) for k, (_, times) in merged.items())
            if key in seen:
                continue
            seen.add(key)
            self._spend(len(merged))
            count = 0
            children: dict[str, dict[int, tuple[SelectionSetNode, int]]] = {}
            for node, times in merged.values():
                flat = self._flat(node)
                count = min(count + times * flat.count, MEASURE_CAP)
                if count > self.limit:
                    return count
                for name, entries in flat.groups.items():
                    child = children.setdefault(name, {})
                    self._spend(len(entries))
                    for entry_id, (sub, sub_times) in entries.items():
                        before = child.get(entry_id)
                        total = sub_times * times + (before[1] if before else 0)
                        child[entry_id] = (sub, min(total, MEASURE_CAP))
            self.widest = max(self.widest, count)
            pending.extend(children.values())
        return self.widest

    def _flatten_fragments(self) -> None:
        """Every fragment's flat fields, those it spreads first (a loop, not recursion)."""
        done: set[str] = set()
        for start in self.fragments:
            if start in done:
                continue
            # (name, its spreads still to flatten first); a spread of a fragment on the path
            # is a cycle, flattened as nothing (validation reports it).
            path: list[tuple[str, Iterator[str]]] = [(start, iter(self._spreads(start)))]
            on_path = {start}
            while path:
                name, spreads = path[-1]
                spread = next(spreads, None)
                if spread is None:
                    path.pop()
                    on_path.discard(name)
                    done.add(name)
                    flat = self._flat(self.fragments[name].selection_set)
                    self.widest = max(self.widest, flat.count)
                    if flat.count > self.limit:
                        return
                elif spread not in done and spread not in on_path and spread in self.fragments:
                    path.append((spread, iter(self._spreads(spread))))
                    on_path.add(spread)

    def _spreads(self, name: str) -> list[str]:
        found: list[str] = []
        pending = [self.fragments[name].selection_set]
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FragmentSpreadNode):
                    found.append(selection.name.value)
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
        self._spend(len(found))
        return found

    def _flat(self, node: SelectionSetNode) -> _Flat:
        known = self.flats.get(id(node))
        if known is not None:
            return known
        flat = _Flat(0, {})
        pending: list[tuple[SelectionSetNode, int]] = [(node, 1)]
        while pending and flat.count <= self.limit:
            current, times = pending.pop()
            self._spend(len(current.selections))
            for selection in current.selections:
                if isinstance(selection, FieldNode):
                    flat.count = min(flat.count + times, MEASURE_CAP)
                    if selection.selection_set is not None:
                        name = (selection.alias or selection.name).value
                        entries = flat.groups.setdefault(name, {})
                        sub = selection.selection_set
                        before = entries.get(id(sub))
                        entries[id(sub)] = (sub, times + (before[1] if before else 0))
                elif isinstance(selection, InlineFragmentNode):
                    pending.append((selection.selection_set, times))
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    spread = self.flats.get(id(fragment.selection_set)) if fragment else None
                    if spread is None:
                        continue  # unknown, or part of a cycle
                    flat.count = min(flat.count + times * spread.count, MEASURE_CAP)
                    for name, entries in spread.groups.items():
                        mine = flat.groups.setdefault(name, {})
                        self._spend(len(entries))
                        for entry_id, (sub, sub_times) in entries.items():
                            before = mine.get(entry_id)
                            total = times * sub_times + (before[1] if before else 0)
                            mine[entry_id] = (sub, min(total, MEASURE_CAP))
        self.flats[id(node)] = flat
        return flat


def widest_selection(document: DocumentNode, limit: int) -> int:
    """The fields of the document's widest selection set, once merged and expanded as
    execution does (see _Widths); the first found over `limit` when there is one. Raises
    MergeWorkExceeded when finding out would cost more than MERGE_WORK_LIMIT."""
    return _Widths(document, limit).measure(document)


def too_wide() -> GraphQLError:
    """The refusal of a document whose selection sets merge into more than can be checked
    (MERGE_WORK_LIMIT), or that graphql-core gave up validating (its own budget)."""
    return GraphQLError(
        "the query is too complex: its selection sets merge too many fields to be checked",
        extensions={"code": QueryTooComplex.code, "reason": "fields"},
    )


# The widest selection set of the documents last seen (parsed documents are cached, so the
# same objects come back): (document id, limit) -> (the document, weakly: the parse cache
# decides how long documents live; widest, None when too costly to find).
_WIDEST_KEPT = 1024
_WIDEST: dict[tuple[int, int], tuple[weakref.ref[DocumentNode], int | None]] = {}


def widest_kept(document: DocumentNode, limit: int) -> int:
    """`widest_selection`, remembered per document; raises MergeWorkExceeded as it does."""
    key = (id(document), limit)
    known = _WIDEST.get(key)
    if known is not None and known[0]() is document:
        widest = known[1]
    else:
        try:
            widest = widest_selection(document, limit)
        except MergeWorkExceeded:
            widest = None
        if len(_WIDEST) >= _WIDEST_KEPT:
            _WIDEST.clear()
        _WIDEST[key] = (weakref.ref(document), widest)
    if widest is None:
        raise MergeWorkExceeded
    return widest
