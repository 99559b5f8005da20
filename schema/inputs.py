"""Input types of queries."""

from __future__ import annotations

import strawberry
from strawberry import ID

from schema.enums import TalkStatus
from schema.scalars import UtcDateTime


@strawberry.input(description="Narrows a list of talks; every field given must match.")
class TalkFilter:
    customer_id: ID | None = strawberry.field(
        default=None, description="Only talks of this customer."
    )
    agent_id: ID | None = strawberry.field(
        default=None, description="Only talks whose agent in charge is this one."
    )
    queue_id: ID | None = strawberry.field(default=None, description="Only talks of this queue.")
    channel_id: ID | None = strawberry.field(
        default=None, description="Only talks of this channel."
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
