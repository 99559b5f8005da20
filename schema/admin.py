"""Types only an `admin` key sees: what was received, raw, and what was refused."""

from __future__ import annotations

import strawberry
from strawberry import ID

from schema.scalars import UtcDateTime


@strawberry.type(description="Why one field of a refused body was invalid.")
class FieldError:
    loc: str = strawberry.field(
        description="Path of the field, dot-separated (array indexes included); empty for the body."
    )
    msg: str = strawberry.field(description="What is wrong with it.")


@strawberry.type(description="A webhook or file body talkgate refused, kept with its reason.")
class DeadLetter:
    id: ID = strawberry.field(description="Id of the dead letter.")
    received_at: UtcDateTime = strawberry.field(description="When the body arrived.")
    source: str = strawberry.field(
        description="Where it came from: webhook, or file:NAME:LINE for `talkgate ingest`."
    )
    reason: str = strawberry.field(description="Why it was refused.")
    errors: list[FieldError] = strawberry.field(description="Field-by-field reasons, if any.")
    body: str = strawberry.field(
        description="The body as received (UTF-8; invalid bytes shown as U+FFFD)."
    )
    body_size: int = strawberry.field(description="Size of the body in bytes, as received.")
    truncated: bool = strawberry.field(
        description="Whether only the start of the body was kept (bodies over the size limit)."
    )


@strawberry.type(
    description=(
        "What `replayDeadLetters` did: the dead letters whose bodies were accepted (they left"
        " the dead letters, kept as deliveries), and those refused again, with their new reason."
    )
)
class DeadLetterReplay:
    accepted: list[ID] = strawberry.field(
        description="Ids of the dead letters accepted this time; they are gone from deadLetters."
    )
    still_refused: list[DeadLetter] = strawberry.field(
        description=(
            "The dead letters refused again (or kept only in part, which cannot be replayed),"
            " each with its reason now."
        )
    )
