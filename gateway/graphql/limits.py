"""Query limits: fields, depth, aliases and cost, checked before validation (the token limit
is the parser's, applied where every parse happens: gateway/graphql/parsing.py).

Cost estimates the work of a document, as GitHub's API does: every field that returns objects
costs 1 (scalar leaves are free, their price is in the object that holds them), and a list
field multiplies the cost of its subtree by how many items it may return: its `first` or
`last` argument (given, from a variable, or the resolvers' default page), or
`default_list_size` for lists without one. Fragments count wherever they are spread.
Introspection fields (`__schema`, `__type`, ...) are exempt from depth and cost (they are
switched off as a whole when introspection is); every alias counts, theirs and
`__typename`'s included.

Every measure is linear in the size of the document: a fragment is measured once and its
measures added (or multiplied) wherever it is spread, and numbers that grow by
multiplication stop at MEASURE_CAP.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.type.definition import GraphQLNamedType, GraphQLOutputType
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gateway.errors import QueryTooComplex
from gateway.graphql.widths import MEASURE_CAP, MergeWorkExceeded, too_wide, widest_kept
from schema.connections import DEFAULT_FIRST

TOKEN_LIMIT_MESSAGE = "Document contains more than"  # noqa: S105 - a parser message


@dataclass(frozen=True, slots=True)
class QueryLimits:
    depth: int = 12
    aliases: int = 30
    tokens: int = 3000
    cost: int = 10_000
    default_list_size: int = 10
    # Fields of the widest selection set, merged and expanded as execution does (_Widths).
    fields: int = 100


@dataclass(frozen=True, slots=True)
class Measures:
    depth: int
    aliases: int
    cost: int


def too_complex(reason: str, value: int, limit: int) -> GraphQLError:
    return GraphQLError(
        f"the query is too complex: its {reason} is {value}, over the limit of {limit}",
        extensions={"code": QueryTooComplex.code, "reason": reason, "value": value, "limit": limit},
    )


def is_token_limit_error(error: GraphQLError) -> bool:
    """graphql-core's parser aborts with this (syntax error) message past `max_tokens`."""
    return TOKEN_LIMIT_MESSAGE in error.message


