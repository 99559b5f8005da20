"""A faster execution of plain and loaded fields, with the same results as graphql-core's.

A plain field is a strawberry field that only reads an attribute of its source object: no
resolver, no field extension (so no permission check), no arguments. graphql-core spends
most of a large answer on such fields, building a resolve info, a path and four nested
calls for each value. FastExecutionContext reads them straight off the object and coerces
them with the field type's own coercion, in graphql-core's order of keys; a run of such
fields is completed by a function generated for it (`_leaves_filler`), which reads each
attribute directly and writes the usual scalars' coercion inline. Lists of objects held by
plain fields (a connection's edges) are completed item by item the same way.

The items of a list of objects whose plan holds only leaves, `__typename`, plain objects and
loaded fields are each completed by one function generated for the plan's shape
(`_completer`): a page's edge, its talk and the talk's customer (read with the page, so
already in its loader) in one call, without a plan run per object. A loaded object not in
its loader yet is left as a load, deferred to the list as the plan's way would (W3's
messages and their users: 17.34 to 16.25 M instructions per request). An item it cannot
be sure of (an unusual value, an exception) goes the plan's way, as do the list's items
after it. Objects shared between requests (`schema.contracts.frozen_snapshots`: those
built once per stored document) keep the values of their leading plain fields per
selection, so a page that overlaps the last one completes only what it has not seen (and
its loads).

A field whose only extension is a scope check (`schema.permissions.needs`) is decided once
per request from the caller's scopes: granted, it is completed as a field without the check
would be; refused (and nullable, without arguments), it is `_MASKED`: null, with the check's
FORBIDDEN error at its path, its resolver never run and its value never read. What a caller
may see is so decided per request, never per object: the values kept on shared objects are
those of unguarded fields only, or of the granted selection's own key (`_MEMO_KEYS`).

A field with an async resolver (the root fields among them) runs through strawberry's
wrapper: its Info, its arguments converted, the scope checks awaited one by one, a coroutine
for each layer. When the caller's scopes grant the field's checks, graphql-core is handed
the resolver's direct call instead (`_DirectCalls`, through graphql-core's own hook for
wrapping resolvers): the same Info and conversion (an input with its own `from_input`
hook, such as TalkFilter, built by the hook directly), one coroutine (W1 and W2 pages, 100
talks each: ~0.1 M instructions less per request, of 6.5 M and 4.4 M). A caller the
checks refuse, and every field of a schema with exception handlers, keep the wrapper.

A loaded field is one declared with `schema.loaded.loaded_by` (`Talk.customer`): its value
is one `load` from the request's loaders. graphql-core would run its resolver once per item
of a list, each with a resolve info, a coroutine and a task, and gather a hundred awaitables
for a single batch. Here the loads of a whole list are made while its items are completed
(`_deferred`), awaited together once the list is done, and their objects completed in turn,
level by level: one awaitable per list instead of several per item. Only nullable loaded
fields are deferred, so an error there makes that field null and never reaches the items.
Other loaded fields (non-null, lists, or keyed by their arguments: `Talk.histories(first,
after)`, `Talk.events`) are loaded per object (`_LOAD_EACH`): the resolver's own load, made
while the object is completed, awaited and completed as graphql-core does a resolver's
awaitable, so errors go up as they would; what it spares is the resolve info, strawberry's
resolver wrappers and argument conversion (the arguments are coerced once per request),
and the resolver's coroutine: W3 (20 talks with histories and events) went from 22.05 to
18.14 M instructions per request (bench.instructions).

Whenever it cannot be sure of the same result (a null for a non-null field, a value the
coercion refuses, an awaitable, middleware), it hands the field to graphql-core, which
produces its usual error.
"""

from __future__ import annotations

import keyword
import weakref
from asyncio import Future, shield
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from functools import partial
from inspect import iscoroutinefunction
from types import GeneratorType
from typing import Any, Final, NamedTuple, cast

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    MiddlewareManager,
    Node,
    OperationDefinitionNode,
)
from graphql.error import located_error
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.values import get_argument_values
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import PermissionExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import InputContext, convert_argument
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver
from strawberry.types.unset import UNSET

from schema.contracts import FROZEN_SNAPSHOTS, STRINGS_UNCHANGED
from schema.conversion import built_by_hook, unchanged
from schema.loaded import LoadedBy, loaded_by_of
from schema.permissions import HasScope, scope_checks

__all__ = ["GRAPHQL_CORE_SERIES", "FastExecutionContext"]

# The graphql-core minor series whose executor internals this module overrides and calls
# (pyproject.toml pins it; tests/gateway/test_graphql_core_contract.py checks both).
GRAPHQL_CORE_SERIES: Final = (3, 3)

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

# response name, kind, attribute, field type, coercion (leaves), object type (of the object,
# the list's items or the loaded value), field group, declaration (loaded fields) or the
# fields of a _LEAVES entry, or the refused scope check of a _MASKED one
_Entry = tuple[
    str,
    int,
    str,
    GraphQLOutputType,
    Coerce | None,
    GraphQLObjectType | None,
    FieldDetailsList,
    "LoadedBy | _Leaves | HasScope | _EachLoad | None",
]


class _EachLoad:
    """A _LOAD_EACH field: its declaration, its definition and the type it is a field of."""

    __slots__ = ("field_def", "parent_type", "spec")

    def __init__(
        self, spec: LoadedBy, field_def: GraphQLField, parent_type: GraphQLObjectType
    ) -> None:
        self.spec = spec
        self.field_def = field_def
        self.parent_type = parent_type


class _Leaves:
    """Consecutive leaf fields of a plan, completed by one generated function (`fill`) that
    reads each attribute and coerces it inline as its own _LEAF entry's coercion would."""

    __slots__ = ("entries", "fill")

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries
        self.fill = _leaves_filler(entries)


# `fill(source, results)` puts the leaves' values in `results` in order and returns how many
# it completed: it stops at the first one whose coercion refuses its value or raises.
_Fill = Callable[[Any, dict[str, Any]], int]
_FILLERS: dict[tuple[Any, ...], _Fill] = {}
_FILLERS_KEPT: Final = 512
# The coercions of _leaf whose fast case can be written inline: (test, conversion or None).
_INLINE: Final[dict[GraphQLScalarType, tuple[str, str | None]]] = {
    GraphQLString: ("type(value) is not str", None),
    GraphQLBoolean: ("type(value) is not bool", None),
    GraphQLInt: ("type(value) is not int or not MIN <= value <= MAX", None),
    GraphQLID: ("type(value) is not str", "str(value) if type(value) is int else"),
}


# Output coercions of custom scalars that return a str exactly as given (STRINGS_UNCHANGED,
# `schema.contracts.strings_unchanged`): their fields' str values are completed inline, as a
# String's are. Instances of FROZEN_SNAPSHOTS' classes are shared between requests and never
# written to once built (the objects built once per stored document): the generated
# completion keeps the values of their plain fields on them (`_MEMO`), per selection, for the
# next request that reads them.
_MEMO: Final = "_talkgate_completed"
# Selections whose values one object keeps; more, and it forgets them all.
_MEMO_KEPT: Final = 8
_MEMO_KEYS: dict[tuple[Any, ...], object] = {}


