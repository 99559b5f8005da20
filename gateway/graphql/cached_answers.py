"""Answers served from the response cache, and answers kept in it."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import (
    Awaitable,
    Callable,
    Mapping,
)
from typing import Any

import orjson
from graphql import (
    GraphQLSchema,
    print_schema,
)
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from gateway.auth import Principal
from gateway.graphql.over_http import (
    GRAPHQL_RESPONSE,
    JSON,
    MEDIA_KEY,
)
from gateway.graphql.response_cache import (
    Cacheability,
    CachedResponse,
    ResponseCache,
    cache_key,
    matches,
)
from gateway.graphql.view import RESULT_OK_KEY
from gateway.http.compression import ENCODING_KEY, tagged, with_vary
from gateway.http.state import state_of
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.storage import StoreUnavailable

_CONTENT_TYPES = {JSON: JSON.encode(), GRAPHQL_RESPONSE: GRAPHQL_RESPONSE.encode()}
# Of an ETag, what tells the application/graphql-response+json form from the JSON one (each
# is a representation of its own, as a compressed form is).
_MEDIA_TAG = "gr"


class BodyKeys:
    """The response-cache keys of the last POST bodies seen, by body and caller's scopes.

    The key of a body depends only on its bytes and the scopes: the same bytes decode to
    the same document, variables and operation name. Bodies naming a persisted query are
    never kept: resolving one may have to register its document again. So a body sent again
    skips decoding and
    the key's hashing, which made up a third of a cached answer's cost. Only small bodies,
    and a bounded number of them, are kept.
    """

    MAX_BODY = 4096
    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[bytes, frozenset[str]], tuple[str, str | None]] = (
            OrderedDict()
        )

    def get(self, body: bytes, scopes: frozenset[str]) -> tuple[str, str | None] | None:
        return self._kept.get((body, scopes))

    def put(self, body: bytes, scopes: frozenset[str], cached: tuple[str, str | None]) -> None:
        if len(body) > self.MAX_BODY:
            return
        self._kept[body, scopes] = cached
        if len(self._kept) > self.MAX_ENTRIES:
            self._kept.popitem(last=False)


Execute = Callable[[Scope, Receive, Send, "Mapping[str, Any] | bytes | None"], Awaitable[None]]


class CachedAnswers:
    """The response cache over HTTP: a store-only query's key, its cached answer while the
    store is at the generation it was computed at (a 304 for a GET whose tag matches), and
    a fresh answer kept for the next time. What is not cached runs through `execute`."""

    def __init__(self, settings: Settings, metrics: Metrics, schema: GraphQLSchema) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cacheable = Cacheability(schema, max_tokens=settings.max_query_tokens)
        # Responses cached by another version of talkgate (a rolling deploy) are not ours.
        self.schema_id = hashlib.sha256(print_schema(schema).encode()).hexdigest()[:16]
        self.body_keys = BodyKeys()

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        cached: tuple[str, str | None],
        responses: ResponseCache,
        execute: Execute,
        decoded: Mapping[str, Any] | bytes | None = None,
    ) -> None:
        """The cached answer under `cached` (a key and the operation's name) while the store
        is at the generation it was computed at; else the operation's (`execute`), kept
        for the next time."""
        key, operation_name = cached
        try:
            generation = await state_of(scope)["services"].store.generation()
        except StoreUnavailable:
            # The operation says SERVICE_UNAVAILABLE.
            await execute(scope, receive, send, decoded)
            return
        found = await responses.get(key, generation)
        method = scope["method"]
        conditional = Headers(scope=scope).get("if-none-match") if method == "GET" else None
        if found is not None:
            # Served, like an execution: counted with the operations.
            self.metrics.count_operation(operation_name, "query", "ok")
            await self._answer_cached(
                found, method, conditional, send, scope.get(ENCODING_KEY), scope[MEDIA_KEY]
            )
            return
        keeping = self._keeping(scope, send, responses, (key, generation), conditional)
        await execute(scope, receive, keeping, decoded)

    def key(self, params: Mapping[str, Any], principal: Principal) -> tuple[str, str | None] | None:
        """The response cache's key for a store-only query and its operation's name; or
        None."""
        document = params.get("query")
        name = params.get("operationName")
        variables = params.get("variables")
        if isinstance(variables, str):  # a GET parameter
            try:
                variables = orjson.loads(variables) if variables else None
            except orjson.JSONDecodeError:
                return None
        if (
            not isinstance(document, str)
            or not (name is None or isinstance(name, str))
            or not (variables is None or isinstance(variables, dict))
        ):
            return None
        analysis = self.cacheable(document)
        if not analysis.store_only:
            return None
        key = cache_key(
            schema_id=self.schema_id,
            document=document,
            operation_name=name or None,
            variables=variables,
            scopes=principal.scopes,
        )
        return key, name or analysis.operation_name

    async def _answer_cached(
        self,
        found: CachedResponse,
        method: str,
        conditional: str | None,
        send: Send,
        codec: str | None,
        media: str,
    ) -> None:
        """A cached answer as `media`: in the form `codec` names (gateway.http.compression) when
        it is large enough to be compressed, kept with the answer so each form is made once.

        Cached answers ran without errors: 200 under either media type, the same bytes."""
        body = found.body
        settings = self.settings
        # Its form depends on Accept-Encoding: said on the 200 and on a 304 alike.
        varies = settings.compression and len(body) >= settings.compress_min_bytes
        encoded = varies and codec is not None
        if encoded:
            assert codec is not None
            body = found.encoded(codec)
        if method == "GET":
            # Each form is its own representation, with its own tag.
            etag = found.etag
            if media != JSON:
                etag = tagged(etag.encode(), _MEDIA_TAG).decode()
            if encoded and codec is not None:
                etag = tagged(etag.encode(), codec).decode()
            headers = self._validators(etag)
            if varies:
                headers = with_vary(headers, b"Accept-Encoding")
            if matches(conditional, etag):
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        else:
            headers = []
        headers += [
            (b"content-type", _CONTENT_TYPES[media]),
            (b"content-length", str(len(body)).encode()),
        ]
        if encoded:
            assert codec is not None
            headers = with_vary(headers, b"Accept-Encoding")
            headers.append((b"content-encoding", codec.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _keeping(
        self,
        scope: Scope,
        send: Send,
        responses: ResponseCache,
        entry: tuple[str, str],
        conditional: str | None,
    ) -> Send:
        """`send` that keeps a successful answer in the cache (its key, and the generation
        of the store read before it was computed) and gives a GET its ETag."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def keeping(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if start["status"] != 200 or scope.get(RESULT_OK_KEY) is not True:
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            # Sent as a hit is: the same headers, and a 304 when the tag still matches.
            kept = await responses.put(*entry, body)
            await self._answer_cached(
                kept, scope["method"], conditional, send, scope.get(ENCODING_KEY), scope[MEDIA_KEY]
            )

        return keeping

    def _validators(self, etag: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"etag", etag.encode()),
            (b"cache-control", self.settings.response_cache_control.encode()),
            (b"vary", b"Authorization, Accept"),
        ]
