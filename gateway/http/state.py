"""What a request's handlers reach of the running app: the lifespan's state, typed.

The lifespan (gateway/http/app.py) yields a `State`; Starlette copies it into every
request's scope as `scope["state"]`. Handlers read it through `state_of`, by key, so a
misspelt or missing part is mypy's error instead of an AttributeError at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict, cast

from starlette.types import Scope

if TYPE_CHECKING:
    from gateway.graphql.persisted import PersistedQueries
    from gateway.graphql.response_cache import ResponseCache
    from gateway.ingest.ingestor import Ingestor
    from gateway.ratelimit import RateLimiter
    from resolvers.context import Services


class State(TypedDict):
    """What the lifespan opens for the handlers."""

    services: Services
    ingestor: Ingestor
    limiter: RateLimiter
    persisted: PersistedQueries
    # None: the response cache is off (TALKGATE_RESPONSE_CACHE_MB=0).
    responses: ResponseCache | None


def state_of(scope: Scope) -> State:
    """The lifespan's state as a request (HTTP or WebSocket) of `scope` sees it."""
    return cast(State, scope["state"])
