"""The GraphQL endpoint: every HTTP request to /graphql enters here."""

from __future__ import annotations

from collections.abc import Mapping
from json import JSONDecodeError
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import KeyRing, Principal
from gateway.errors import (
    BadUserInput,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    TalkgateError,
)
from gateway.graphql.admission import Admission, Admitted, header
from gateway.graphql.cached_answers import CachedAnswers
from gateway.graphql.over_http import (
    MEDIA_KEY,
    NOT_ACCEPTABLE,
    check_document,
    check_posted,
    check_query_string,
    error_response,
    negotiate,
)
from gateway.graphql.persisted import (
    PersistedQueries,
    PersistedQueryPolicy,
)
from gateway.graphql.response_cache import ResponseCache
from gateway.graphql.view import GraphQLView
from gateway.http.state import State, state_of
from gateway.metrics import Metrics
from gateway.nesting import TooDeep, decode_limited
from gateway.settings import Settings


class GraphQLEndpoint:
    """Every HTTP request to /graphql: the explorer page for a browser, else the operation,
    admitted (gateway/graphql/admission.py), decoded and checked, then answered from the
    response cache (gateway/graphql/cached_answers.py) or by the view.

    A browser asking for the page gets GraphiQL without a key (the key goes in its headers
    tab); every operation needs `Authorization: Bearer <key>`, or 401.
    """

    def __init__(
        self,
        view: GraphQLView,
        keys: KeyRing,
        *,
        settings: Settings,
        metrics: Metrics,
        ide: ASGIApp | None = None,
        persisted: PersistedQueryPolicy | None = None,
    ) -> None:
        self.view = view
        self.settings = settings
        self.metrics = metrics
        # talkgate's own explorer page, or the page saying how to build it; None: GraphiQL off.
        self.ide = ide
        self.persisted = persisted or PersistedQueryPolicy.from_settings(settings)
        self.admission = Admission(keys, settings, metrics)
        graphql_schema = view.schema._schema  # type: ignore[attr-defined]
        self.cached = CachedAnswers(settings, metrics, graphql_schema)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        # Read from the scope itself: a Request, its Headers and State objects cost 14,300
        # of a cached answer's 283,800 instructions (bench.instructions, W1-warm).
        accept = header(scope, b"accept")
        if self.ide is not None and scope["method"] == "GET" and "text/html" in (accept or ""):
            await self.ide(scope, receive, send)
            return
        # Every check below answers the same whatever the response cache holds: the cache
        # is read only for a request that passed them all.
        media = negotiate(accept)
        if media is None:
            response = error_response(406, NOT_ACCEPTABLE, BadUserInput.code)
            await response(scope, receive, send)
            return
        scope[MEDIA_KEY] = media
        state = state_of(scope)
        admitted = await self.admission.admit(scope, receive, media, state["limiter"])
        if admitted is None:
            return  # gone before its body's end: no one to answer
        if isinstance(admitted, Response):
            await admitted(scope, receive, send)
            return
        if admitted.body is None:
            await self._query_string(scope, receive, send, state, admitted.principal, media)
        else:
            await self._posted_body(scope, receive, send, state, admitted, media)

    async def _query_string(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: State,
        caller: Principal,
        media: str,
    ) -> None:
        """A GET's operation, from its query string."""
        try:
            scope, params = await self._resolve_query_string(scope, state["persisted"])
        except TalkgateError as exc:
            await _refusal(exc, media)(scope, receive, send)
            return
        await self._answer(scope, receive, send, state["responses"], params, caller, None)

    async def _posted_body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: State,
        admitted: Admitted,
        media: str,
    ) -> None:
        """A POST's operation, from its body."""
        body = admitted.body
        assert body is not None
        known = self.cached.body_keys.get(body, admitted.principal.scopes)
        responses = state["responses"]
        if known is not None and responses is not None:
            # The body was decoded and checked before, and its bytes decode the same way
            # again.
            await self.cached.serve(
                scope, _replay(body, receive), send, known, responses, self._execute, body
            )
            return
        try:
            params, body, sent = await self._posted(body, state["persisted"])
        except TalkgateError as exc:
            await _refusal(exc, media)(scope, receive, send)
            return
        await self._answer(
            scope, _replay(body, receive), send, responses, params, admitted.principal, sent
        )

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        responses: ResponseCache | None,
        params: dict[str, Any],
        caller: Principal,
        sent: bytes | None,
    ) -> None:
        """The operation of `params` answered, from `responses` (the response cache, None
        when off) when it may be; `sent`: a POST's body as sent, when it may stand for
        `params` next time."""
        # A POST's operation, decoded: the view need not decode it again.
        decoded = params if scope["method"] == "POST" else None
        if responses is None:
            await self._execute(scope, receive, send, decoded)
            return
        cached = self.cached.key(params, caller)
        if cached is None:
            self.metrics.add(self.metrics.response_cache, "uncacheable")
            await self._execute(scope, receive, send, decoded)
            return
        if sent is not None:
            self.cached.body_keys.put(sent, caller.scopes, cached)
        await self.cached.serve(scope, receive, send, cached, responses, self._execute, decoded)

    async def _posted(
        self, body: bytes, documents: PersistedQueries
    ) -> tuple[dict[str, Any], bytes, bytes | None]:
        """A POST body's parameters, checked and with the persisted document it names; the
        body the view reads; and the body as sent when it may stand for them next time.

        Raises BadUserInput (a malformed request) and the persisted queries' errors.
        """
        sent: bytes | None = body
        try:
            data = decode_limited(body, self.settings.max_json_depth)
        except JSONDecodeError as exc:
            # Too deep, or not JSON at all (lone surrogates included: orjson refuses them,
            # and they could never be encoded again).
            reason = exc.msg if isinstance(exc, TooDeep) else f"not valid JSON ({exc.msg})"
            raise BadUserInput(f"the request body: {reason}") from None
        if isinstance(data, list):
            # One token is one operation: a batch would run many on one.
            raise BadUserInput("batches are not accepted: send one operation per request")
        if not isinstance(data, dict):
            raise BadUserInput("the body must be a JSON object with a `query`")
        check_posted(data)
        params = await self.persisted.resolve(data, documents)
        check_document(params)
        if params != data:
            body = orjson.dumps(params)
            sent = None  # the body the view reads is not the one sent
        extensions = data.get("extensions")
        if isinstance(extensions, dict) and "persistedQuery" in extensions:
            # Resolving it may register the document again (after the store forgot it):
            # every such body is resolved, none is kept.
            sent = None
        return params, body, sent

    async def _execute(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        decoded: Mapping[str, Any] | bytes | None,
    ) -> None:
        """Runs the operation: from the POST's `decoded` operation (or its body, to decode)
        when GraphQLView.answer_decoded takes it, else through the view."""
        if decoded is not None:
            if isinstance(decoded, bytes):
                params = decode_limited(decoded, self.settings.max_json_depth)
                decoded = params if isinstance(params, dict) else None
            if decoded is not None:
                answer = await self.view.answer_decoded(Request(scope, receive), decoded)
                if answer is not None:
                    await answer(scope, receive, send)
                    return
        await self.view(scope, receive, send)

    async def _resolve_query_string(
        self, scope: Scope, documents: PersistedQueries
    ) -> tuple[Scope, dict[str, Any]]:
        """A GET's parameters, checked, with the document `extensions` names (a JSON
        parameter). Raises BadUserInput (a malformed request) and the persisted queries'
        errors."""
        query_string = scope.get("query_string", b"").decode("latin-1")
        params: dict[str, Any] = dict(parse_qsl(query_string, keep_blank_values=True))
        check_query_string(params, self.settings.max_json_depth)
        resolved = await self.persisted.resolve(params, documents)
        check_document(resolved)
        if resolved == params:
            return scope, params
        return {**scope, "query_string": urlencode(resolved).encode("latin-1")}, resolved


# Apollo clients read PERSISTED_QUERY_NOT_FOUND (and _NOT_SUPPORTED) from a 200 answer.
_REFUSAL_STATUS = {PersistedQueryNotFound.code: 200, PersistedQueryNotSupported.code: 200}


def _refusal(error: TalkgateError, media: str) -> Response:
    status = _REFUSAL_STATUS.get(error.code, 400)
    return error_response(status, error.message, error.code, media=media)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hands the already-read body over once; later calls wait on the real channel."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
