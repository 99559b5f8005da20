"""Enumerations of the talk domain."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="How the talk was opened (PipeRun `initiation_type`).")
class InitiationType(Enum):
    COMMENT = strawberry.enum_value(
        "c", description="A comment on one of the company's Instagram or Facebook stories."
    )
    MENTION = strawberry.enum_value(
        "m", description="A mention in one of the customer's Instagram or Facebook stories."
    )
    NORMAL = strawberry.enum_value("n", description="A normal conversation.")
    REACTION = strawberry.enum_value(
        "r", description="A reaction to one of the company's Instagram or Facebook stories."
    )


@strawberry.enum(description="Where a talk stands, derived from its fields.")
class TalkStatus(Enum):
    WAITING = strawberry.enum_value(
        "WAITING", description="Not finished and flagged as waiting (`is_waiting`)."
    )
    IN_PROGRESS = strawberry.enum_value("IN_PROGRESS", description="Not finished and not waiting.")
    FINISHED = strawberry.enum_value("FINISHED", description="Has a `finishedAt` moment.")


@strawberry.enum(description="Direction of a message within a talk.")
class MessageType(Enum):
    IN = strawberry.enum_value("in", description="Sent by the customer.")
    OUT = strawberry.enum_value("out", description="Sent to the customer by an agent or bot.")
    SYSTEM = strawberry.enum_value(
        "system", description="Written by the platform itself (queue changes, notes)."
    )


@strawberry.enum(description="Orderings of a list of talks.")
class TalkOrder(Enum):
    CREATED_AT_DESC = strawberry.enum_value(
        "CREATED_AT_DESC", description="Newest first by `createdAt`, then by id."
    )
    CREATED_AT_ASC = strawberry.enum_value(
        "CREATED_AT_ASC", description="Oldest first by `createdAt`, then by id."
    )
    ID_DESC = strawberry.enum_value("ID_DESC", description="Greatest talk id first.")
    ID_ASC = strawberry.enum_value("ID_ASC", description="Smallest talk id first.")
