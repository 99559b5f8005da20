"""The one place Talk.me failures become GraphQL error codes."""

from __future__ import annotations

from gateway.errors import NotFound, TalkgateError, UpstreamRejected, UpstreamUnavailable
from gateway.talkme import TalkmeError, TalkmeNotFound, TalkmeRejected, TalkmeUnavailable


def upstream_error(exc: TalkmeError) -> TalkgateError:
    """4xx → UPSTREAM_REJECTED (404 on a recording → NOT_FOUND); the rest → UPSTREAM_UNAVAILABLE."""
    if isinstance(exc, TalkmeNotFound):
        return NotFound("Talk.me has no recording for this protocol")
    if isinstance(exc, TalkmeRejected):
        return UpstreamRejected(f"Talk.me refused the request: {exc.detail}", status=exc.status)
    if isinstance(exc, TalkmeUnavailable):
        return UpstreamUnavailable(f"Talk.me is unavailable: {exc.reason}")
    return UpstreamUnavailable("Talk.me is unavailable")