def _inline(named: GraphQLOutputType) -> tuple[str, str | None] | None:
    """How `fill` completes the fast case of a leaf of this type inline, if it can."""
    if not isinstance(named, GraphQLScalarType):
        return None
    if named.coerce_output_value in STRINGS_UNCHANGED:
        return _INLINE[GraphQLString]
    return _INLINE.get(named)


def _read(source: str, attr: str, name: str, namespace: dict[str, Any]) -> str:
    """The expression reading `attr` off `source`: `source.attr` when that is the same
    lookup as getattr's (a plain identifier), else getattr with the name in `namespace`
    as A<name>."""
    namespace[f"A{name}"] = attr
    if attr.isidentifier() and not keyword.iskeyword(attr) and not attr.startswith("__"):
        return f"{source}.{attr}"
    return f"getattr({source}, A{name})"


def _leaf_lines(
    name: str,
    source: str,
    attr: str,
    field_type: GraphQLOutputType,
    coerce: Coerce | None,
    namespace: dict[str, Any],
    pad: str,
    missed: str,
) -> list[str]:
    """Generated lines setting `value` to the leaf `attr` of `source` completed as its
    _LEAF entry's coercion would (the usual scalars' fast case inline), and returning
    `missed` where that coercion refuses it. The coercion and the attribute's name go in
    `namespace` as C<name> and A<name>."""
    namespace[f"C{name}"] = coerce
    read = _read(source, attr, name, namespace)
    named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    inline = _inline(named)
    if inline is None:
        return [
            f"{pad}value = {read}",
            f"{pad}value = C{name}(value)",
            f"{pad}if value is MISS: return {missed}",
        ]
    test, convert = inline
    return [
        f"{pad}value = {read}",
        f"{pad}if {test}:",
        f"{pad}    value = {convert or ''} C{name}(value)",
        f"{pad}    if value is MISS: return {missed}",
    ]


def _leaves_filler(entries: list[_Entry]) -> _Fill:
    """The `fill` function of `entries`, generated once for each run of leaves seen."""
    key = tuple((e[0], e[2], e[3], e[4]) for e in entries)
    fill = _FILLERS.get(key)
    if fill is not None:
        return fill
    namespace: dict[str, Any] = {"MISS": _MISS, "MIN": _MIN_INT, "MAX": _MAX_INT}
    lines = ["def fill(source, results):", "    done = 0", "    try:"]
    for index, (response_name, _, attr, field_type, coerce, _, _, _) in enumerate(entries):
        lines += _leaf_lines(
            str(index), "source", attr, field_type, coerce, namespace, "        ", str(index)
        )
        lines += [f"        results[{response_name!r}] = value", f"        done = {index + 1}"]
    lines += ["    except Exception:", "        pass", "    return done"]
    exec(compile("\n".join(lines), "<talkgate leaves>", "exec"), namespace)  # noqa: S102
    fill = cast("_Fill", namespace["fill"])
    if len(_FILLERS) >= _FILLERS_KEPT:
        _FILLERS.clear()
    _FILLERS[key] = fill
    return fill


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
_Completion = tuple[_Complete, tuple[_LoadSlot, ...]]
# A plan's shape: its object type's name, its fields as (kind, response name, attribute,
# field type, coercion, shape of the object held), and for a loaded object (loader, key,
# the number of its slot).
_Shape = tuple[str, tuple[tuple[Any, ...], ...], tuple[str, str, int] | None]
_COMPLETERS: dict[tuple[_Shape, Callable[[Any], bool]], _Complete] = {}
_COMPLETERS_KEPT: Final = 256
# Nested plans deeper than this are not generated (a runaway selection stays graphql-core's).
_COMPLETER_DEPTH: Final = 8


def _completer(shape: _Shape, is_awaitable: Callable[[Any], bool]) -> _Complete:
    """The `complete` function of a plan of that shape (`FastExecutionContext._shape`),
    generated once for all requests: the plan's leaves, __typename, plain objects and
    loaded objects, written out level by level without a call per field: an object already
    in its loader (`peek`) completed in place, one still to load left in `pending`. Anything
    else (an unusual value, an exception) gives -1; then the caller drops what it left in
    `pending`."""
    key = (shape, is_awaitable)
    complete = _COMPLETERS.get(key)
    if complete is not None:
        return complete
    namespace: dict[str, Any] = {
        "is_awaitable": is_awaitable,
        "MISS": _MISS,
        "MIN": _MIN_INT,
        "MAX": _MAX_INT,
        "Undefined": Undefined,
        "INERT": _INERT_TYPES,
        "inert": _inert,
        "FROZEN": FROZEN_SNAPSHOTS,
        "MEMO": _MEMO,
        "MEMO_KEPT": _MEMO_KEPT,
    }
    lines = ["def complete(s0, loaders, into, pending):", "    try:"]
    count = _write_level(shape, 0, lines, namespace, "        ")
    lines += [
        "    except Exception:",
        "        return -1",
        "    into.append(r0)",
        f"    return n + {count}" if count else "    return n",
    ]
    lines.insert(2, "        n = 0")
    exec(compile("\n".join(lines), "<talkgate completer>", "exec"), namespace)  # noqa: S102
    complete = cast("_Complete", namespace["complete"])
    if len(_COMPLETERS) >= _COMPLETERS_KEPT:
        _COMPLETERS.clear()
        _MEMO_KEYS.clear()
    _COMPLETERS[key] = complete
    return complete


def _write_level(
    shape: _Shape, depth: int, lines: list[str], namespace: dict[str, Any], pad: str
) -> int:
    """Lines completing `r{depth}` from `s{depth}` as `shape` describes; the number of
    values they complete at this level (nested levels add theirs to `n` as they run).

    Below the list's item, the leading fields that depend on the object alone (leaves,
    __typename, plain objects made of such fields: not loads) are remembered on an object
    of a shared class, and the next completion of the same selection takes them from there.
    """
    src, res = f"s{depth}", f"r{depth}"
    fields = shape[1]
    pure = 0
    while pure < len(fields) and _pure(fields[pure]):
        pure += 1
    if depth == 0 or pure < 2:
        lines.append(f"{pad}{res} = {{}}")
        return _write_fields(shape, fields, 0, depth, lines, namespace, pad)
    # The selection's key on the object: one object for each shape of what is kept (hashing
    # the shape itself at every lookup would cost more than completing the fields).
    key = f"K{depth}_{len(namespace)}"
    namespace[key] = _MEMO_KEYS.setdefault((shape[0], fields[:pure]), object())
    rest = pure < len(fields)
    memo, hit, before = f"memo{depth}", f"hit{depth}", f"before{depth}"
    lines += [
        f"{pad}{memo} = {src}.__dict__.get(MEMO) if type({src}) in FROZEN else None",
        f"{pad}{hit} = None if {memo} is None else {memo}.get({key})",
        f"{pad}if {hit} is not None:",
        f"{pad}    {res} = {hit}[0].copy()" if rest else f"{pad}    {res} = {hit}[0]",
        f"{pad}    n += {hit}[1]",
        f"{pad}else:",
        f"{pad}    {before} = n",
        f"{pad}    {res} = {{}}",
    ]
    kept = _write_fields(shape, fields[:pure], 0, depth, lines, namespace, pad + "    ")
    lines += [
        f"{pad}    n += {kept}",
        f"{pad}    if type({src}) in FROZEN:",
        f"{pad}        if {memo} is None:",
        f"{pad}            {memo} = {src}.__dict__[MEMO] = {{}}",
        f"{pad}        elif len({memo}) >= MEMO_KEPT:",
        f"{pad}            {memo}.clear()",
        f"{pad}        {memo}[{key}] = ({'dict(' + res + ')' if rest else res}, n - {before})",
    ]
    return _write_fields(shape, fields[pure:], pure, depth, lines, namespace, pad)