def _unwrap(output: GraphQLOutputType) -> tuple[GraphQLNamedType, bool]:
    is_list = False
    current: Any = output
    while isinstance(current, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(current, GraphQLList)
        current = current.of_type
    return current, is_list


# A spread waiting for its fragment's measures: (fragment, parent type, paged, exempt).
_Request = tuple[SelectionSetNode, GraphQLNamedType | None, bool, bool]
_Result = tuple[int, int, int]  # depth, cost, aliases
# (None, a field's selection set) or (fragment name, its selection set)
_Step = Generator[tuple[str | None, _Request], _Result, _Result]


class _Walker:
    """Measures a selection set, each fragment once per (fragment, paged, exempt).

    A fragment's measures do not depend on where it is spread (its type condition is its
    parent type), only on whether it is spread under a paged field and inside introspection,
    so they are computed once and added wherever it is spread: the walk is linear in the
    size of the document, however the fragments fan out. Nested selection sets are walked
    by a loop over generators, not by recursion, so a long chain of fragments cannot
    exhaust Python's stack.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_list_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_list_size = default_list_size

    def run(self, node: SelectionSetNode, parent: GraphQLNamedType | None) -> _Result:
        """(depth, cost, aliases) of a root selection set."""
        memo: dict[tuple[str, bool, bool], _Result] = {}
        spreading: set[str] = set()  # fragments being measured: a spread of one is a cycle
        stack: list[tuple[tuple[str, bool, bool] | None, _Step]] = [
            (None, self.selection_set(node, parent, False, False))
        ]
        value: _Result | None = None
        while True:
            key, step = stack[-1]
            try:
                name, request = step.send(value) if value is not None else next(step)
            except StopIteration as stop:
                stack.pop()
                result: _Result = stop.value
                if key is None:
                    if not stack:
                        return result
                else:
                    spreading.discard(key[0])
                    memo[key] = result
                value = result
                continue
            selection_set, target, paged, exempt = request
            if name is None:
                stack.append((None, self.selection_set(selection_set, target, paged, exempt)))
                value = None
                continue
            fragment_key = (name, paged, exempt)
            known = memo.get(fragment_key)
            if known is not None:
                value = known
            elif name in spreading:
                value = (0, 0, 0)  # a cycle: validation reports it
            else:
                spreading.add(name)
                stack.append(
                    (fragment_key, self.selection_set(selection_set, target, paged, exempt))
                )
                value = None

    def selection_set(
        self,
        node: SelectionSetNode,
        parent: GraphQLNamedType | None,
        paged: bool,
        exempt: bool,
    ) -> _Step:
        """(depth, cost, aliases) of a selection set under `parent`; `paged` under a field
        with `first`, `exempt` inside introspection (only its aliases count). Yields the
        selection sets it needs measured: (None, a field's) or (a fragment's name, its)."""
        depth = cost = aliases = 0
        # Inline fragments are measured in place: (selections, parent) still to walk.
        pending: list[tuple[Iterator[Any], GraphQLNamedType | None]] = [
            (iter(node.selections), parent)
        ]
        while pending:
            selections, current = pending[-1]
            selection = next(selections, None)
            if selection is None:
                pending.pop()
                continue
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else current
                pending.append((iter(selection.selection_set.selections), target))
                continue
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None:
                    continue  # unknown: validation reports it
                target = self.schema.get_type(fragment.type_condition.name.value)
                found = yield name, (fragment.selection_set, target, paged, exempt)
                depth = max(depth, found[0])
                cost = min(cost + found[1], MEASURE_CAP)
                aliases = min(aliases + found[2], MEASURE_CAP)
                continue
            if not isinstance(selection, FieldNode):  # pragma: no cover - all there is
                continue
            if selection.alias is not None:
                aliases = min(aliases + 1, MEASURE_CAP)
            name = selection.name.value
            if exempt or name.startswith("__"):
                # Introspection is exempt from depth and cost; its aliases still count.
                if selection.selection_set is not None:
                    found = yield None, (selection.selection_set, None, False, True)
                    aliases = min(aliases + found[2], MEASURE_CAP)
                continue
            definition = (
                current.fields.get(name) if isinstance(current, GraphQLObjectType) else None
            )
            field_type, is_list = _unwrap(definition.type) if definition else (None, False)
            multiplier = 1
            has_first = definition is not None and "first" in definition.args
            if has_first:
                assert definition is not None
                multiplier = self._page_size(selection)
            elif is_list and not paged:
                # A list right under a paged field (a connection's `edges`) holds those same
                # items.
                multiplier = self.default_list_size
            if selection.selection_set is None:
                depth = max(depth, 1)
                continue
            found = yield None, (selection.selection_set, field_type, has_first, False)
            depth = max(depth, found[0] + 1)
            cost = min(cost + 1 + multiplier * found[1], MEASURE_CAP)
            aliases = min(aliases + found[2], MEASURE_CAP)
        return depth, cost, aliases

    def _page_size(self, node: FieldNode) -> int:
        """How many items a paged field may return: its `first` or `last`, a literal or a
        variable; the resolvers' default page when neither is given (or given null)."""
        given: list[int] = []
        for argument in node.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                given.append(max(int(value.value), 0))
            elif isinstance(value, VariableNode):
                number = self.variables.get(value.name.value)
                if isinstance(number, int) and not isinstance(number, bool):
                    given.append(max(number, 0))
        return max(given) if given else DEFAULT_FIRST


def measure(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    *,
    default_list_size: int = 10,
) -> Measures:
    walker = _Walker(schema, fragments, variables, default_list_size)
    root = {
        "query": schema.query_type,
        "mutation": schema.mutation_type,
        "subscription": schema.subscription_type,
    }[operation.operation.value]
    depth, cost, aliases = walker.run(operation.selection_set, root)
    return Measures(depth=depth, aliases=aliases, cost=cost)


class LimitQueries(SchemaExtension):
    """Refuses documents over the limits with QUERY_TOO_COMPLEX, before they are validated.

    Validation costs up to quadratic time in a selection set's width, so the widths are
    checked first, over the whole document (validation checks all of it); then the depth,
    aliases and cost of the operation that would run. The refusal is the operation's
    pre-execution error, on every transport, and nothing after it runs.
    """

    def __init__(
        self,
        limits: QueryLimits,
        on_reject: Callable[[str, ExecutionContext], None] | None = None,
    ) -> None:
        self.limits = limits
        self.on_reject = on_reject

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None:
            refusal = self.refusal(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
            )
            if refusal is not None:
                reason, error = refusal
                if self.on_reject is not None:
                    self.on_reject(reason, context)
                context.pre_execution_errors = [error]
        yield

    def refusal(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> tuple[str, GraphQLError] | None:
        """The reason and error refusing `document`'s operation, or None when every limit
        lets it through (the refusal is not reported: `on_validate` does that)."""
        limits = self.limits
        try:
            widest = widest_kept(document, limits.fields)
        except MergeWorkExceeded:
            return "fields", too_wide()
        if widest > limits.fields:
            return "fields", too_complex("fields", widest, limits.fields)
        operation = _operation(document.definitions, operation_name)
        if operation is None:
            return None
        found = _measured(
            schema,
            document,
            operation,
            {**_variable_defaults(operation), **(variables or {})},
            limits.default_list_size,
        )
        for reason, value, limit in (
            ("depth", found.depth, limits.depth),
            ("aliases", found.aliases, limits.aliases),
            ("cost", found.cost, limits.cost),
        ):
            if value > limit:
                return reason, too_complex(reason, value, limit)
        return None


# Measures of the documents last seen (parsed documents are cached, so the same objects come
# back): (schema, document, operation, int variables, list size) -> (schema, the document
# weakly (the parse cache bounds how many live), measures).
_MEASURED: dict[
    tuple[int, int, int, tuple[tuple[str, int], ...], int], tuple[Any, Any, Measures]
] = {}
_MEASURED_KEPT = 1024


def _measured(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    default_list_size: int,
) -> Measures:
    """`measure`, remembered: only integer variables (`first`) can change the measures."""
    numbers = tuple(sorted((k, v) for k, v in variables.items() if isinstance(v, int)))
    key = (id(schema), id(document), id(operation), numbers, default_list_size)
    known = _MEASURED.get(key)
    # The entry holds the schema, and the document weakly: the id of a document gone may be
    # another's now, and its dead reference tells them apart (the operation is the
    # document's).
    if known is not None and known[0] is schema and known[1]() is document:
        return known[2]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found = measure(schema, operation, fragments, variables, default_list_size=default_list_size)
    if len(_MEASURED) >= _MEASURED_KEPT:
        _MEASURED.clear()
    _MEASURED[key] = (schema, weakref.ref(document), found)
    return found


def _variable_defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    """`$n: Int = 100` gives n = 100 when the request sends no `n`."""
    defaults: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        if isinstance(definition.default_value, IntValueNode):
            defaults[definition.variable.name.value] = int(definition.default_value.value)
    return defaults


def _operation(definitions: Any, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)
