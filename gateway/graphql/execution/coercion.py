"""Leaf coercions: each field type's output coercion, fast for the usual scalars, remembered."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.pyutils import Undefined

from gateway.graphql.execution.records import _MAX_INT, _MIN_INT, _MISS, Coerce, _inert, _Miss
from schema.contracts import STRINGS_UNCHANGED

# Coercions by field type, made once for all requests (the schema's types live as long as it).
_COERCIONS: dict[tuple[GraphQLOutputType, Callable[[Any], bool]], Coerce | None] = {}
_COERCIONS_KEPT: Final = 4096


def _cached_coercion(
    field_type: GraphQLOutputType, is_awaitable: Callable[[Any], bool]
) -> Coerce | None:
    key = (field_type, is_awaitable)
    try:
        return _COERCIONS[key]
    except KeyError:
        pass
    coerce = _coercion(field_type, is_awaitable)
    if len(_COERCIONS) >= _COERCIONS_KEPT:  # schemas made over and over (tests)
        _COERCIONS.clear()
    _COERCIONS[key] = coerce
    return coerce


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
        if not _inert(value, is_awaitable):
            return _MISS
        coerced = coerce_output_value(value)
        if coerced is None or coerced is Undefined:
            return _MISS
        return coerced

    # graphql-core's own scalars return these values unchanged.
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
    # DateTime's coercion returns a string as it is too (`schema.contracts`).
    if leaf_type is GraphQLString or coerce_output_value in STRINGS_UNCHANGED:

        def text(value: Any) -> Any:
            return value if type(value) is str else generic(value)

        return text
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
