"""A cache of whole GraphQL responses, for query documents that only read the store.

A response is kept under a key made of the document, the operation name, the variables, the
caller's scopes and the schema, together with the store's generation when it was computed:
a number the store advances with every commit that changes talk data, whoever commits it
(this replica, another one, `talkgate ingest`). A response is served only while the store is
still at that generation. A talk changing can move it in any list, so nothing finer than the
whole store would be safe without tracking each response's reads.

Fields served by Talk.me or by other state (`recording`, `queueStatus`, the admin fields)
make a document uncacheable. Two levels: this process's memory, and, with Redis, a level
shared by the replicas.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

from gateway.graphql.limits import QueryLimits
from gateway.graphql.parsing import parse_document, text_digest
from gateway.http.compression import encode

log = logging.getLogger("talkgate.cache")

# (parent type, field): answered by Talk.me, by agent statuses, or for admins' debugging.
UNCACHEABLE_FIELDS = frozenset(
    {
        ("Query", "recording"),
        ("Query", "deadLetters"),
        ("Talk", "recording"),
        ("Talk", "rawPayloads"),
        ("Agent", "queueStatus"),
    }
)
_ANALYSES_KEPT = 1024


class CachedResponse:
    """A response body as it was sent, and its entity tag, computed when first asked for:
    only GETs carry one, and most cached answers are to POSTs."""

    __slots__ = ("_etag", "_forms", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._etag: str | None = None
        self._forms: dict[str, bytes] | None = None

    @property
    def etag(self) -> str:
        if self._etag is None:
            self._etag = entity_tag(self.body)
        return self._etag

    def encoded(self, codec: str) -> bytes:
        """The body compressed with `codec` (gateway.http.compression), made on the first hit
        that asks for it and kept with the body."""
        if self._forms is None:
            self._forms = {}
        form = self._forms.get(codec)
        if form is None:
            form = self._forms[codec] = encode(self.body, codec)
        return form


class SharedUnavailable(Exception):
    """The shared level could not be reached; the cache goes on with this process's."""


class SharedResponses(Protocol):
    """The level the replicas share (Redis). Each method raises SharedUnavailable when the
    level cannot be reached."""

    async def get(self, key: str, generation: str) -> bytes | None: ...

    async def put(self, key: str, generation: str, body: bytes) -> None: ...


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the cache needs to know of a document."""

    store_only: bool
    # The name of its operation when it holds exactly one.
    operation_name: str | None


_UNPARSABLE = Analysis(store_only=False, operation_name=None)


class Cacheability:
    """Which documents only read the store: all their operations are queries and no field
    is in UNCACHEABLE_FIELDS. Analyses of the last documents seen are kept, by a digest of
    their text; documents are parsed (at most `max_tokens` tokens) through the cache the
    operation's own parse then hits."""

    def __init__(self, schema: GraphQLSchema, *, max_tokens: int = QueryLimits().tokens) -> None:
        self._schema = schema
        self._max_tokens = max_tokens
        self._seen: OrderedDict[bytes, Analysis] = OrderedDict()

    def __call__(self, document: str) -> Analysis:
        digest = text_digest(document)
        known = self._seen.get(digest)
        if known is not None:
            self._seen.move_to_end(digest)
            return known
        try:
            parsed = parse_document(document, self._max_tokens)
        except GraphQLError:
            return _UNPARSABLE  # the view answers it with an error; nothing to keep
        operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
        only = operations[0] if len(operations) == 1 else None
        answer = Analysis(
            store_only=self._store_only(parsed),
            operation_name=only.name.value if only is not None and only.name else None,
        )
        self._seen[digest] = answer
        if len(self._seen) > _ANALYSES_KEPT:
            self._seen.popitem(last=False)
        return answer

    def _store_only(self, document: DocumentNode) -> bool:
        for definition in document.definitions:
            if (
                isinstance(definition, OperationDefinitionNode)
                and definition.operation != OperationType.QUERY
            ):
                return False
        type_info = TypeInfo(self._schema)
        found: list[str] = []

        class Fields(Visitor):
            def enter_field(self, node: FieldNode, *_: Any) -> None:
                parent = type_info.get_parent_type()
                if parent is not None and (parent.name, node.name.value) in UNCACHEABLE_FIELDS:
                    found.append(node.name.value)

        visit(document, TypeInfoVisitor(type_info, Fields()))
        return not found


def cache_key(
    *,
    schema_id: str,
    document: str,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    scopes: frozenset[str],
) -> str:
    material = orjson.dumps(
        [schema_id, document, operation_name, variables or {}, sorted(scopes)],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()


class ResponseCache:
    """Responses of the store's current generation, by key, bounded in bytes (the least
    recently used go first)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        shared: SharedResponses | None = None,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._shared = shared
        self._count = on_outcome or (lambda outcome: None)
        self._kept: OrderedDict[str, CachedResponse] = OrderedDict()
        self._bytes = 0
        self._generation = ""
        self._warned = False

    @property
    def size(self) -> int:
        """Bytes of response bodies kept in this process."""
        return self._bytes

    async def get(self, key: str, generation: str) -> CachedResponse | None:
        """The response kept under `key` for the store at `generation`."""
        if generation != self._generation:
            # A write moved the store on: nothing kept before can be served again.
            self._generation = generation
            self._kept.clear()
            self._bytes = 0
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            self._count("hit")
            return kept
        if self._shared is not None:
            try:
                body = await self._shared.get(key, generation)
            except SharedUnavailable as exc:
                self._warn(exc)
            else:
                self._recovered()
                if body is not None:
                    self._count("shared_hit")
                    return self._keep(key, generation, body)
        self._count("miss")
        return None

    async def put(self, key: str, generation: str, body: bytes) -> CachedResponse:
        """Keep `body`, computed from the store at `generation` or later."""
        response = self._keep(key, generation, body)
        if self._shared is not None:
            try:
                await self._shared.put(key, generation, body)
            except SharedUnavailable as exc:
                self._warn(exc)
        return response

    def _keep(self, key: str, generation: str, body: bytes) -> CachedResponse:
        response = CachedResponse(body)
        if generation != self._generation or len(body) > self._max_bytes // 8:
            return response  # out of date already; or one response would crowd out the rest
        old = self._kept.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._kept[key] = response
        self._bytes += len(body)
        while self._bytes > self._max_bytes:
            _, oldest = self._kept.popitem(last=False)
            self._bytes -= len(oldest.body)
        return response

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("shared response cache unreachable, using this replica's: %s", exc)
            self._warned = True

    def _recovered(self) -> None:
        if self._warned:
            log.info("shared response cache reachable again")
            self._warned = False
