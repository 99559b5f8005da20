"""A faster execution of plain fields, with the same results as graphql-core's.

A plain field is a strawberry field that only reads an attribute of its source object: no
resolver, no field extension (so no permission check), no arguments. graphql-core spends
most of a large answer on such fields, building a resolve info, a path and four nested
calls for each value. FastExecutionContext reads them straight off the object and coerces
them with the field type's own coercion, in graphql-core's order of keys. Whenever it cannot
be sure of the same result (a null for a non-null field, a value the coercion refuses, an
awaitable, middleware), it hands the field to graphql-core, which produces its usual error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Final

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

__all__ = ["FastExecutionContext"]

_MIN_INT: Final = -(2**31)
_MAX_INT: Final = 2**31 - 1


class _Miss:
    """What a coercion returns when graphql-core must complete the value itself."""


_MISS: Final = _Miss()
# Values that are neither exceptions nor awaitables.
_BUILTIN_VALUES: Final = frozenset({str, int, float, bool})

Coerce = Callable[[Any], Any]

# How a field of a plan is completed.
_SLOW: Final = 0  # graphql-core's execute_field
_LEAF: Final = 1  # a scalar, an enum or a list of them: `coerce(getattr(source, attr))`
_TYPENAME: Final = 2  # `__typename`: the parent type's name
_OBJECT: Final = 3  # an object without is_type_of: its subfields, through execute_fields

# response name, kind, attribute, field type, coercion (leaves), object type, field group
_Entry = tuple[
    str, int, str, GraphQLOutputType, Coerce | None, GraphQLObjectType | None, FieldDetailsList
]
_PLAN_CACHE_SIZE: Final = 256


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, completing plain fields without graphql-core's
    per-field machinery; every other field runs exactly as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # Middleware wraps every resolver, plain ones included: then nothing is plain.
        self.fast = manager is None or not manager.middlewares
        # Values completed by the fast path (tests check that it keeps being used).
        self.fast_values = 0
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, list[_Entry]]]
        self._plans = {}

    def build_per_event_executor(self, payload: Any) -> FastExecutionContext:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, FastExecutionContext)
        # graphql-core's copy shares this executor's memos, keyed by the identity of each
        # event's own field lists: every event of a long-lived subscription would add
        # entries never read again (without bound, for graphql-core's own memo).
        executor._relevant_sub_fields = {}
        executor._plans = {}
        return executor

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if path is None or not self.fast:
            # Root fields all have resolvers; subscriptions run them once per event.
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan(parent_type, grouped_field_set)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        fast_values = 0
        try:
            for response_name, kind, attr, field_type, coerce, object_type, field_group in plan:
                if kind == _LEAF:
                    assert coerce is not None
                    try:
                        value = coerce(getattr(source_value, attr))
                    except Exception:  # graphql-core reports it
                        value = _MISS
                    if value is not _MISS:
                        results[response_name] = value
                        fast_values += 1
                        continue
                elif kind == _TYPENAME:
                    results[response_name] = parent_type.name
                    fast_values += 1
                    continue
                elif kind == _OBJECT:
                    assert object_type is not None
                    result = self._complete_object(
                        field_type,
                        object_type,
                        source_value,
                        attr,
                        field_group,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is not _MISS:
                        results[response_name] = result
                        fast_values += 1
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_group,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        finally:
            self.fast_values += fast_values

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            # As graphql-core's execute_fields does: one awaited alone, more gathered.
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _complete_object(
        self,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        source_value: Any,
        attr: str,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A plain field holding an object, completed as graphql-core's complete_value would;
        _MISS, before any work, when graphql-core must complete it."""
        try:
            value = getattr(source_value, attr)
        except Exception:  # graphql-core reports it
            return _MISS
        if value is None or value is Undefined:
            return _MISS if return_type is not object_type else None
        if isinstance(value, Exception) or self.is_awaitable(value):
            return _MISS
        try:
            completed = self.collect_and_execute_subfields(
                object_type, field_group, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        if self.is_awaitable(completed):
            return self._await_completed(completed, return_type, field_group, path)
        return completed

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_group: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> list[_Entry]:
        """How to complete each field of `fields` on `parent_type`, made once per request for
        each selection (collect_subfields hands out the same grouped field set each time)."""
        key = (parent_type, id(fields))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        plan = [
            _entry(self, parent_type, response_name, field_group)
            for response_name, field_group in fields.items()
        ]
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        # The grouped field set stays referenced, so its id is not reused meanwhile.
        self._plans[key] = (fields, plan)
        return plan


def _entry(
    context: FastExecutionContext,
    parent_type: GraphQLObjectType,
    response_name: str,
    field_group: FieldDetailsList,
) -> _Entry:
    node = field_group[0].node
    name = node.name.value
    field_def = context.schema.get_field(parent_type, name)
    if field_def is None:
        return (response_name, _SLOW, name, GraphQLString, None, None, field_group)
    slow: _Entry = (response_name, _SLOW, name, field_def.type, None, None, field_group)
    if name == "__typename":
        return (response_name, _TYPENAME, name, field_def.type, None, None, field_group)
    if node.arguments or not _is_plain(field_def):
        return slow
    strawberry_field = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    attr = strawberry_field.python_name
    field_type = field_def.type
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLObjectType):
        if field_type.is_type_of is not None:
            return slow
        return (response_name, _OBJECT, attr, field_def.type, None, field_type, field_group)
    coerce = _coercion(field_def.type, context.is_awaitable)
    if coerce is None:
        return slow
    return (response_name, _LEAF, attr, field_def.type, coerce, None, field_group)


