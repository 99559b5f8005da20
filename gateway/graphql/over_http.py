"""GraphQL over HTTP (https://graphql.github.io/graphql-over-http/draft/): the media type an
answer is sent as, chosen by the request's `Accept`; the checks a request's parameters pass
before anything (the response cache included) reads them; and the error answers of /graphql.

`application/json` is the default (no Accept, `*/*`, `application/*`): legacy clients read
every GraphQL response from a 200. A client naming `application/graphql-response+json` at
least as high as `application/json` gets that type, and status codes that say what happened:
400 for a request that never reached execution (a document that does not parse or validate,
variables that do not coerce), 200 once execution started. A request that is not well-formed
(body, parameters, method) is a 4xx under either type. An Accept allowing neither is 406.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from json import JSONDecodeError
from typing import Any

import orjson
from starlette.responses import Response

from gateway.errors import BadUserInput
from gateway.nesting import TooDeep, decode_limited

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MEDIA_TYPES = (GRAPHQL_RESPONSE, JSON)
# The media type a request is answered in, set on its scope by the endpoint.
MEDIA_KEY = "talkgate.media"
NOT_ACCEPTABLE = (
    f"this endpoint answers {GRAPHQL_RESPONSE} or {JSON}: name one of them in the Accept header"
)
# Charsets an Accept range may ask for: answers are UTF-8.
_UTF8 = frozenset({"utf-8", "utf8"})


def negotiate(accept: str | None) -> str | None:
    """The media type to answer a request with `accept` in, or None when it allows neither."""
    if accept is None or accept == JSON or accept == "*/*":  # the usual cases, at once
        return JSON
    return _negotiated(accept)


@lru_cache(maxsize=256)
def _negotiated(accept: str) -> str | None:
    # The q of each type is that of the most specific range matching it (RFC 9110 12.5.1).
    best: dict[str, tuple[int, float]] = {}
    for part in accept.split(","):
        kind, *parameters = (piece.strip() for piece in part.split(";"))
        kind = kind.lower()
        if not kind:
            continue
        q = 1.0
        acceptable = True
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"').lower()
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif name == "charset" and value not in _UTF8:
                acceptable = False
        if not acceptable:
            continue
        for media in MEDIA_TYPES:
            specificity = _specificity(kind, media)
            if specificity is not None and specificity > best.get(media, (-1, 0.0))[0]:
                best[media] = (specificity, q)
    response_specificity, response_q = best.get(GRAPHQL_RESPONSE, (-1, 0.0))
    json_q = best.get(JSON, (-1, 0.0))[1]
    # Ranked higher than application/json, or as high and named exactly: the client reads
    # it. Reached by wildcards only, it loses a tie: legacy clients send `*/*`.
    if response_q > 0 and (
        response_q > json_q or (response_q == json_q and response_specificity == 2)
    ):
        return GRAPHQL_RESPONSE
    return JSON if json_q > 0 else None


def _specificity(accepted: str, media: str) -> int | None:
    """2 when the range `accepted` names `media`, 1 for `type/*`, 0 for `*/*`, else None."""
    if accepted == media:
        return 2
    if accepted == "application/*":
        return 1
    if accepted == "*/*":
        return 0
    return None


class MalformedRequest(BadUserInput):
    """A request that is not a well-formed GraphQL-over-HTTP request; the message says why
    (BAD_USER_INPUT, as every malformed request is)."""


_KINDS = {
    "variables": "a JSON object or null",
    "extensions": "a JSON object or null",
    "operationName": "a string or null",
    "query": "a string",
}


def check_posted(params: Mapping[str, Any]) -> None:
    """Raises MalformedRequest unless a POST body's parameters have the spec's types
    (`query` may be absent: `extensions.persistedQuery` may name the document)."""
    for name in ("variables", "extensions"):
        value = params.get(name)
        if value is not None and not isinstance(value, dict):
            raise MalformedRequest(f"`{name}` must be {_KINDS[name]}")
    operation = params.get("operationName")
    if operation is not None and not isinstance(operation, str):
        raise MalformedRequest(f"`operationName` must be {_KINDS['operationName']}")
    query = params.get("query")
    if query is not None and not isinstance(query, str):
        raise MalformedRequest(f"`query` must be {_KINDS['query']}")


def check_query_string(params: Mapping[str, str], max_depth: int) -> None:
    """Raises MalformedRequest unless a GET's `variables` and `extensions` (when given)
    are JSON objects (or null) nested at most `max_depth` levels."""
    for name in ("variables", "extensions"):
        text = params.get(name)
        if not text:
            continue
        try:
            value = decode_limited(text, max_depth)
        except TooDeep as exc:
            raise MalformedRequest(f"`{name}`: {exc.msg}") from None
        except JSONDecodeError:
            raise MalformedRequest(f"`{name}` must be {_KINDS[name]}, as JSON text") from None
        if value is not None and not isinstance(value, dict):
            raise MalformedRequest(f"`{name}` must be {_KINDS[name]}, as JSON text")


def check_document(params: Mapping[str, Any]) -> None:
    """Raises MalformedRequest unless the parameters (persisted documents resolved) hold a
    non-empty `query`."""
    query = params.get("query")
    if not isinstance(query, str) or not query:
        raise MalformedRequest("a GraphQL document is required in `query`")


def error_body(message: str, code: str, **extensions: Any) -> bytes:
    """A GraphQL response of one request error: `errors` only, since nothing executed
    (no `data` entry, as GraphQL's own specification says of such errors)."""
    error = {"message": message, "extensions": {"code": code, **extensions}}
    return orjson.dumps({"errors": [error]})


def error_response(
    status: int,
    message: str,
    code: str,
    *,
    media: str = JSON,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """The answer to a request refused before execution, in the negotiated media type."""
    return Response(
        error_body(message, code, **extensions),
        status_code=status,
        media_type=media,
        headers=dict(headers) if headers else None,
    )
