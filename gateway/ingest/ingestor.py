"""Ingest: raw body → validated talks → store. The webhook and `talkgate ingest` both come here."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

import orjson

from gateway.ingest.validation import PayloadRejected, validate_talks
from gateway.nesting import text_nests_deeper
from gateway.replicas.pubsub import TALKS, Broker
from gateway.settings import Settings
from gateway.storage import StoreUnavailable, TalkStore
from gateway.storage.documents import MAX_ERRORS, NormalizedTalk
from gateway.storage.records import (
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    Refusal,
    Replayed,
    dead_letter_reason,
)

log = logging.getLogger("talkgate.ingest")

# TALKGATE_MAX_JSON_DEPTH's default, for callers without settings (tests, benchmarks).
DEFAULT_MAX_DEPTH: int = Settings.model_fields["max_json_depth"].default
# Most characters of a parser's message kept in an error.
_MSG_CHARS = 500

# Most bodies one group commit stores; more wait for the next transaction.
_GROUP_LIMIT = 256

# A delivery waiting for its group commit, and where its caller waits for the outcome.
_Waiting = tuple[Delivery, "asyncio.Future[DeliveryOutcome]"]


@dataclass(frozen=True, slots=True)
class Body:
    """One body to ingest, where it came from, and its idempotency key if the sender gave one."""

    raw: bytes
    source: str
    key: str | None = None


class BodyRejected(Exception):
    """A body that is not a talk: 400 when not JSON, 422 when not a talk. It was dead-lettered.

    `errors` are the first MAX_ERRORS; `error_count` how many were found, `truncated` whether
    validation stopped before the end, `error_count` then a lower bound (`PayloadRejected`).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        errors: list[dict[str, str]],
        dead_letter_id: int,
        *,
        error_count: int | None = None,
        truncated: bool = False,
        id_conflict: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors
        self.dead_letter_id = dead_letter_id
        self.error_count = len(errors) if error_count is None else error_count
        self.truncated = truncated
        # Refused by the store: its messages or events are another talk's (`Refusal`).
        self.id_conflict = id_conflict


@dataclass(frozen=True, slots=True)
class Valid:
    """A body that holds talks, ready to store."""

    talks: list[NormalizedTalk]


@dataclass(frozen=True, slots=True)
class Invalid:
    """A body that is not a talk, and why: the status and reason it is rejected with."""

    status: int
    reason: str
    errors: list[dict[str, str]]
    error_count: int | None = None
    truncated: bool = False