def _is_plain(field_def: GraphQLField) -> bool:
    """Whether the field only reads an attribute with getattr, as strawberry's basic-field
    resolver does (no resolver, no extension, no arguments). An exception handler would only
    see what getattr raises, and then graphql-core runs the field itself."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return (
        isinstance(strawberry_field, StrawberryField)
        and type(strawberry_field).get_result is StrawberryField.get_result
        and getattr(field_def.resolve, "_is_default", False) is True
        and strawberry_field.base_resolver is None
        and not strawberry_field.extensions
        and not strawberry_field.is_subscription
        and strawberry_field.default_resolver is getattr
        and not field_def.args
        and field_def.subscribe is None
    )


def _coercion(field_type: GraphQLOutputType, is_awaitable: Callable[[Any], bool]) -> Coerce | None:
    """The completion of a leaf type (possibly non-null, possibly a list) as graphql-core's
    complete_value would give it, returning _MISS where graphql-core must decide; None for
    types it does not handle."""
    nullable = not isinstance(field_type, GraphQLNonNull)
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    # A null for a non-null type is graphql-core's to report.
    null = None if nullable else _MISS
    if isinstance(field_type, GraphQLScalarType | GraphQLEnumType):
        return _leaf(field_type, is_awaitable, null)
    if not isinstance(field_type, GraphQLList) or isinstance(field_type.of_type, GraphQLList):
        return None
    item = _coercion(field_type.of_type, is_awaitable)
    if item is None:
        return None
    item_coerce = item

    def list_of(value: Any) -> Any:
        if value is None or value is Undefined:
            return null
        if type(value) is not list:
            return _MISS
        completed = [item_coerce(element) for element in value]
        return _MISS if any(one is _MISS for one in completed) else completed

    return list_of


def _leaf(
    leaf_type: GraphQLScalarType | GraphQLEnumType,
    is_awaitable: Callable[[Any], bool],
    null: _Miss | None,
) -> Coerce:
    coerce_output_value = leaf_type.coerce_output_value
    assert coerce_output_value is not None

    def generic(value: Any) -> Any:
        if value is None or value is Undefined:
            return null
        if type(value) not in _BUILTIN_VALUES and (
            isinstance(value, Exception) or is_awaitable(value)
        ):
            return _MISS
        coerced = coerce_output_value(value)
        if coerced is None or coerced is Undefined:
            return _MISS
        return coerced

    # graphql-core's own scalars return these values unchanged.
    if leaf_type is GraphQLString:

        def text(value: Any) -> Any:
            return value if type(value) is str else generic(value)

        return text
    if leaf_type is GraphQLID:

        def identifier(value: Any) -> Any:
            kind = type(value)
            if kind is str:
                return value
            return str(value) if kind is int else generic(value)

        return identifier
    if leaf_type is GraphQLBoolean:

        def boolean(value: Any) -> Any:
            return value if type(value) is bool else generic(value)

        return boolean
    if leaf_type is GraphQLInt:

        def integer(value: Any) -> Any:
            if type(value) is int and _MIN_INT <= value <= _MAX_INT:
                return value
            return generic(value)

        return integer
    members = getattr(leaf_type, "wrapped_cls", None)
    if isinstance(members, type) and issubclass(members, Enum) and members.__eq__ is object.__eq__:
        # A member of a plain Enum (equal only to itself) always gets the same name.
        names: dict[Any, Any] = {}

        def member(value: Any) -> Any:
            if type(value) is not members:
                return generic(value)
            name = names.get(value)
            if name is None:
                name = generic(value)
                if name is not _MISS:
                    names[value] = name
            return name

        return member
    return generic
