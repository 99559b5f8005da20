"""What the store takes and gives: deliveries, filters, pages. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from gateway.payload import NormalizedTalk

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted body: its idempotency key, where it came from, the raw bytes and their
    sha256 (hex), its talks."""

    key: str
    source: str
    body: bytes
    body_sha256: str
    talks: list[NormalizedTalk]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What storing a delivery did: `duplicate` when its key was seen before."""

    key: str
    duplicate: bool
    talk_ids: list[int]
    changed_ids: list[int]


class TalkOrder(Enum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    ID_DESC = "ID_DESC"
    ID_ASC = "ID_ASC"


@dataclass(frozen=True, slots=True)
class TalkQuery:
    """Filters over talks; every field narrows, None means "any"."""

    customer_id: int | None = None
    agent_id: int | None = None
    queue_id: int | None = None
    channel_id: int | None = None
    tracking_number: str | None = None
    external_protocol: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    status: str | None = None
    was_success: bool | None = None
    is_critical: bool | None = None
    text: str | None = None
    talk_id: int | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`first` items after the opaque `after` cursor."""

    first: int
    after: str | None = None


@dataclass(slots=True)
class Page:
    """One page of documents, each with its opaque cursor; for a page of talks read
    `with_customers`, the customers of its talks too, by id."""

    items: list[tuple[str, Doc]] = field(default_factory=list)
    has_next: bool = False
    customers: dict[int, Doc] = field(default_factory=dict)

    @property
    def end_cursor(self) -> str | None:
        return self.items[-1][0] if self.items else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A body talkgate could not accept, kept with the reason so nothing sent is lost."""

    id: int
    received_at: str
    source: str
    reason: str
    errors: list[dict[str, str]]
    body: bytes
    body_size: int
    truncated: bool
