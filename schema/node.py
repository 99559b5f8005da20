"""Relay's `Node` interface and the opaque global ids of the types that implement it.

A global id is `base64url("<Type>:<databaseId>")` without padding: URL-safe, the same for
an object in every response, and unique across types (a `TalkEvent` and a `TalkHistory`
can share a database id, never a global one). It is encoded when `id` is first read
(`GlobalIdOnRead`), so a page whose selection does not read it encodes none.

strawberry.relay is not used: its `id` is a resolver run for each object (through
`resolve_id`), which the fast path (gateway/graphql/execution/) cannot read as a plain field,
and its `GlobalID` echoes a malformed value in its error.
"""

from __future__ import annotations

import binascii
import re
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Final

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema
from strawberry import ID

from gateway.errors import BadUserInput

# The types that implement Node: each can be read again by its database id.
NODE_TYPES: Final = frozenset({"Talk", "TalkHistory", "TalkEvent", "Customer", "Agent", "Channel"})
_LARGEST: Final = 2**63
_NUMBER: Final = re.compile(r"-?[0-9]+")
# Longest global id of any Node type ("TalkHistory:-9223372036854775808", encoded).
_MAX_LENGTH: Final = 44


def encode(type_name: str, database_id: int | str) -> str:
    """The global id of the object of `type_name` whose database id is `database_id`."""
    raw = f"{type_name}:{database_id}".encode()
    return urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(value: str, argument: str) -> tuple[str, int]:
    """The type name and database id a global id stands for. A value that is not one
    talkgate hands out (malformed, not canonical, of a type that is no Node) is
    BAD_USER_INPUT, whose message never quotes it."""
    found = _decoded(value)
    if found is None:
        raise BadUserInput(f"{argument} is not a valid id", argument=argument)
    return found


def _decoded(value: str) -> tuple[str, int] | None:
    if not 0 < len(value) <= _MAX_LENGTH or not value.isascii():
        return None
    try:
        raw = urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, colon, digits = raw.partition(":")
    if not colon or type_name not in NODE_TYPES:
        return None
    try:
        number = int(digits)
    except ValueError:
        return None
    # One spelling per object: "Talk:007", "Talk: 7" or extra base64 bits are refused.
    if not -_LARGEST <= number < _LARGEST or encode(type_name, number) != value:
        return None
    return type_name, number


def database_id(value: ID | str, argument: str, type_name: str) -> int:
    """The database id an id argument names: PipeRun's numeric id as it is, or the global
    id of an object of `type_name`. Anything else is BAD_USER_INPUT, never quoted."""
    text = str(value)
    if _NUMBER.fullmatch(text):
        number = int(text)
        if not -_LARGEST <= number < _LARGEST:
            raise BadUserInput(f"{argument} is out of range", argument=argument)
        return number
    found, number = decode(text, argument)
    if found != type_name:
        raise BadUserInput(f"{argument} is not the id of a {type_name}", argument=argument)
    return number


@strawberry.interface(description="An object that can be fetched again by its global `id`.")
class Node:
    global_id: ID = strawberry.field(
        name="id",
        description=(
            "Opaque global id, unique across types and stable; `node(id:)` fetches the "
            "object again. `databaseId` is PipeRun's own id."
        ),
    )


class GlobalIdOnRead:
    """The `id` of a Node type's object, encoded from its database id (`id` in Python)
    when first read and then kept on the object, as `schema.connections._EncodedOnRead` does
    for cursors. A non-data descriptor set on each Node class; `schema.building.build` leaves
    the field out, so the object holds no value of its own until it is read."""

    def __init__(self, type_name: str) -> None:
        self._type_name = type_name

    def __get__(self, instance: object, owner: type | None = None) -> str:
        if instance is None:
            raise AttributeError("global_id")
        values = instance.__dict__
        value = encode(self._type_name, values["id"])
        values["global_id"] = value
        return value


def without_type_checks(schema: GraphQLSchema) -> None:
    """Drop the `is_type_of` strawberry gives every type implementing an interface.

    It is an isinstance check graphql-core makes for each object, and the fast path
    (gateway/graphql/execution/) completes only types without one: a page of talks would go
    the slow way. Nothing needs it: the objects are instances of their strawberry types,
    and the interface's own `resolve_type` names the type of each from its class."""
    for name in NODE_TYPES:
        graphql_type = schema.type_map.get(name)
        if isinstance(graphql_type, GraphQLObjectType):
            graphql_type.is_type_of = None