def _pure(field: tuple[Any, ...]) -> bool:
    """Whether a field of a shape completes from its object alone (no load below it)."""
    kind, nested = field[0], field[5]
    return kind in (_LEAF, _TYPENAME) or (kind == _OBJECT and all(map(_pure, nested[1])))


def _write_fields(
    shape: _Shape,
    fields: tuple[tuple[Any, ...], ...],
    first: int,
    depth: int,
    lines: list[str],
    namespace: dict[str, Any],
    pad: str,
) -> int:
    """Lines completing `fields` (the fields of `shape` from index `first`) into
    `r{depth}`; how many values they complete at this level."""
    src, res = f"s{depth}", f"r{depth}"
    count = 0
    for index, (kind, response_name, attr, field_type, coerce, nested) in enumerate(fields, first):
        name = f"{depth}_{index}"
        if kind == _LEAF:
            lines += _leaf_lines(name, src, attr, field_type, coerce, namespace, pad, "-1")
            lines.append(f"{pad}{res}[{response_name!r}] = value")
        elif kind == _TYPENAME:
            lines.append(f"{pad}{res}[{response_name!r}] = {shape[0]!r}")
        elif kind == _OBJECT:
            child = f"s{depth + 1}"
            lines += [
                f"{pad}{child} = {_read(src, attr, name, namespace)}",
                f"{pad}if {child} is None or {child} is Undefined:",
            ]
            if isinstance(field_type, GraphQLNonNull):
                lines.append(f"{pad}    return -1")
            else:
                lines.append(f"{pad}    {res}[{response_name!r}] = None")
            lines += [
                f"{pad}else:",
                f"{pad}    if type({child}) not in INERT and not inert({child}, is_awaitable):",
                f"{pad}        return -1",
            ]
            _write_child(nested, response_name, depth, lines, namespace, pad + "    ")
        else:  # _LOAD
            loader, key_attr, slot = nested[2]
            child = f"s{depth + 1}"
            namespace[f"L{name}"] = loader
            lines += [
                f"{pad}{child} = {_read(src, key_attr, name, namespace)}",
                f"{pad}if {child} is None:",
                f"{pad}    {res}[{response_name!r}] = None",
                f"{pad}else:",
                f"{pad}    if type({child}) is not int: {child} = int({child})",
                f"{pad}    loader = getattr(loaders, L{name})",
                f"{pad}    key = {child}",
                f"{pad}    {child} = loader.peek(key, MISS)",
                f"{pad}    if {child} is MISS:",
                f"{pad}        {res}[{response_name!r}] = None",
                f"{pad}        pending.append(({slot}, {res}, loader.load(key)))",
                f"{pad}    elif {child} is None or {child} is Undefined:",
                f"{pad}        {res}[{response_name!r}] = None",
                f"{pad}    elif isinstance({child}, Exception):",
                f"{pad}        return -1",
                f"{pad}    else:",
            ]
            _write_child(nested, response_name, depth, lines, namespace, pad + "        ")
        count += 1
    return count


def _write_child(
    nested: _Shape,
    response_name: str,
    depth: int,
    lines: list[str],
    namespace: dict[str, Any],
    pad: str,
) -> None:
    """Lines completing the object held in `s{depth + 1}` as `nested` describes, counting
    its values and putting it in `r{depth}` under `response_name`."""
    inner = _write_level(nested, depth + 1, lines, namespace, pad)
    if inner:
        lines.append(f"{pad}n += {inner}")
    lines.append(f"{pad}r{depth}[{response_name!r}] = r{depth + 1}")


# A deferred load: the results it goes into, its response name, the loader's future, the
# field's type, the loaded object's type, the field group, its path, the position context.
_Deferred = tuple[
    dict[str, Any],
    str,
    Awaitable[Any],
    GraphQLOutputType,
    GraphQLObjectType,
    FieldDetailsList,
    Path,
    Any,
]
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


def _node_ids(field_group: FieldDetailsList) -> tuple[int, ...]:
    return tuple(id(details.node) for details in field_group)


def _apart(loading: Awaitable[Any]) -> Awaitable[Any]:
    """A load to await so that cancelling the task awaiting it leaves the load be: a loader
    hands the same future to every load of a key, and a task awaiting a future cancels it
    when cancelled itself. A non-null field's error nulling its parent cancels the tasks of
    the parent's other fields (gather_with_cancel): without this, a load they shared with
    the rest of the answer would fail there too, with a CancelledError."""
    return shield(loading) if isinstance(loading, Future) and not loading.done() else loading


def _gather_async_work(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)


def _track_async_work(context: weakref.ref[FastExecutionContext], values: Sequence[Any]) -> None:
    executing = context()
    if executing is not None:
        executing.track_async_work(values)


# The direct call of a strawberry resolver (`_direct_call`): the scopes its checks require,
# and the call itself, taking graphql-core's (source, info, **arguments).
_Direct = tuple[frozenset[str], Callable[..., Any]]
# The direct calls of each schema's resolvers, by the resolve function graphql-core is given
# (strawberry's wrapper of each); made once per schema.
_DIRECT_CALLS: dict[int, tuple[GraphQLSchema, dict[Callable[..., Any], _Direct]]] = {}
_DIRECT_SCHEMAS_KEPT: Final = 16


# How a direct call converts an argument: not at all (scalars, enum members), through its
# input class's `from_input` hook as convert_argument would, or by convert_argument.
_GIVEN: Final = 0
_HOOKED: Final = 1
_CONVERTED: Final = 2


