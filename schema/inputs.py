"""Input types of queries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import strawberry
from strawberry import ID
from strawberry.types.arguments import InputContext

from schema.conversion import unchanged
from schema.enums import TalkStatus
from schema.scalars import UtcDateTime

C = TypeVar("C", bound=type)

# A field of an input: its GraphQL name, its Python name, and its type when its value needs
# converting (None: strawberry would hand it over as it is).
_InputField = tuple[str, str, Any]
# Plans by schema configuration (a schema's config lives as long as the schema).
_PLANS_KEPT: Final = 16


def built_directly(cls: C) -> C:
    """Build the input `cls` from its GraphQL value as strawberry would, without looking up
    each field's name and type again for every value (`from_input`, strawberry's hook).

    Strawberry's conversion walks every field of the type for every argument: it makes the
    field's GraphQL name, resolves its type annotation, and descends into it, to hand over
    a scalar or an enum member unchanged. For a filter of thirteen fields that was a tenth
    of a page request. Here that is worked out once per schema: the fields holding a scalar
    or an enum (optional or not) take their value as it is, and any other field (a list, a
    nested input, a `Maybe`, a GlobalID) is converted by strawberry, as before.
    """
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    plans: dict[int, tuple[object, dict[str, None], list[_InputField]]] = {}

    def plan(context: InputContext) -> tuple[dict[str, None], list[_InputField]]:
        found = plans.get(id(context.config))
        if found is not None and found[0] is context.config:
            return found[1], found[2]
        # As strawberry does for inputs: a field without a default is null unless given.
        nulls = {
            f.python_name: None
            for f in definition.fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        fields: list[_InputField] = []
        for field in definition.fields:
            field_type = field.resolve_type(type_definition=definition)
            fields.append(
                (
                    context.config.name_converter.from_field(field),
                    field.python_name,
                    None if unchanged(field_type, context.scalar_registry) else field_type,
                )
            )
        if len(plans) >= _PLANS_KEPT:
            plans.clear()
        plans[id(context.config)] = (context.config, nulls, fields)
        return nulls, fields

    def from_input(target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        nulls, fields = plan(context)
        kwargs: dict[str, Any] = dict(nulls)
        for graphql_name, python_name, field_type in fields:
            if graphql_name in value:
                given = value[graphql_name]
                kwargs[python_name] = (
                    given
                    if field_type is None
                    else context.convert(given, field_type, graphql_name)
                )
        return target(**kwargs)

    definition.from_input = from_input
    return cls


@built_directly
@strawberry.input(description="Narrows a list of talks; every field given must match.")
class TalkFilter:
    customer_id: ID | None = strawberry.field(
        default=None, description="Only talks of this customer (its global `id` or `databaseId`)."
    )
    agent_id: ID | None = strawberry.field(
        default=None,
        description="Only talks whose agent in charge is this one (global `id` or `databaseId`).",
    )
    queue_id: ID | None = strawberry.field(default=None, description="Only talks of this queue.")
    channel_id: ID | None = strawberry.field(
        default=None, description="Only talks of this channel (its global `id` or `databaseId`)."
    )
    tracking_number: str | None = strawberry.field(
        default=None, description="Only the talk with this protocol number."
    )
    external_protocol: str | None = strawberry.field(
        default=None, description="Only talks with this external protocol number."
    )
    created_from: UtcDateTime | None = strawberry.field(
        default=None, description="Only talks created at or after this moment (inclusive)."
    )
    created_to: UtcDateTime | None = strawberry.field(
        default=None, description="Only talks created before this moment (exclusive)."
    )
    status: TalkStatus | None = strawberry.field(
        default=None, description="Only talks in this status."
    )
    was_success: bool | None = strawberry.field(
        default=None, description="Only talks closed with (true) or without (false) success."
    )
    is_critical: bool | None = strawberry.field(
        default=None, description="Only critical (true) or non-critical (false) talks."
    )
    text: str | None = strawberry.field(
        default=None,
        description=(
            "Only talks whose messages contain every word of this text (whole words, "
            "case and accents ignored)."
        ),
    )
