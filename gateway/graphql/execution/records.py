"""The records the fast path plans and completes with: how each field of a plan is
completed (its kind), a plan's entries, a loaded field's slot, a deferred load."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from functools import partial
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path

if TYPE_CHECKING:
    from gateway.graphql.execution.codegen import _Leaves
from schema.loaded import LoadedBy
from schema.permissions import HasScope

_MIN_INT: Final = -(2**31)
_MAX_INT: Final = 2**31 - 1


class _Miss:
    """What a coercion returns when graphql-core must complete the value itself."""


class _Failed:
    """A deferred load that raised."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_MISS: Final = _Miss()
# Path(prev, key, typename) without the Python-level __new__ a NamedTuple has.
_path: Final[Callable[[tuple[Any, Any, Any]], Path]] = partial(tuple.__new__, Path)
# Types whose values are neither exceptions nor awaitables: these, and the plain classes
# found so (`_inert`). Whether `await` takes a value is decided by its type.
_INERT_TYPES: Final[set[type]] = {str, int, float, bool, type(None), dict, list, datetime, date}
_INERT_TYPES_KEPT: Final = 1024


def _inert(value: Any, is_awaitable: Callable[[Any], bool]) -> bool:
    """Whether `value` is neither an exception nor awaitable, as graphql-core checks it; the
    answer for a plain class (no custom attribute access) is remembered for its type."""
    kind = type(value)
    if kind in _INERT_TYPES:
        return True
    if isinstance(value, Exception) or is_awaitable(value):
        return False
    if (
        vars(object)["__getattribute__"] is getattr(kind, "__getattribute__", None)
        and getattr(kind, "__getattr__", None) is None
        and not issubclass(kind, GeneratorType)
        and all("__class__" not in vars(base) for base in kind.__mro__[:-1])
        and len(_INERT_TYPES) < _INERT_TYPES_KEPT
    ):
        _INERT_TYPES.add(kind)
    return True


Coerce = Callable[[Any], Any]

# How a field of a plan is completed.
_SLOW: Final = 0  # graphql-core's execute_field
_LEAF: Final = 1  # a scalar, an enum or a list of them: `coerce(getattr(source, attr))`
_TYPENAME: Final = 2  # `__typename`: the parent type's name
_OBJECT: Final = 3  # an object without is_type_of: its subfields, through execute_fields
_LIST: Final = 4  # a list of such objects: each item's subfields, loads deferred to the list
_LOAD: Final = 5  # a nullable loaded field (schema.loaded) of such an object type
_LEAVES: Final = 6  # consecutive _LEAF fields, their attributes read in one call (_Leaves)
_MASKED: Final = 7  # a nullable field the caller's scopes do not grant: null and FORBIDDEN
_LOAD_EACH: Final = 8  # any other loaded field: loaded per object, not deferred (_EachLoad)


class _Entry(NamedTuple):
    """One field of a plan: how it is completed (`kind`) and what that needs."""

    response_name: str
    kind: int
    attr: str
    field_type: GraphQLOutputType
    # The coercion of a _LEAF.
    coerce: Coerce | None
    # The object's type, the list's items' or the loaded value's.
    object_type: GraphQLObjectType | None
    field_group: FieldDetailsList
    # The declaration of a loaded field, the fields of a _LEAVES entry, or the refused
    # scope check of a _MASKED one.
    spec: LoadedBy | _Leaves | HasScope | _EachLoad | None


class _EachLoad:
    """A _LOAD_EACH field: its declaration, its definition and the type it is a field of."""

    __slots__ = ("field_def", "parent_type", "spec")

    def __init__(
        self, spec: LoadedBy, field_def: GraphQLField, parent_type: GraphQLObjectType
    ) -> None:
        self.spec = spec
        self.field_def = field_def
        self.parent_type = parent_type


# `complete(source, loaders, into, pending)` appends an object's completed subfields to
# `into` and returns how many values it completed, or -1, having appended nothing, when it
# cannot be sure of graphql-core's result; then the object goes the plan's way
# (_execute_plan). A loaded field whose object is not in its loader yet is null in the
# result for now, and its load goes into `pending` as (slot, results, loader's future): the
# list defers it (`FastExecutionContext._defer_slots`) as the plan's way would.
_Complete = Callable[[Any, Any, list[Any], list[tuple[int, dict[str, Any], Any]]], int]


class _LoadSlot(NamedTuple):
    """A loaded field of a completer's plan, found by the number its shape gives it: what
    its deferred load needs that the shape (shared by documents) does not hold."""

    # (response name, parent type name) of each object from the list's item to the field's
    within: tuple[tuple[str, str], ...]
    response_name: str
    parent_name: str
    field_type: GraphQLOutputType
    object_type: GraphQLObjectType
    field_group: FieldDetailsList


# A plan's generated completion and its loaded fields' slots, by number.
class _Completion(NamedTuple):
    """A plan's generated completion and its loaded fields' slots, by number."""

    complete: _Complete
    slots: tuple[_LoadSlot, ...]


class _LoadedKey(NamedTuple):
    """Of a loaded object in a shape: its loader's name, the attribute holding its key, and
    the number of its slot."""

    loader: str
    key: str
    slot: int


class _ShapeField(NamedTuple):
    """A field of a shape."""

    kind: int
    response_name: str
    attr: str
    field_type: GraphQLOutputType | None
    coerce: Coerce | None
    # The shape of the object it holds (_OBJECT, _LOAD).
    nested: _Shape | None


class _Shape(NamedTuple):
    """What `_completer` generates a function from: a plan with its object type's name and,
    for a loaded object, where its load comes from."""

    type_name: str
    fields: tuple[_ShapeField, ...]
    loaded: _LoadedKey | None


# Nested plans deeper than this are not generated (a runaway selection stays graphql-core's).
_COMPLETER_DEPTH: Final = 8


class _Deferred(NamedTuple):
    """A deferred load of a loaded field, settled once its list is complete."""

    # The results it goes into, under `response_name`.
    results: dict[str, Any]
    response_name: str
    # The loader's future.
    loading: Awaitable[Any]
    field_type: GraphQLOutputType
    # The loaded object's type.
    object_type: GraphQLObjectType
    field_group: FieldDetailsList
    path: Path
    position_context: Any


# A _Deferred made without the Python-level __new__ a NamedTuple has (one per load).
_deferred: Final[Callable[[tuple[Any, ...]], _Deferred]] = partial(tuple.__new__, _Deferred)