def _direct_calls(schema: GraphQLSchema) -> dict[Callable[..., Any], _Direct]:
    """The direct calls of `schema`'s resolvers (none when its strawberry schema has
    exception handlers, which strawberry's wrapper would run)."""
    found = _DIRECT_CALLS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    calls: dict[Callable[..., Any], _Direct] = {}
    strawberry_schema = getattr(schema, "_strawberry_schema", None)
    if strawberry_schema is not None and not getattr(strawberry_schema, "exception_handlers", ()):
        for named in schema.type_map.values():
            if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
                continue
            for field_def in named.fields.values():
                direct = _direct_call(strawberry_schema, field_def)
                if direct is not None and field_def.resolve is not None:
                    calls[field_def.resolve] = direct
    if len(_DIRECT_CALLS) >= _DIRECT_SCHEMAS_KEPT:
        _DIRECT_CALLS.clear()
    _DIRECT_CALLS[id(schema)] = (schema, calls)
    return calls


def _direct_call(strawberry_schema: Any, field_def: GraphQLField) -> _Direct | None:
    """What strawberry's wrapper of an async resolver does for a caller its scope checks let
    through, without the wrapper: the resolver's Info, its arguments converted (scalars and
    enum members handed over as they are, an input with its own `from_input` hook built by
    it, anything else by strawberry's convert_argument: what strawberry's conversion does),
    and the resolver's coroutine, which graphql-core awaits.

    Only for a field whose wrapper would do no more: an async resolver (not a subscription's)
    of a plain StrawberryField, with no extension but a `schema.permissions.needs` check
    (whose `map_arguments` changes nothing); None for any other."""
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(field, StrawberryField)
        or type(field).get_result is not StrawberryField.get_result
        or field.is_subscription
        or field_def.subscribe is not None
        or not field.is_async
    ):
        return None
    resolver = field.base_resolver
    if (
        resolver is None
        or type(resolver).__call__ is not StrawberryResolver.__call__
        or not iscoroutinefunction(resolver.wrapped_func)
    ):
        return None
    checks = scope_checks(field) if field.extensions else ()
    if checks is None or PermissionExtension.map_arguments is not FieldExtension.map_arguments:
        return None
    config = strawberry_schema.config
    registry = strawberry_schema.schema_converter.scalar_registry
    info_class = config.info_class
    # graphql-core's name, the resolver's, how the value is converted, and its type.
    plan: list[tuple[str, str, int, Any]] = []
    for argument in field.arguments:
        hooked = built_by_hook(argument.type, registry)
        how = _GIVEN if unchanged(argument.type, registry) else _CONVERTED
        plan.append(
            (
                config.name_converter.from_argument(argument),
                argument.python_name,
                how if hooked is None else _HOOKED,
                argument.type if hooked is None else hooked,
            )
        )
    func = resolver.wrapped_func
    takes_self = resolver.self_parameter is not None
    sources = tuple(
        parameter.name
        for parameter in (resolver.parent_parameter, resolver.root_parameter)
        if parameter is not None
    )
    info_name = None if resolver.info_parameter is None else resolver.info_parameter.name

    def call(source: Any, info: GraphQLResolveInfo[Any], **given: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        arguments: dict[str, Any] = {}
        for graphql_name, python_name, how, argument_type in plan:
            if graphql_name not in given:
                continue
            value = given[graphql_name]
            if how == _GIVEN or (how == _HOOKED and (value is None or value is UNSET)):
                arguments[python_name] = value
            elif how == _HOOKED:
                definition = argument_type.__strawberry_definition__
                arguments[python_name] = definition.from_input(
                    argument_type,
                    value,
                    InputContext(
                        info=strawberry_info,
                        config=config,
                        scalar_registry=registry,
                        path=(graphql_name,),
                    ),
                )
            else:
                arguments[python_name] = convert_argument(
                    value, argument_type, registry, config, strawberry_info, path=(graphql_name,)
                )
        for name in sources:
            arguments[name] = source
        if info_name is not None:
            arguments[info_name] = strawberry_info
        return func(source, **arguments) if takes_self else func(**arguments)

    return frozenset(check.scope for check in checks), call


class _DirectCalls(MiddlewareManager):
    """graphql-core's hook for wrapping resolvers (`get_field_resolver`), holding no
    middleware: it hands graphql-core the direct call of each strawberry resolver whose
    scope checks this request's caller passes (`_direct_call`), and any other resolver as
    it is. The checks are so decided once per request, as for the fields of a plan."""

    __slots__ = ("_calls", "_granted")

    def __init__(self, calls: dict[Callable[..., Any], _Direct], granted: frozenset[str]) -> None:
        super().__init__()
        self._calls = calls
        self._granted = granted

    def get_field_resolver(self, field_resolver: Callable[..., Any]) -> Callable[..., Any]:
        direct = self._calls.get(field_resolver)
        if direct is None or not direct[0] <= self._granted:
            return field_resolver
        return direct[1]


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, completing plain fields without graphql-core's
    per-field machinery; every other field runs exactly as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core's helpers hold bound methods of the context: a cycle, which keeps the
        # whole request (its loaders, loads and objects) alive until the cyclic collector
        # runs. Holding the context weakly, everything goes as soon as the request is done.
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=_gather_async_work, track=partial(_track_async_work, weakref.ref(self))
        )
        manager = self.middleware_manager
        # Middleware wraps every resolver, plain ones included: then nothing is plain.
        self.fast = manager is None or not manager.middlewares
        granted = self.granted()
        if self.fast:
            calls = _direct_calls(self.schema)
            if calls:
                self.middleware_manager = _DirectCalls(calls, granted or frozenset())
        # Values completed by the fast path (tests check that it keeps being used).
        self.fast_values = 0
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, list[_Entry]]]
        self._plans = {}
        # The plan of an object type's subfields for a field group; None with @defer.
        self._subplans: dict[
            tuple[GraphQLObjectType, int], tuple[FieldDetailsList, list[_Entry] | None]
        ] = {}
        # Where loaded fields put their loads while a list is being completed; None outside
        # one. Only ever set during synchronous work, so no await point ever sees it set.
        self._deferred: list[_Deferred] | None = None
        # The generated completion of a list item's plan (by the plan's id), or None.
        self._completers: dict[int, tuple[list[_Entry], _Completion | None]] = {}
        # The located error of each refused field group (`_refusal`), by the group's id.
        self._refusals: dict[int, tuple[FieldDetailsList, GraphQLError]] = {}
        # The arguments of each _LOAD_EACH field group with arguments, by the group's id.
        self._arguments: dict[int, tuple[FieldDetailsList, dict[str, Any]]] = {}
        # What the keys of plans shared with other requests start with (`_SharedPlans`);
        # None when this operation's plans are its own.
        self._shared: tuple[Any, ...] | None = None
        source = self.operation.loc.source if self.operation.loc is not None else None
        short = source is not None and len(source.body) <= _SHARED_TEXT
        if self.fast and short and _SHARED_PLANS.static(self.operation, self.fragments):
            loaders = getattr(self.context_value, "loaders", None)
            self._shared = (id(self.schema), granted, type(loaders), self.is_awaitable)

    def build_per_event_executor(self, payload: Any) -> FastExecutionContext:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, FastExecutionContext)
        # graphql-core's copy shares this executor's memos, keyed by the identity of each
        # event's own field lists: every event of a long-lived subscription would add
        # entries never read again (without bound, for graphql-core's own memo).
        executor._relevant_sub_fields = {}
        executor._plans = {}
        executor._subplans = {}
        executor._deferred = None
        executor._completers = {}
        executor._refusals = {}
        executor._arguments = {}
        executor._shared = None
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
        return self._execute_plan(parent_type, source_value, path, plan, position_context)

    def _execute_plan(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path,
        plan: list[_Entry],
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """execute_fields, once the plan of its fields is known."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        fast_values = 0
        try:
            for (
                response_name,
                kind,
                attr,
                field_type,
                coerce,
                object_type,
                field_group,
                spec,
            ) in plan:
                if kind == _LEAVES:
                    leaves: _Leaves = spec  # type: ignore[assignment]
                    done = leaves.fill(source_value, results)
                    fast_values += done
                    for index in range(done, len(leaves.entries)):
                        entry = leaves.entries[index]
                        if index > done:  # the one `fill` stopped at is graphql-core's
                            try:
                                value = entry[4](getattr(source_value, entry[2]))  # type: ignore[misc]
                            except Exception:  # graphql-core reports it
                                value = _MISS
                            if value is not _MISS:
                                results[entry[0]] = value
                                fast_values += 1
                                continue
                        self._execute_field_into(
                            results,
                            awaitable_fields,
                            parent_type,
                            source_value,
                            entry[0],
                            entry[6],
                            path,
                            position_context,
                        )
                    continue
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
                elif kind == _MASKED:
                    at = _path((path, response_name, parent_type.name))
                    self.collected_errors.add(self._refusal(spec, field_group, at), at)  # type: ignore[arg-type]
                    results[response_name] = None
                    fast_values += 1
                    continue
                elif kind == _LOAD:
                    assert object_type is not None
                    declared: LoadedBy = spec  # type: ignore[assignment]
                    loading = self._load(declared, source_value)
                    if loading is None:
                        results[response_name] = None
                        fast_values += 1
                        continue
                    if loading is not _MISS:
                        fast_values += 1
                        pending: _Deferred = (
                            results,
                            response_name,
                            loading,
                            field_type,
                            object_type,
                            field_group,
                            _path((path, response_name, parent_type.name)),
                            position_context,
                        )
                        if self._deferred is not None:
                            results[response_name] = None  # until the list settles it
                            self._deferred.append(pending)
                        else:
                            results[response_name] = self._settle_one(pending)
                            awaitable_fields.append(response_name)
                        continue
                elif kind == _LOAD_EACH:
                    assert object_type is not None
                    result = self._load_each(
                        spec,  # type: ignore[arg-type]
                        source_value,
                        field_type,
                        object_type,
                        field_group,
                        _path((path, response_name, parent_type.name)),
                        position_context,
                    )
                    if result is not _MISS:
                        results[response_name] = result
                        fast_values += 1
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
                        continue
                elif kind in (_OBJECT, _LIST):
                    assert object_type is not None
                    result = self._complete_plain(
                        kind,
                        field_type,
                        object_type,
                        source_value,
                        attr,
                        field_group,
                        _path((path, response_name, parent_type.name)),
                        position_context,
                    )
                    if result is not _MISS:
                        results[response_name] = result
                        fast_values += 1
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
                        continue
                self._execute_field_into(
                    results,
                    awaitable_fields,
                    parent_type,
                    source_value,
                    response_name,
                    field_group,
                    path,
                    position_context,
                )
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

    def _execute_field_into(
        self,
        results: dict[str, Any],
        awaitable_fields: list[str],
        parent_type: GraphQLObjectType,
        source_value: Any,
        response_name: str,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> None:
        """graphql-core's execute_field for a field of a plan the fast path leaves to it; its
        result goes into `results`, and its name into `awaitable_fields` if it must be awaited."""
        result = self.execute_field(
            parent_type,
            source_value,
            field_group,
            _path((path, response_name, parent_type.name)),
            position_context,
        )
        if result is not Undefined:
            results[response_name] = result
            if self.is_awaitable(result):
                awaitable_fields.append(response_name)

    def _complete_plain(
        self,
        kind: int,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        source_value: Any,
        attr: str,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A plain field holding an object (_OBJECT) or a list of objects (_LIST), completed
        as graphql-core's execute_field and complete_value would; _MISS, before any work,
        when graphql-core must complete it."""
        try:
            value = getattr(source_value, attr)
        except Exception:  # graphql-core reports it
            return _MISS
        if value is None or value is Undefined:
            return _MISS if isinstance(return_type, GraphQLNonNull) else None
        if not _inert(value, self.is_awaitable):
            return _MISS
        try:
            if kind == _OBJECT:
                completed = self._execute_subfields(
                    object_type, field_group, path, value, position_context
                )
            else:
                list_type = (
                    return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
                )
                assert isinstance(list_type, GraphQLList)
                completed = self._complete_items(
                    list_type, object_type, field_group, path, value, position_context
                )
                if completed is _MISS:
                    return _MISS
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        if self.is_awaitable(completed):
            return self._await_completed(completed, return_type, field_group, path)
        return completed

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        # Lists of objects returned by resolvers (a root field's list) defer their loads too.
        item_type = return_type.of_type
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if (
            self.fast
            and isinstance(item_type, GraphQLObjectType)
            and item_type.is_type_of is None
            and not _streamed(field_details_list)
        ):
            completed = self._complete_items(
                return_type, item_type, field_details_list, path, result, position_context
            )
            if completed is not _MISS:
                return cast("AwaitableOrValue[list[Any]]", completed)
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_items(
        self,
        list_type: GraphQLList[GraphQLOutputType],
        item_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        values: Any,
        position_context: Any,
    ) -> Any:
        """The items of a list of objects, completed as graphql-core's complete_list_value
        would, raising what it raises; _MISS, before any work, when graphql-core must do it.
        The items' loaded fields are deferred, and settled together at the end."""
        if type(values) is not list:
            return _MISS
        item_return_type: GraphQLOutputType = list_type.of_type
        items_nullable = not isinstance(item_return_type, GraphQLNonNull)
        is_awaitable = self.is_awaitable
        inert_types = _INERT_TYPES
        for item in values:
            if item is None or item is Undefined:
                if not items_nullable:
                    return _MISS
            elif type(item) not in inert_types and not _inert(item, is_awaitable):
                return _MISS
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        deferred: list[_Deferred] = []
        outer = self._deferred
        self._deferred = deferred
        fast_values = 0
        try:
            # Every item has the same subfields: planned once, not once per item.
            plan = self._subplan(item_type, field_group) if position_context is None else None
            completion = None if plan is None else self._completer_of(item_type, plan)
            complete, slots = (None, ()) if completion is None else completion
            loaders = getattr(self.context_value, "loaders", None)
            pending: list[tuple[int, dict[str, Any], Any]] = []
            for index, item in enumerate(values):
                if item is None or item is Undefined:
                    completed.append(None)
                    continue
                if complete is not None:
                    done = complete(item, loaders, completed, pending)
                    if done >= 0:
                        fast_values += done
                        if pending:
                            self._defer_slots(pending, slots, path, index, deferred)
                        continue
                    pending.clear()
                    # Then likely the next items too: they go the plan's way.
                    complete = None
                item_path = _path((path, index, None))
                try:
                    if plan is not None:
                        value = self._execute_plan(item_type, item, item_path, plan, None)
                    else:
                        value = self.collect_and_execute_subfields(
                            item_type, field_group, item_path, item, position_context
                        )
                except Exception as raw_error:
                    # Raises again for non-null items: then the whole list fails.
                    self.handle_field_error(raw_error, item_return_type, field_group, item_path)
                    value = None
                if is_awaitable(value):
                    value = self._await_completed(value, item_return_type, field_group, item_path)
                    awaitable_indices.append(index)
                completed.append(value)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed[i] for i in awaitable_indices])
            raise
        finally:
            self._deferred = outer
            self.fast_values += fast_values
        if not deferred and not awaitable_indices:
            return completed
        return self._settle_list(completed, awaitable_indices, deferred)

    def _defer_slots(
        self,
        pending: list[tuple[int, dict[str, Any], Any]],
        slots: tuple[_LoadSlot, ...],
        path: Path,
        index: int,
        deferred: list[_Deferred],
    ) -> None:
        """The loads a completer left in `pending` for the list's item at `index`, deferred
        as the plan's way defers them (their paths made only now); `pending` is emptied."""
        item_path = _path((path, index, None))
        for number, results, loading in pending:
            slot = slots[number]
            at = item_path
            for key, typename in slot.within:
                at = _path((at, key, typename))
            deferred.append(
                (
                    results,
                    slot.response_name,
                    loading,
                    slot.field_type,
                    slot.object_type,
                    slot.field_group,
                    _path((at, slot.response_name, slot.parent_name)),
                    None,
                )
            )
        pending.clear()

    async def _settle_list(
        self, completed: list[Any], awaitable_indices: list[int], deferred: list[_Deferred]
    ) -> list[Any]:
        """The list once its deferred loads are settled and its awaitable items awaited,
        concurrently, so that their batches go out together."""
        awaitables: list[Awaitable[Any]] = [completed[i] for i in awaitable_indices]
        if deferred:
            awaitables.append(self._settle(deferred))
        if len(awaitables) == 1:
            awaited = [await awaitables[0]]
        else:
            awaited = await gather_with_cancel(*awaitables)
        for index, value in zip(awaitable_indices, awaited, strict=False):
            completed[index] = value
        return completed

    async def _settle(self, deferred: list[_Deferred]) -> None:
        """Fill in deferred loaded fields, level by level: await this level's loads (their
        batches are out by now), complete the loaded objects, whose own loaded fields make
        the next level."""
        while deferred:
            outcomes: list[Any] = []
            for pending in deferred:
                loading = pending[2]
                try:
                    # Most loads are done by now: their result, without an await each.
                    if isinstance(loading, Future) and loading.done():
                        outcomes.append(loading.result())
                    else:
                        outcomes.append(await _apart(loading))
                except Exception as error:
                    outcomes.append(_Failed(error))
            awaiting: list[tuple[dict[str, Any], str]] = []
            outer = self._deferred
            later: list[_Deferred] = []
            self._deferred = later
            try:
                for pending, outcome in zip(deferred, outcomes, strict=True):
                    results, name, _, return_type, object_type, field_group, path, position = (
                        pending
                    )
                    try:
                        if isinstance(outcome, _Failed):
                            raise outcome.error
                        value = self._complete_loaded(
                            outcome, object_type, field_group, path, position
                        )
                    except Exception as raw_error:
                        # Loaded fields here are nullable: the error is kept, the field null.
                        self.handle_field_error(raw_error, return_type, field_group, path)
                        value = None
                    if type(value) is not dict and self.is_awaitable(value):
                        value = self._await_completed(value, return_type, field_group, path)
                        awaiting.append((results, name))
                    results[name] = value
            finally:
                self._deferred = outer
            if awaiting:
                awaited = await gather_with_cancel(*(r[name] for r, name in awaiting))
                for (results, name), value in zip(awaiting, awaited, strict=True):
                    results[name] = value
            deferred = later

    def _load(self, spec: LoadedBy, source_value: Any) -> Any:
        """The loader's future for a loaded field, None for a null key, or _MISS when the
        resolver must run (and raise) under graphql-core."""
        try:
            key = getattr(source_value, spec.key)
            if key is None:
                return None
            return getattr(self.context_value.loaders, spec.loader).load(int(key))
        except Exception:
            return _MISS

    def _load_each(
        self,
        each: _EachLoad,
        source_value: Any,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A _LOAD_EACH field, as graphql-core's execute_field runs its resolver (the same
        `load`) and completes what it gives: an awaitable of the completed value, or None
        for a null key; _MISS, before any load, when graphql-core must run the resolver."""
        try:
            arguments = self._arguments_of(each, field_group) if each.field_def.args else {}
            key = each.spec.key_of(source_value, arguments)
            if key is None:
                return _MISS if isinstance(return_type, GraphQLNonNull) else None
            loading = getattr(self.context_value.loaders, each.spec.loader).load(key)
        except Exception:  # graphql-core reports it
            return _MISS
        return self._settle_each(
            loading, each, return_type, object_type, field_group, path, position_context
        )

    def _arguments_of(self, each: _EachLoad, field_group: FieldDetailsList) -> dict[str, Any]:
        """The field's arguments as graphql-core coerces them (by their Python names, which
        `_loaded` checked are the same), worked out once per request for each field group."""
        known = self._arguments.get(id(field_group))
        if known is not None and known[0] is field_group:
            return known[1]
        details = field_group[0]
        arguments = get_argument_values(
            each.field_def,
            details.node,
            self.variable_values,
            details.fragment_variable_values,
            self.hide_suggestions,
        )
        self._arguments[id(field_group)] = (field_group, arguments)
        return arguments

    async def _settle_each(
        self,
        loading: Awaitable[Any],
        each: _EachLoad,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A loaded _LOAD_EACH value completed, as graphql-core's complete_awaitable_value:
        an error makes the field null, or (non-null) goes up to the parent."""
        try:
            value = await _apart(loading)
            completed = self._complete_each(
                value, each, return_type, object_type, field_group, path, position_context
            )
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        return completed

    def _complete_each(
        self,
        value: Any,
        each: _EachLoad,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """complete_value of a loaded object or list of objects (`_each_type`)."""
        if isinstance(value, Exception):
            raise value
        nullable = return_type
        if isinstance(return_type, GraphQLNonNull):
            nullable = return_type.of_type
        if value is None or value is Undefined:
            if nullable is return_type:
                return None
            raise TypeError(
                "Cannot return null for non-nullable field"
                f" {each.parent_type.name}.{field_group[0].node.name.value}."
            )
        if isinstance(nullable, GraphQLList):
            completed = self._complete_items(
                nullable, object_type, field_group, path, value, position_context
            )
            if completed is not _MISS:
                return completed
            # An item graphql-core must complete: then the whole list is its to complete.
            nodes = [details.node for details in field_group]
            info = self.build_resolve_info(each.field_def, nodes, each.parent_type, path)
            return self.complete_value(
                return_type, field_group, info, path, value, position_context
            )
        return self._execute_subfields(object_type, field_group, path, value, position_context)

    async def _settle_one(self, pending: _Deferred) -> Any:
        """A loaded field outside a list, as graphql-core's complete_awaitable_value."""
        _, _, loading, return_type, object_type, field_group, path, position_context = pending
        try:
            completed = self._complete_loaded(
                await _apart(loading), object_type, field_group, path, position_context
            )
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        return completed

    def _complete_loaded(
        self,
        value: Any,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """complete_value for a nullable object type without is_type_of."""
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        return self._execute_subfields(object_type, field_group, path, value, position_context)

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

    def _subplan(
        self, object_type: GraphQLObjectType, field_group: FieldDetailsList
    ) -> list[_Entry] | None:
        """The plan of the subfields `field_group` selects on `object_type`, looked up once
        per object instead of collect_subfields and _plan both; None when @defer takes part
        (graphql-core's incremental delivery then executes them)."""
        key = (object_type, id(field_group))
        cached = self._subplans.get(key)
        if cached is not None:
            return cached[1]
        shared_key = None
        if self._shared is not None:
            shared_key = (*self._shared, "subplan", object_type, _node_ids(field_group))
            shared = _SHARED_PLANS.get(_SHARED_PLANS.plans, shared_key)
            if shared is not None:
                self._subplans[key] = (field_group, shared[1])
                return cast("list[_Entry] | None", shared[1])
        fields, defer_usages, _ = self.collect_subfields(object_type, field_group)
        plan = None if defer_usages else self._plan(object_type, fields)
        if len(self._subplans) >= _PLAN_CACHE_SIZE:
            self._subplans.clear()
        # The field group stays referenced, so its id is not reused meanwhile.
        self._subplans[key] = (field_group, plan)
        if shared_key is not None:
            _SHARED_PLANS.put(_SHARED_PLANS.plans, shared_key, (field_group, plan))
        return plan

    def _completer_of(
        self, object_type: GraphQLObjectType, plan: list[_Entry]
    ) -> _Completion | None:
        """The generated completion (`_completer`) of objects of `object_type` by `plan` and
        its loaded fields' slots, looked up once per plan; None when the plan holds a field
        it does not write."""
        cached = self._completers.get(id(plan))
        if cached is not None:
            return cached[1]
        shared_key = None
        if self._shared is not None:
            shared_key = (*self._shared, object_type, id(plan))
            shared = _SHARED_PLANS.get(_SHARED_PLANS.completers, shared_key)
            if shared is not None and shared[0] is plan:
                self._completers[id(plan)] = shared
                return cast("_Completion | None", shared[1])
        slots: list[_LoadSlot] = []
        shape = self._shape(object_type, plan, 0, (), slots)
        completion = None if shape is None else (_completer(shape, self.is_awaitable), tuple(slots))
        if len(self._completers) >= _PLAN_CACHE_SIZE:
            self._completers.clear()
        # The plan stays referenced, so its id is not reused meanwhile.
        self._completers[id(plan)] = (plan, completion)
        if shared_key is not None:
            _SHARED_PLANS.put(_SHARED_PLANS.completers, shared_key, (plan, completion))
        return completion

    def _shape(
        self,
        object_type: GraphQLObjectType,
        plan: list[_Entry],
        depth: int,
        within: tuple[tuple[str, str], ...],
        slots: list[_LoadSlot],
    ) -> _Shape | None:
        """What `_completer` generates its function from, each loaded field numbered by its
        place in `slots`, where it is put; None when `plan` (or a plan below it) holds a field
        that graphql-core completes, a list of objects, or a loaded field whose loader
        cannot `peek`. `within` is the way from the list's item to `object_type`."""
        fields: list[tuple[Any, ...]] = []
        for response_name, kind, attr, field_type, coerce, held, field_group, spec in plan:
            if kind == _LEAVES:
                leaves: _Leaves = spec  # type: ignore[assignment]
                fields += [(_LEAF, e[0], e[2], e[3], e[4], None) for e in leaves.entries]
            elif kind == _LEAF:
                fields.append((_LEAF, response_name, attr, field_type, coerce, None))
            elif kind == _TYPENAME:
                fields.append((_TYPENAME, response_name, "", None, None, None))
            elif kind in (_OBJECT, _LOAD) and held is not None and depth < _COMPLETER_DEPTH:
                subplan = self._subplan(held, field_group)
                if subplan is None:
                    return None
                if kind == _LOAD:
                    declared: LoadedBy = spec  # type: ignore[assignment]
                    loader = getattr(
                        getattr(self.context_value, "loaders", None), declared.loader, None
                    )
                    if not callable(getattr(loader, "peek", None)):
                        return None
                    number = len(slots)
                    slots.append(
                        _LoadSlot(
                            within, response_name, object_type.name, field_type, held, field_group
                        )
                    )
                below = (*within, (response_name, object_type.name))
                nested = self._shape(held, subplan, depth + 1, below, slots)
                if nested is None:
                    return None
                if kind == _LOAD:
                    nested = (nested[0], nested[1], (declared.loader, declared.key, number))
                fields.append((kind, response_name, attr, field_type, None, nested))
            else:
                return None
        return (object_type.name, tuple(fields), None)

    def _execute_subfields(
        self,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """collect_and_execute_subfields, with the plan looked up once."""
        plan = self._subplan(object_type, field_group) if position_context is None else None
        if plan is None:
            return self.collect_and_execute_subfields(
                object_type, field_group, path, value, position_context
            )
        return self._execute_plan(object_type, value, path, plan, None)

    def _refusal(self, check: HasScope, field_group: FieldDetailsList, path: Path) -> GraphQLError:
        """The error graphql-core would locate at `path` for the refused `check`; its
        locations are worked out once per field group (a page may refuse thousands)."""
        template = self._refusals.get(id(field_group))
        if template is None or template[0] is not field_group:
            nodes = [details.node for details in field_group]
            template = (field_group, located_error(check.error(), nodes))
            self._refusals[id(field_group)] = template
        located = template[1]
        error = GraphQLError(
            located.message, path=path.as_list(), original_error=located.original_error
        )
        error.nodes, error.source = located.nodes, located.source
        error.positions, error.locations = located.positions, located.locations
        return error

    def granted(self) -> frozenset[str] | None:
        """The caller's scopes, when the context says (else scope checks run as usual)."""
        caller = getattr(self.context_value, "caller", None)
        scopes = getattr(caller, "scopes", None)
        return scopes if isinstance(scopes, frozenset) else None

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> list[_Entry]:
        """How to complete each field of `fields` on `parent_type`, made once per request for
        each selection (collect_subfields hands out the same grouped field set each time)."""
        key = (parent_type, id(fields))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        shared_key = None
        if self._shared is not None:
            selection = tuple((name, _node_ids(group)) for name, group in fields.items())
            shared_key = (*self._shared, "plan", parent_type, selection)
            shared = _SHARED_PLANS.get(_SHARED_PLANS.plans, shared_key)
            if shared is not None:
                self._plans[key] = (fields, shared[1])
                return cast("list[_Entry]", shared[1])
        plan = _grouped_leaves(
            [
                _entry(self, parent_type, response_name, field_group)
                for response_name, field_group in fields.items()
            ]
        )
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        # The grouped field set stays referenced, so its id is not reused meanwhile.
        self._plans[key] = (fields, plan)
        if shared_key is not None:
            _SHARED_PLANS.put(_SHARED_PLANS.plans, shared_key, (fields, plan))
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
        return (response_name, _SLOW, name, GraphQLString, None, None, field_group, None)
    field_type = field_def.type
    slow: _Entry = (response_name, _SLOW, name, field_type, None, None, field_group, None)
    if name == "__typename":
        return (response_name, _TYPENAME, name, field_type, None, None, field_group, None)
    spec = _loaded(field_def)
    if node.arguments and (spec is None or spec.keyed is None):
        return slow
    strawberry_definition = (field_def.extensions or {}).get(
        GraphQLCoreConverter.DEFINITION_BACKREF
    )
    checks = scope_checks(strawberry_definition)
    if checks is not None:
        scopes = context.granted()
        if scopes is None or field_def.args:
            return slow
        refused = [check for check in checks if check.scope not in scopes]
        if refused:
            if isinstance(field_type, GraphQLNonNull):
                return slow  # graphql-core nulls the parent
            # The first check that fails is the one graphql-core's run would report.
            return (response_name, _MASKED, name, field_type, None, None, field_group, refused[0])
        # Granted: the field is what it would be without the check.
        if not _is_plain(field_def, checked=True):
            return slow
    if spec is not None:
        # Only nullable: a deferred load's error must stop at its own field.
        if (
            spec.keyed is None
            and isinstance(field_type, GraphQLObjectType)
            and field_type.is_type_of is None
        ):
            return (response_name, _LOAD, name, field_type, None, field_type, field_group, spec)
        held = _each_type(field_type, field_group)
        if held is None:
            return slow
        each = _EachLoad(spec, field_def, parent_type)
        return (response_name, _LOAD_EACH, name, field_type, None, held, field_group, each)
    if checks is None and not _is_plain(field_def):
        return slow
    strawberry_field = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    attr = strawberry_field.python_name
    named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if isinstance(named, GraphQLObjectType):
        if named.is_type_of is not None:
            return slow
        return (response_name, _OBJECT, attr, field_type, None, named, field_group, None)
    if isinstance(named, GraphQLList):
        item = named.of_type.of_type if isinstance(named.of_type, GraphQLNonNull) else named.of_type
        if isinstance(item, GraphQLObjectType):
            if item.is_type_of is not None or _streamed(field_group):
                return slow
            return (response_name, _LIST, attr, field_type, None, item, field_group, None)
    coerce = _cached_coercion(field_type, context.is_awaitable)
    if coerce is None:
        return slow
    return (response_name, _LEAF, attr, field_type, coerce, None, field_group, None)


def _grouped_leaves(plan: list[_Entry]) -> list[_Entry]:
    """`plan` with each run of two or more _LEAF entries made one _LEAVES entry."""
    grouped: list[_Entry] = []
    run: list[_Entry] = []
    for entry in [*plan, None]:
        if entry is not None and entry[1] == _LEAF:
            run.append(entry)
            continue
        if len(run) > 1:
            first = run[0]
            grouped.append((first[0], _LEAVES, "", first[3], None, None, first[6], _Leaves(run)))
        else:
            grouped.extend(run)
        run = []
        if entry is not None:
            grouped.append(entry)
    return grouped


def _streamed(field_group: FieldDetailsList) -> bool:
    """Whether a list field asks for @stream (graphql-core's incremental delivery)."""
    return any(
        directive.name.value == "stream"
        for details in field_group
        for directive in details.node.directives or ()
    )


def _loaded(field_def: GraphQLField) -> LoadedBy | None:
    """The declaration of a field made with `schema.loaded.loaded_by`, when nothing else runs
    around its resolver (no field extension, so no permission check; no arguments, or for a
    `keyed` one only scalar arguments named in GraphQL as in Python, which strawberry hands
    to the resolver as graphql-core coerced them)."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(strawberry_field, StrawberryField)
        or type(strawberry_field).get_result is not StrawberryField.get_result
        or strawberry_field.base_resolver is None
        or strawberry_field.extensions
        or strawberry_field.is_subscription
        or field_def.subscribe is not None
    ):
        return None
    spec = loaded_by_of(strawberry_field.base_resolver.wrapped_func)
    if spec is None or not field_def.args:
        return spec
    if spec.keyed is None:
        return None
    python_names = {argument.python_name for argument in strawberry_field.arguments}
    scalars = all(
        isinstance(_named(argument.type), GraphQLScalarType) for argument in field_def.args.values()
    )
    return spec if scalars and python_names == set(field_def.args) else None


def _named(field_type: Any) -> Any:
    return field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type


def _each_type(
    field_type: GraphQLOutputType, field_group: FieldDetailsList
) -> GraphQLObjectType | None:
    """The object type a _LOAD_EACH field of `field_type` completes: the type itself or its
    list's items (possibly non-null, without is_type_of, not streamed); None for others."""
    named = _named(field_type)
    if isinstance(named, GraphQLList):
        if _streamed(field_group):
            return None
        named = _named(named.of_type)
    if isinstance(named, GraphQLObjectType) and named.is_type_of is None:
        return named
    return None


def _is_plain(field_def: GraphQLField, *, checked: bool = False) -> bool:
    """Whether the field only reads an attribute with getattr, as strawberry's basic-field
    resolver does (no resolver, no extension, no arguments). An exception handler would only
    see what getattr raises, and then graphql-core runs the field itself. `checked`: a scope
    check the caller passes (`scope_checks`) is allowed as its one extension."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return (
        isinstance(strawberry_field, StrawberryField)
        and type(strawberry_field).get_result is StrawberryField.get_result
        and getattr(field_def.resolve, "_is_default", False) is True
        and strawberry_field.base_resolver is None
        and (checked or not strawberry_field.extensions)
        and not strawberry_field.is_subscription
        and strawberry_field.default_resolver is getattr
        and not field_def.args
        and field_def.subscribe is None
    )


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
    if coerce_output_value in STRINGS_UNCHANGED:

        def unchanged(value: Any) -> Any:
            return value if type(value) is str else generic(value)

        return unchanged
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
