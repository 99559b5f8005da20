"""Functions generated for plans seen: the leaves of a run completed in one call (`fill`),
and a list item's whole plan completed in one call (`complete`), written out level by level."""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any, Final, cast

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.pyutils import Undefined

from gateway.graphql.execution.records import (
    _INERT_TYPES,
    _LEAF,
    _MAX_INT,
    _MIN_INT,
    _MISS,
    _OBJECT,
    _TYPENAME,
    Coerce,
    _Complete,
    _Entry,
    _inert,
    _Shape,
    _ShapeField,
)
from schema.contracts import FROZEN_SNAPSHOTS, STRINGS_UNCHANGED


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
    key = tuple((e.response_name, e.attr, e.field_type, e.coerce) for e in entries)
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


_COMPLETERS: dict[tuple[_Shape, Callable[[Any], bool]], _Complete] = {}
_COMPLETERS_KEPT: Final = 256


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
    fields = shape.fields
    pure = 0
    while pure < len(fields) and _pure(fields[pure]):
        pure += 1
    if depth == 0 or pure < 2:
        lines.append(f"{pad}{res} = {{}}")
        return _write_fields(shape, fields, 0, depth, lines, namespace, pad)
    # The selection's key on the object: one object for each shape of what is kept (hashing
    # the shape itself at every lookup would cost more than completing the fields).
    key = f"K{depth}_{len(namespace)}"
    namespace[key] = _MEMO_KEYS.setdefault((shape.type_name, fields[:pure]), object())
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


def _pure(field: _ShapeField) -> bool:
    """Whether a field of a shape completes from its object alone (no load below it)."""
    kind, nested = field.kind, field.nested
    return kind in (_LEAF, _TYPENAME) or (
        kind == _OBJECT and nested is not None and all(map(_pure, nested.fields))
    )


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
            lines.append(f"{pad}{res}[{response_name!r}] = {shape.type_name!r}")
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
            assert nested is not None
            assert nested.loaded is not None
            loader, key_attr, slot = nested.loaded
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