def check_body(raw: bytes, zone: tzinfo, max_depth: int = DEFAULT_MAX_DEPTH) -> Valid | Invalid:
    """Parse and validate one body. Pure: `talkgate ingest` runs it in worker processes.

    Never raises for what a body holds: every body is Valid or Invalid, so every refused one
    can be dead-lettered (a body nested past orjson's 1,024 levels, or not UTF-8, is not
    JSON; one nested past `max_depth` is not a talk)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Invalid(400, "the body is not JSON", [{"loc": "", "msg": str(exc)[:_MSG_CHARS]}])
    if text_nests_deeper(raw, max_depth):  # measured on the text orjson accepted
        reason = f"the body nests deeper than {max_depth} levels"
        return Invalid(422, reason, [{"loc": "", "msg": reason}])
    try:
        talks = validate_talks(data, zone=zone)
    except PayloadRejected as exc:
        return Invalid(422, exc.reason, exc.errors, exc.error_count, exc.truncated)
    except (ValueError, TypeError, RecursionError) as exc:  # a bug, but the body is kept
        log.exception("a body could not be validated")
        reason = "the body could not be read as talks"
        return Invalid(422, reason, [{"loc": "", "msg": type(exc).__name__}])
    return Valid(talks)


def delivery_key(body_sha256: str, key: str | None) -> str:
    """The sender's idempotency key, or the body's hash so identical bodies are one delivery."""
    if key:
        return "id:" + key
    return "sha256:" + body_sha256


class Ingestor:
    """Validates bodies, stores the good ones in one transaction, dead-letters the others."""

    def __init__(
        self,
        store: TalkStore,
        zone: tzinfo,
        broker: Broker | None = None,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self._store = store
        self._zone = zone
        self._max_depth = max_depth
        self._broker = broker
        # Bodies waiting for the next group commit, and the task committing them.
        self._waiting: list[_Waiting] = []
        self._committer: asyncio.Task[None] | None = None

    async def ingest(self, body: Body) -> DeliveryOutcome:
        """Store one body; raises BodyRejected (after dead-lettering it) when it is not a talk.

        Bodies validated while a transaction commits wait for it and then go together in
        the next one (group commit: one transaction, one sync to disk, for all of them).
        Each caller is answered only once the transaction holding its body committed, with
        its own outcome; a failure of that transaction reaches every caller in it.
        """
        prepared = await self._prepare(body)
        if isinstance(prepared, BodyRejected):
            raise prepared
        answer: asyncio.Future[DeliveryOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((prepared, answer))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_waiting())
        try:
            outcome = await answer
        except StoreUnavailable:
            raise
        except Exception as exc:
            # Not the store being away, and the body passed validation: whatever it was,
            # the body is kept (never a 500 that the sender retries forever, with nothing
            # kept), and the traceback goes to the log only.
            log.exception("a valid body could not be stored")
            reason = "the body could not be stored"
            raise await self.reject(
                body, 422, reason, [{"loc": "", "msg": type(exc).__name__}]
            ) from None
        if outcome.refused is not None:
            raise _refused(outcome.refused)
        return outcome

    async def ingest_many(self, bodies: Sequence[Body]) -> list[DeliveryOutcome | BodyRejected]:
        """Store the valid bodies together; each invalid one is dead-lettered and reported."""
        return await self._store_prepared([await self._prepare(body) for body in bodies])

    async def ingest_checked(
        self, bodies: Sequence[Body], checks: Sequence[Valid | Invalid]
    ) -> list[DeliveryOutcome | BodyRejected]:
        """`ingest_many` of bodies already checked (`check_body`, each in the same order)."""
        return await self._store_prepared(
            [await self._resolve(body, check) for body, check in zip(bodies, checks, strict=True)]
        )

    async def _store_prepared(
        self, results: list[Delivery | BodyRejected]
    ) -> list[DeliveryOutcome | BodyRejected]:
        deliveries = [r for r in results if isinstance(r, Delivery)]
        stored = await self._store.ingest(deliveries) if deliveries else []
        await self._committed(stored)
        outcomes = iter(stored)
        return [r if isinstance(r, BodyRejected) else _answer(next(outcomes)) for r in results]

    async def _prepare(self, body: Body) -> Delivery | BodyRejected:
        """The body as a delivery to store, or its rejection (already dead-lettered)."""
        return await self._resolve(body, check_body(body.raw, self._zone, self._max_depth))

    async def _resolve(self, body: Body, check: Valid | Invalid) -> Delivery | BodyRejected:
        if isinstance(check, Invalid):
            return await self.reject(
                body,
                check.status,
                check.reason,
                check.errors,
                error_count=check.error_count,
                errors_truncated=check.truncated,
            )
        # Hashed here, not with the check: `talkgate ingest`'s workers are its busiest part.
        digest = hashlib.sha256(body.raw).hexdigest()
        return Delivery(
            key=delivery_key(digest, body.key),
            source=body.source,
            body=body.raw,
            body_sha256=digest,
            talks=check.talks,
        )

    async def _committed(self, stored: Sequence[DeliveryOutcome]) -> None:
        """Tell the subscribers what a commit changed."""
        changed = list(dict.fromkeys(i for o in stored for i in o.changed_ids))
        if self._broker is not None:
            # Published after the commit: a subscriber reading the talk finds the change.
            for talk_id in changed:
                await self._broker.publish(TALKS, {"id": talk_id})

    async def _commit_waiting(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[:_GROUP_LIMIT]
                del self._waiting[:_GROUP_LIMIT]
                await self._commit_group(group)
        except BaseException as exc:  # cancelled: nothing is left to commit the others
            for _, answer in self._waiting:
                _fail(answer, exc)
            self._waiting.clear()
            raise
        finally:
            self._committer = None

    async def _commit_group(self, group: list[_Waiting]) -> None:
        try:
            stored = await self._store.ingest([delivery for delivery, _ in group])
        except StoreUnavailable as exc:
            for _, answer in group:
                _fail(answer, exc)
            return
        except Exception as exc:
            if len(group) == 1:
                _fail(group[0][1], exc)
                return
            # Not the store being away: one body may be at fault. Each alone, then, so the
            # others are answered as if they had come alone.
            for waiting in group:
                await self._commit_group([waiting])
            return
        except BaseException as exc:
            for _, answer in group:
                _fail(answer, exc)
            raise
        try:
            await self._committed(stored)
        except Exception as exc:  # committed, but the callers hear of the failure as before
            for _, answer in group:
                _fail(answer, exc)
            return
        except BaseException as exc:
            for _, answer in group:
                _fail(answer, exc)
            raise
        for (_, answer), outcome in zip(group, stored, strict=True):
            if not answer.done():  # its caller may have gone away
                answer.set_result(outcome)

    async def replay(self, letter: DeadLetter) -> Replayed:
        """`letter`'s body through the webhook's path again. Accepted (a duplicate of a
        delivery stored since counts too): stored as a delivery, subscribers told, and the
        dead letter removed. Refused again: the dead letter kept, with its new reason. A body
        kept only in part cannot be replayed: it stays as it is."""
        if letter.truncated:
            return Replayed(letter.id, False, "only the start of the body was kept")
        body = Body(letter.body, letter.source)
        check = check_body(body.raw, self._zone, self._max_depth)
        if isinstance(check, Invalid):
            reason, errors, _ = kept_errors(
                check.reason, check.errors, check.error_count, check.truncated
            )
            await self._store.update_dead_letter(letter.id, reason=reason, errors=errors)
            return Replayed(letter.id, False, reason)
        delivery = await self._resolve(body, check)
        assert isinstance(delivery, Delivery)  # a Valid check resolves to its delivery
        [outcome] = await self._store.ingest([delivery])
        if outcome.refused is not None:
            # Refused in the store (a message or event id held by another talk): the refusal
            # made a dead letter of its own; the replayed one takes its reason instead.
            refusal = outcome.refused
            await self._store.remove_dead_letters([refusal.dead_letter_id])
            await self._store.update_dead_letter(
                letter.id, reason=refusal.reason, errors=refusal.errors
            )
            return Replayed(letter.id, False, refusal.reason)
        await self._committed([outcome])
        await self._store.remove_dead_letters([letter.id])
        return Replayed(letter.id, True, "", tuple(outcome.talk_ids))

    async def reject(
        self,
        body: Body,
        status: int,
        reason: str,
        errors: list[dict[str, str]],
        *,
        body_size: int | None = None,
        truncated: bool = False,
        error_count: int | None = None,
        errors_truncated: bool = False,
    ) -> BodyRejected:
        """Dead-letter `body` (its raw bytes whole, unless `truncated`) with its reason and at
        most MAX_ERRORS of its errors; the rejection to answer with."""
        kept, errors, count = kept_errors(reason, errors, error_count, errors_truncated)
        dead_letter_id = await self._store.add_dead_letter(
            source=body.source,
            reason=kept,
            errors=errors,
            body=body.raw,
            body_size=len(body.raw) if body_size is None else body_size,
            truncated=truncated,
        )
        log.warning(
            "body rejected",
            extra={"source": body.source, "reason": reason, "dead_letter_id": dead_letter_id},
        )
        return BodyRejected(
            status, reason, errors, dead_letter_id, error_count=count, truncated=errors_truncated
        )


def kept_errors(
    reason: str, errors: list[dict[str, str]], error_count: int | None, truncated: bool
) -> tuple[str, list[dict[str, str]], int]:
    """What a dead letter keeps of a refusal: its reason saying how many errors there were,
    the first MAX_ERRORS of them, and their count."""
    listed = errors[:MAX_ERRORS]
    count = max(len(listed), error_count or 0)
    return dead_letter_reason(reason, len(listed), count, truncated), listed, count


def _refused(refusal: Refusal) -> BodyRejected:
    log.warning(
        "body refused: %s",
        refusal.reason,
        extra={"dead_letter_id": refusal.dead_letter_id, "errors": refusal.error_count},
    )
    return BodyRejected(
        422,
        refusal.reason,
        refusal.errors,
        refusal.dead_letter_id,
        error_count=refusal.error_count,
        id_conflict=True,
    )


def _answer(outcome: DeliveryOutcome) -> DeliveryOutcome | BodyRejected:
    return outcome if outcome.refused is None else _refused(outcome.refused)


def _fail(answer: asyncio.Future[DeliveryOutcome], exc: BaseException) -> None:
    if answer.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        answer.cancel()
    else:
        answer.set_exception(exc)
