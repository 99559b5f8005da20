"""What the store keeps of a talk: its documents, as JSON text with the few fields it reads.

The webhook's payload model (`gateway.ingest.payload`) validates a talk into a `NormalizedTalk`;
the stores write its `Document`s and read them back as `Doc` dicts, and the GraphQL types
are built from those dicts. All three import this module, so a store or a schema type is
imported without the payload's pydantic validators. (The decoded documents a store keeps in
memory are `gateway.storage.docs`'s cache.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = [
    "CHANNEL_FIELDS",
    "CUSTOMER_FIELDS",
    "EVENT_FIELDS",
    "MAX_ERRORS",
    "MESSAGE_FIELDS",
    "TALK_FIELDS",
    "USER_FIELDS",
    "Doc",
    "Document",
    "NormalizedTalk",
    "dumps_doc",
    "talk_status",
]

# Most errors a rejection lists (the webhook's answer, the dead letter, a batch's id
# conflicts); see `gateway.ingest.validation.validated_items`.
MAX_ERRORS = 100

Doc = dict[str, Any]


def dumps_doc(doc: Doc) -> str:
    """A document as stored: JSON with its keys sorted, so that equal documents are equal text."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


# The fields a store reads from each kind of document, besides its id and its text.
TALK_FIELDS = (
    "customer_id",
    "agent_id",
    "queue_id",
    "channel_id",
    "tracking_number",
    "external_protocol",
    "created_at",
    "finished_at",
    "is_waiting",
    "was_success",
    "is_critical",
)
MESSAGE_FIELDS = ("user_id", "message")
EVENT_FIELDS: tuple[str, ...] = ()
CUSTOMER_FIELDS = ("name", "external_id")
USER_FIELDS = ("login",)
CHANNEL_FIELDS: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Document:
    """One document to store: its id, its text (`dumps_doc`), and `fields`, the values of the
    fields the store reads from it (its kind's `*_FIELDS`, None when absent).

    Made once, where the talk is validated: a store writes and compares the text and reads
    `fields`, and never encodes nor decodes the document itself.
    """

    id: int
    text: str
    fields: Doc

    @classmethod
    def of(cls, doc: Doc, names: tuple[str, ...]) -> Document:
        return cls(doc["id"], dumps_doc(doc), {name: doc.get(name) for name in names})

    @property
    def item(self) -> Doc:
        """The whole document, decoded from its text."""
        return orjson.loads(self.text)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class NormalizedTalk:
    """A validated talk split into the documents the store keeps, datetimes in UTC ISO 8601."""

    id: int
    doc: Document
    messages: list[Document]
    events: list[Document]
    customer: Document | None
    users: list[Document]
    channels: list[Document]
    agent_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def latest_message_id(self) -> int:
        return max((m.id for m in self.messages), default=0)

    @property
    def finished(self) -> bool:
        return self.doc.fields["finished_at"] is not None


def talk_status(doc: Doc) -> Literal["WAITING", "IN_PROGRESS", "FINISHED"]:
    """The derived state of a talk: finished once it has `finished_at`, else waiting or not."""
    if doc.get("finished_at") is not None:
        return "FINISHED"
    if doc.get("is_waiting"):
        return "WAITING"
    return "IN_PROGRESS"
