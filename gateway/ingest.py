"""Ingest: raw body → validated talks → store. The webhook and `talkgate ingest` both come here."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo

import orjson

from gateway.payload import PayloadRejected, validate_talks
from gateway.pubsub import TALKS, Broker
from gateway.storage import TalkStore
from gateway.storage.records import Delivery, DeliveryOutcome

log = logging.getLogger("talkgate.ingest")


@dataclass(frozen=True, slots=True)
class Body:
    """One body to ingest, where it came from, and its idempotency key if the sender gave one."""

    raw: bytes
    source: str
    key: str | None = None


class BodyRejected(Exception):
    """A body that is not a talk: 400 when not JSON, 422 when not a talk. It was dead-lettered."""

    def __init__(
        self, status: int, reason: str, errors: list[dict[str, str]], dead_letter_id: int
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors
        self.dead_letter_id = dead_letter_id


def delivery_key(body: bytes, key: str | None) -> str:
    """The sender's idempotency key, or the body's hash so identical bodies are one delivery."""
    if key:
        return "id:" + key
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Ingestor:
    """Validates bodies, stores the good ones in one transaction, dead-letters the others."""

    def __init__(
        self,
        store: TalkStore,
        zone: tzinfo,
        broker: Broker | None = None,
        *,
        on_commit: Callable[[Sequence[int]], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._zone = zone
        self._broker = broker
        # Told the changed talk ids after each commit that changed any, before the publish
        # and before the senders get their answers (a response cache invalidates here).
        self._on_commit = on_commit

    async def ingest(self, body: Body) -> DeliveryOutcome:
        """Store one body; raises BodyRejected (after dead-lettering it) when it is not a talk."""
        [outcome] = await self.ingest_many([body])
        if isinstance(outcome, BodyRejected):
            raise outcome
        return outcome

    async def ingest_many(self, bodies: Sequence[Body]) -> list[DeliveryOutcome | BodyRejected]:
        """Store the valid bodies together; each invalid one is dead-lettered and reported."""
        results: list[DeliveryOutcome | BodyRejected | None] = []
        deliveries: list[Delivery] = []
        for body in bodies:
            try:
                data = orjson.loads(body.raw)
            except orjson.JSONDecodeError as exc:
                errors = [{"loc": "", "msg": str(exc)}]
                results.append(await self.reject(body, 400, "the body is not JSON", errors))
                continue
            try:
                talks = validate_talks(data, zone=self._zone)
            except PayloadRejected as exc:
                results.append(await self.reject(body, 422, exc.reason, exc.errors))
                continue
            key = delivery_key(body.raw, body.key)
            deliveries.append(Delivery(key=key, source=body.source, body=body.raw, talks=talks))
            results.append(None)
        stored = await self._store.ingest(deliveries) if deliveries else []
        changed = list(dict.fromkeys(i for o in stored for i in o.changed_ids))
        if changed and self._on_commit is not None:
            await self._on_commit(changed)
        if self._broker is not None:
            # Published after the commit: a subscriber reading the talk finds the change.
            for talk_id in changed:
                await self._broker.publish(TALKS, {"id": talk_id})
        outcomes = iter(stored)
        return [r if r is not None else next(outcomes) for r in results]

    async def reject(
        self,
        body: Body,
        status: int,
        reason: str,
        errors: list[dict[str, str]],
        *,
        body_size: int | None = None,
        truncated: bool = False,
    ) -> BodyRejected:
        dead_letter_id = await self._store.add_dead_letter(
            source=body.source,
            reason=reason,
            errors=errors,
            body=body.raw,
            body_size=len(body.raw) if body_size is None else body_size,
            truncated=truncated,
        )
        log.warning(
            "body rejected",
            extra={"source": body.source, "reason": reason, "dead_letter_id": dead_letter_id},
        )
        return BodyRejected(status, reason, errors, dead_letter_id)
