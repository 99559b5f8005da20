"""The one place Talk.me failures become GraphQL error codes."""

from __future__ import annotations

from gateway.errors import (
    BadUserInput,
    NotFound,
    TalkgateError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from gateway.talkme import (
    TalkmeBadInput,
    TalkmeError,
    TalkmeNotFound,
    TalkmeRejected,
    TalkmeUnavailable,
)


def upstream_error(exc: TalkmeError) -> TalkgateError:
    """Refused before the call → BAD_USER_INPUT; 4xx → UPSTREAM_REJECTED (404 on a recording →
    NOT_FOUND); the rest → UPSTREAM_UNAVAILABLE."""
    if isinstance(exc, TalkmeBadInput):
        # The rule, never the value: it may be a password, or 100 KB long.
        return BadUserInput(f"the {exc.field} {exc.rule}", field=exc.field)
    if isinstance(exc, TalkmeNotFound):
        return NotFound("Talk.me has no recording for this protocol")
    if isinstance(exc, TalkmeRejected):
        return UpstreamRejected(f"Talk.me refused the request: {exc.detail}", status=exc.status)
    if isinstance(exc, TalkmeUnavailable):
        return UpstreamUnavailable(f"Talk.me is unavailable: {exc.reason}")
    return UpstreamUnavailable("Talk.me is unavailable")
