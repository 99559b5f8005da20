"""Query limits: depth, aliases, tokens and cost, checked before anything executes.

Cost estimates the work of a document, as GitHub's API does: every field that returns objects
costs 1 (scalar leaves are free, their price is in the object that holds them), and a list
field multiplies the cost of its subtree by how many items it may return: its `first`
argument (given, from a variable, or its default), or `default_list_size` for lists without
one. Fragments count wherever they are spread. Introspection fields (`__schema`, `__type`,
...) are exempt: they are switched off as a whole when introspection is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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

TOKEN_LIMIT_MESSAGE = "Document contains more than"  # noqa: S105 - a parser message


@dataclass(frozen=True, slots=True)
class QueryLimits:
    depth: int = 12
    aliases: int = 30
    tokens: int = 3000
    cost: int = 10_000
    default_list_size: int = 10


@dataclass(frozen=True, slots=True)
class Measures:
    depth: int
    aliases: int
    cost: int


def too_complex(reason: str, value: int, limit: int) -> GraphQLError:
    return GraphQLError(
        f"the query is too complex: its {reason} is {value}, over the limit of {limit}",
        extensions={"code": "QUERY_TOO_COMPLEX", "reason": reason, "value": value, "limit": limit},
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


class _Walker:
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
        self.aliases = 0

    def selection_set(
        self,
        node: SelectionSetNode,
        parent: GraphQLNamedType | None,
        spreads: tuple[str, ...],
        paged: bool = False,
    ) -> tuple[int, int]:
        """(depth, cost) of a selection set under `parent`; `paged` under a field with `first`."""
        depth = cost = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                field_depth, field_cost = self.field(selection, parent, spreads, paged)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                field_depth, field_cost = self.selection_set(
                    selection.selection_set, target, spreads, paged
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spreads:
                    continue  # unknown or cyclic: validation reports it
                target = self.schema.get_type(fragment.type_condition.name.value)
                field_depth, field_cost = self.selection_set(
                    fragment.selection_set, target, (*spreads, name), paged
                )
            else:  # pragma: no cover - the three kinds above are all there is
                continue
            depth = max(depth, field_depth)
            cost += field_cost
        return depth, cost

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        spreads: tuple[str, ...],
        paged: bool,
    ) -> tuple[int, int]:
        if node.name.value.startswith("__"):
            return 0, 0
        if node.alias is not None:
            self.aliases += 1
        definition = (
            parent.fields.get(node.name.value) if isinstance(parent, GraphQLObjectType) else None
        )
        field_type, is_list = _unwrap(definition.type) if definition else (None, False)
        multiplier = 1
        has_first = definition is not None and "first" in definition.args
        if has_first:
            assert definition is not None
            multiplier = self._first(node, definition.args["first"].default_value)
        elif is_list and not paged:
            # A list right under a paged field (a connection's `edges`) holds those same items.
            multiplier = self.default_list_size
        if node.selection_set is None:
            return 1, 0
        depth, cost = self.selection_set(node.selection_set, field_type, spreads, has_first)
        return depth + 1, 1 + multiplier * cost

    def _first(self, node: FieldNode, default: object) -> int:
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(int(value.value), 0)
            if isinstance(value, VariableNode):
                given = self.variables.get(value.name.value, default)
                return given if isinstance(given, int) and given > 0 else 0
        return default if isinstance(default, int) else self.default_list_size


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
    depth, cost = walker.selection_set(operation.selection_set, root, ())
    return Measures(depth=depth, aliases=walker.aliases, cost=cost)


class LimitQueries(SchemaExtension):
    """Rejects documents over the limits with QUERY_TOO_COMPLEX, before execution."""

    def __init__(
        self,
        limits: QueryLimits,
        on_reject: Callable[[str, ExecutionContext], None] | None = None,
    ) -> None:
        self.limits = limits
        self.on_reject = on_reject

    def on_operation(self) -> Iterator[None]:
        # graphql-core stops parsing past this many tokens.
        self.execution_context.parse_options["max_tokens"] = self.limits.tokens
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            operation = _operation(document.definitions, context.operation_name)
            if operation is not None:
                found = _measured(
                    context.schema._schema,
                    document,
                    operation,
                    {**_variable_defaults(operation), **(context.variables or {})},
                    self.limits.default_list_size,
                )
                for reason, value, limit in (
                    ("depth", found.depth, self.limits.depth),
                    ("aliases", found.aliases, self.limits.aliases),
                    ("cost", found.cost, self.limits.cost),
                ):
                    if value > limit:
                        if self.on_reject is not None:
                            self.on_reject(reason, context)
                        raise too_complex(reason, value, limit)
        yield


# Measures of the documents last seen (parsed documents are cached, so the same objects come
# back): (schema, document, operation, int variables, list size) -> (schema, document,
# measures).
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
    # The entry holds the schema and the document (and through it the operation), so their
    # ids stay theirs while it is kept.
    if known is not None and known[0] is schema and known[1] is document:
        return known[2]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found = measure(schema, operation, fragments, variables, default_list_size=default_list_size)
    if len(_MEASURED) >= _MEASURED_KEPT:
        _MEASURED.clear()
    _MEASURED[key] = (schema, document, found)
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
