"""`POST /webhooks/talks`: PipeRun pushes talks here."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth import KeyRing, principal
from gateway.errors import BadUserInput, Forbidden, ServiceUnavailable, Unauthenticated
from gateway.http.request_body import ClientDisconnect, read_limited
from gateway.http.state import state_of
from gateway.ingest.ingestor import Body, BodyRejected
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.signatures import secret_bytes, verify
from gateway.storage import StoreUnavailable
from gateway.storage.records import DeliveryOutcome

log = logging.getLogger("talkgate.webhook")

_OUTCOMES = {
    202: "accepted",
    400: "not_json",
    401: "unauthorized",
    403: "forbidden",
    408: "too_slow",
    413: "too_large",
    422: "invalid",
    503: "store_unavailable",
}

# Kept of an oversized body in the dead-letter table: enough to see what it was.
_OVERSIZE_SAMPLE = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Auth:
    ok: bool
    needs_signature: bool = False
    # A valid API key without `webhooks:write`: known, but not allowed (403, not 401).
    lacks_scope: bool = False


# Every refusal says its kind as GraphQL errors do (`extensions.code` there, `code` here).
_CODES = {
    400: BadUserInput.code,
    401: Unauthenticated.code,
    403: Forbidden.code,
    408: BadUserInput.code,
    413: BadUserInput.code,
    422: BadUserInput.code,
    503: ServiceUnavailable.code,
}


def _error(status: int, reason: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": reason, "code": _CODES[status], **extra}, status_code=status)


def _accepted(outcome: DeliveryOutcome) -> JSONResponse:
    answer = {
        "accepted": len(outcome.talk_ids),
        "ids": outcome.talk_ids,
        "duplicate": outcome.duplicate,
    }
    return JSONResponse(answer, status_code=202)


class TalkWebhook:
    """Authenticates a delivery, reads it within the size limit, and ingests it."""

    def __init__(self, settings: Settings, keys: KeyRing, metrics: Metrics) -> None:
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
        # The one in use first; every one is accepted (a rotation). (): none set.
        self._secrets = tuple(s.encode() for s in settings.webhook_secrets)

    async def handle(self, request: Request) -> Response:
        response, outcome = await self._receive(request)
        if outcome is None:
            outcome = _OUTCOMES.get(response.status_code, str(response.status_code))
        self.metrics.labelled(self.metrics.webhooks, outcome).inc()
        return response

    async def _receive(self, request: Request) -> tuple[Response, str | None]:
        """The answer, and its outcome for the metric when the status does not say it."""
        try:
            answer = await self._answer(request)
        except BodyRejected as exc:
            response = _error(
                exc.status,
                exc.reason,
                errors=exc.errors,
                errorCount=exc.error_count,
                errorCountExact=not exc.truncated,
                deadLetterId=exc.dead_letter_id,
            )
            return response, "id_conflict" if exc.id_conflict else None
        if isinstance(answer, DeliveryOutcome):
            return _accepted(answer), "duplicate" if answer.duplicate else None
        return answer, None

    async def _answer(self, request: Request) -> Response | DeliveryOutcome:
        """The answer to a delivery refused, or the outcome of one stored."""
        ingestor = state_of(request.scope)["ingestor"]
        auth = self._authenticate_without_body(request)
        if auth.lacks_scope:
            return _error(403, "the API key lacks the webhooks:write scope")
        if not auth.ok and not auth.needs_signature:
            return _error(401, "missing or wrong webhook credentials")

        limit = self.settings.webhook_max_bytes
        declared = request.headers.get("content-length", "")
        timeout = self.settings.body_timeout_s
        try:
            async with asyncio.timeout(timeout):
                body, size = await read_limited(request.receive, limit)
        except ClientDisconnect:
            return _error(400, "the client went away before the body was read")
        except TimeoutError:
            # A body trickled in slowly holds a connection as a slow header does; nothing
            # whole arrived, so there is nothing to keep.
            response = _error(408, f"the request body did not arrive within {timeout:g} s")
            response.headers["Connection"] = "close"
            return response
        oversize = (declared.isdigit() and int(declared) > limit) or size > limit

        if auth.needs_signature:
            if oversize:  # cannot be verified without the whole body: store nothing
                return _error(413, f"the body is over {limit} bytes")
            if not self._signature_ok(request, body):
                return _error(401, "missing or wrong webhook credentials")

        source = "webhook"
        key = request.headers.get("webhook-id") if auth.needs_signature else None
        try:
            if oversize:
                rejected = await ingestor.reject(
                    Body(body[:_OVERSIZE_SAMPLE], source),
                    413,
                    f"the body is over {limit} bytes",
                    [],
                    body_size=max(size, int(declared) if declared.isdigit() else 0),
                    truncated=True,
                )
                return _error(413, rejected.reason, deadLetterId=rejected.dead_letter_id)
            return await ingestor.ingest(Body(body, source, key))
        except StoreUnavailable as exc:
            log.warning("store unavailable, delivery refused: %s", exc)
            response = _error(503, "the store is unavailable, retry later")
            response.headers["Retry-After"] = "5"
            return response

    def _authenticate_without_body(self, request: Request) -> _Auth:
        """Token header, `?token=`, or an API key with webhooks:write; else maybe a signature."""
        if self._secrets:
            for given in (
                request.headers.get("x-webhook-token"),
                request.query_params.get("token"),
            ):
                if given is not None and _one_of(given.encode(), self._secrets):
                    return _Auth(ok=True)
            if "webhook-signature" in request.headers:
                return _Auth(ok=False, needs_signature=True)
        # Without a webhook secret, the demo lets this machine deliver without a key.
        caller = principal(
            self.keys,
            request.headers.get("authorization"),
            request.client.host if request.client else None,
            demo=not self._secrets and self.settings.demo,
        )
        if caller is None:
            return _Auth(ok=False)
        allowed = "webhooks:write" in caller.scopes
        return _Auth(ok=allowed, lacks_scope=not allowed)

    def _signature_ok(self, request: Request, body: bytes) -> bool:
        assert self._secrets
        headers = request.headers
        msg_id = headers.get("webhook-id")
        timestamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not msg_id or not timestamp or not signatures:
            return False
        now = time.time()
        verified = [
            verify(
                secret_bytes(secret.decode()),
                msg_id=msg_id,
                timestamp=timestamp,
                signatures=signatures,
                body=body,
                now=now,
            )
            for secret in self._secrets  # each one, so that the time says nothing of which
        ]
        return any(verified)


def _one_of(given: bytes, secrets: tuple[bytes, ...]) -> bool:
    """Whether `given` is one of `secrets`, compared with each in constant time."""
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given, secret)
    return matched
