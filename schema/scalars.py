"""Custom scalars: datetimes leave talkgate as ISO 8601 strings in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

from gateway.utc import iso
from schema.contracts import strings_unchanged

UtcDateTime = NewType("UtcDateTime", str)


@strings_unchanged  # the fast execution path then completes stored strings inline
def _serialize(value: object) -> str:
    # Stored documents already hold ISO 8601 UTC strings; they pass through untouched.
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _parse(value: object) -> UtcDateTime:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise GraphQLError("DateTime must be an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return UtcDateTime(iso(moment))
    except OverflowError:
        raise GraphQLError("DateTime is out of range") from None


SCALARS: dict[object, ScalarDefinition] = {
    UtcDateTime: strawberry.scalar(
        name="DateTime",
        description=(
            "A moment in time as ISO 8601 in UTC, e.g. 2025-09-08T14:01:17Z. As input, an "
            "offset may be given; a moment without one is read as UTC."
        ),
        serialize=_serialize,
        parse_value=_parse,
    )
}
