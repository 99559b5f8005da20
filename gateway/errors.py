"""The expected failures of talkgate, each carrying the `extensions.code` of SPEC.

Every code talkgate answers with is written here once, as its class's `code`: the webhook's
and the HTTP edge's refusals name it as `BadUserInput.code` and so on
(tests/gateway/test_errors.py finds any code spelled out elsewhere)."""

from __future__ import annotations

from typing import ClassVar


class TalkgateError(Exception):
    """Root of every expected failure; the GraphQL edge turns it into a typed error."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: object) -> None:
        super().__init__(message)
        self.message = message
        # graphql-core copies an original error's `extensions` onto the GraphQL error, so the
        # code travels with it on every path (subscriptions' pre-stream errors included).
        self.extensions = {"code": self.code, **extensions}


class Unauthenticated(TalkgateError):
    code = "UNAUTHENTICATED"


class Forbidden(TalkgateError):
    code = "FORBIDDEN"


class BadUserInput(TalkgateError):
    code = "BAD_USER_INPUT"


class NotFound(TalkgateError):
    code = "NOT_FOUND"


class UpstreamRejected(TalkgateError):
    code = "UPSTREAM_REJECTED"


class UpstreamUnavailable(TalkgateError):
    code = "UPSTREAM_UNAVAILABLE"


class ServiceUnavailable(TalkgateError):
    """The store (or another part talkgate needs) is down for now; the client retries later."""

    code = "SERVICE_UNAVAILABLE"


class RateLimited(TalkgateError):
    code = "RATE_LIMITED"


class QueryTooComplex(TalkgateError):
    code = "QUERY_TOO_COMPLEX"


class PersistedQueryNotFound(TalkgateError):
    """APQ: the hash is unknown here; the client sends the document with its hash again."""

    code = "PERSISTED_QUERY_NOT_FOUND"


class PersistedQueryNotSupported(TalkgateError):
    """APQ is off on this gateway; the client sends full documents."""

    code = "PERSISTED_QUERY_NOT_SUPPORTED"


class PersistedQueryNotAllowed(TalkgateError):
    """Allow-list mode: the document is not one of the gateway's persisted documents."""

    code = "PERSISTED_QUERY_NOT_ALLOWED"
