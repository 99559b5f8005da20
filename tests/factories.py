"""Small builders of PipeRun payloads for tests, all derived from the real example."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from gateway.demo import example_talk
from gateway.storage.documents import Doc, NormalizedTalk

Payload = dict[str, Any]


def talk(talk_id: int = 114603, **fields: Any) -> Payload:
    """The documented example payload with another id (messages and events follow it)."""
    payload = copy.deepcopy(example_talk())
    payload["id"] = talk_id
    payload["tracking_number"] = f"TN{talk_id}"
    for history in payload["talk_histories"]:
        history["talk_id"] = talk_id
        history["id"] = _child_id(history["id"], talk_id)
    for event in payload["talk_events"]:
        event["talk_id"] = talk_id
        event["id"] = _child_id(event["id"], talk_id)
    payload.update(fields)
    return payload


def _child_id(example_id: int, talk_id: int) -> int:
    """The id of one of the example's messages or events in talk `talk_id`: the example's own
    for talk 114603, 100 apart per talk, and positive (PipeRun ids are) for small talk ids."""
    shifted = example_id + (talk_id - 114603) * 100
    return shifted if shifted > 0 else example_id + talk_id * 100 + 10**12


def message(message_id: int, text: str, *, talk_id: int = 114603, kind: str = "in") -> Payload:
    """A message shaped like the example's first one."""
    history: Payload = copy.deepcopy(example_talk()["talk_histories"][0])
    history.update(id=message_id, talk_id=talk_id, message=text, type=kind)
    return history


def event(event_id: int, *, talk_id: int = 114603, success: bool = False) -> Payload:
    item: Payload = copy.deepcopy(example_talk()["talk_events"][0])
    item.update(id=event_id, talk_id=talk_id, is_success=success)
    return item


def snapshot(
    talk_id: int,
    message_ids: list[int],
    *,
    finished: bool = False,
    **fields: Any,
) -> Payload:
    """A snapshot of a talk holding exactly these messages, finished or not."""
    payload = talk(talk_id, **fields)
    payload["talk_histories"] = [message(i, f"message {i}", talk_id=talk_id) for i in message_ids]
    payload["finished_at"] = "2025-09-08 11:30:00" if finished else None
    return payload


@dataclass(frozen=True, slots=True)
class DecodedTalk:
    """A `NormalizedTalk` with each document decoded from the text the store is given."""

    id: int
    doc: Doc
    messages: list[Doc]
    events: list[Doc]
    customer: Doc | None
    users: list[Doc]
    channels: list[Doc]
    agent_ids: frozenset[int]


def decoded(talk: NormalizedTalk) -> DecodedTalk:
    return DecodedTalk(
        id=talk.id,
        doc=talk.doc.item,
        messages=[m.item for m in talk.messages],
        events=[e.item for e in talk.events],
        customer=None if talk.customer is None else talk.customer.item,
        users=[u.item for u in talk.users],
        channels=[ch.item for ch in talk.channels],
        agent_ids=talk.agent_ids,
    )
