"""Persisted queries: Apollo's automatic persisted queries (APQ) and an allow-list mode.

A request may name its document by sha256 in `extensions.persistedQuery` instead of sending
it. With APQ a client registers a document by sending it once with its hash; in allow-list
mode only the documents of a manifest loaded at start-up run, and nothing registers.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from strawberry.extensions import SchemaExtension

from gateway.errors import (
    BadUserInput,
    PersistedQueryNotAllowed,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
)
from gateway.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_ENTRIES = 10_000
MAX_BYTES = 32 * 1024 * 1024


def document_hash(document: str) -> str:
    """The hex sha256 of a document's UTF-8 text, as Apollo clients compute it."""
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries(Protocol):
    """Where registered documents live, by their sha256 (this process, or Redis)."""

    async def get(self, digest: str) -> str | None: ...

    async def put(self, digest: str, document: str) -> None: ...


class LocalPersistedQueries:
    """Registered documents in this process, least recently used dropped first.

    Bounded by entries and by the total length of the documents, so registrations cannot
    grow the process without end.
    """

    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._documents)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def get(self, digest: str) -> str | None:
        document = self._documents.get(digest)
        if document is not None:
            self._documents.move_to_end(digest)
        return document

    async def put(self, digest: str, document: str) -> None:
        size = len(document.encode())
        if size > self.max_bytes:
            return
        old = self._documents.pop(digest, None)
        if old is not None:
            self._bytes -= len(old.encode())
        self._documents[digest] = document
        self._bytes += size
        while len(self._documents) > self.max_entries or self._bytes > self.max_bytes:
            _, dropped = self._documents.popitem(last=False)
            self._bytes -= len(dropped.encode())


class ManifestError(ValueError):
    """A persisted-queries manifest that cannot be used; its message is one line."""


def load_manifest(path: Path) -> dict[str, str]:
    """`{"<sha256>": "<document>", ...}` from `path`, every hash checked against its document."""
    where = f"persisted queries file {path}"
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ManifestError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError:
        raise ManifestError(f"{where}: not JSON") from None
    if not isinstance(data, dict):
        raise ManifestError(f'{where}: expected an object {{"<sha256>": "<document>", ...}}')
    manifest: dict[str, str] = {}
    for digest, document in data.items():
        shown = digest[:16]
        if not _SHA256.match(digest):
            raise ManifestError(f"{where}: key {shown!r} is not a lowercase hex sha256")
        if not isinstance(document, str):
            raise ManifestError(f"{where}: the document of {shown}... is not a string")
        if document_hash(document) != digest:
            raise ManifestError(f"{where}: the document of {shown}... does not hash to its key")
        manifest[digest] = document
    return manifest


@dataclass(frozen=True)
class PersistedQueryPolicy:
    """What this gateway does with `extensions.persistedQuery` and with full documents."""

    register: bool = True
    only: bool = False
    allow_list: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> PersistedQueryPolicy:
        """The policy the settings ask for; reads and checks the manifest (ManifestError)."""
        path = settings.persisted_queries_file
        allow_list = load_manifest(path) if path is not None else {}
        only = settings.persisted_queries_only
        return cls(register=settings.persisted_queries and not only, only=only,
                   allow_list=allow_list)  # fmt: skip

    async def resolve(self, params: Mapping[str, Any], store: PersistedQueries) -> dict[str, Any]:
        """`params` (a request's body or query parameters) with the document it names.

        Raises the protocol's errors: PersistedQueryNotFound (the client retries with the
        document), PersistedQueryNotAllowed, PersistedQueryNotSupported, BadUserInput.
        """
        resolved = dict(params)
        query = resolved.get("query")
        digest = _persisted_hash(resolved.get("extensions"))
        if digest is None:
            if self.only and isinstance(query, str) and document_hash(query) not in self.allow_list:
                raise PersistedQueryNotAllowed(_NOT_ALLOWED)
            return resolved
        if not self.register and not self.allow_list:
            raise PersistedQueryNotSupported("PersistedQueryNotSupported")
        if isinstance(query, str) and query:
            if document_hash(query) != digest:
                raise BadUserInput("provided sha does not match query")
            if digest in self.allow_list:
                return resolved
            if not self.register:
                raise PersistedQueryNotAllowed(_NOT_ALLOWED)
            await store.put(digest, query)
            return resolved
        document = self.allow_list.get(digest)
        if document is None and self.register:
            document = await store.get(digest)
            if document is not None and document_hash(document) != digest:
                document = None  # a shared store is not trusted to hand back the right text
        if document is None:
            if self.only:
                raise PersistedQueryNotAllowed(_NOT_ALLOWED)
            raise PersistedQueryNotFound("PersistedQueryNotFound")
        resolved["query"] = document
        return resolved


_NOT_ALLOWED = "only the persisted documents of this gateway's allow-list run"


def _persisted_hash(extensions: object) -> str | None:
    """The sha256 named by `extensions.persistedQuery`, if there is one (GET gives JSON text)."""
    if isinstance(extensions, str):
        try:
            extensions = orjson.loads(extensions)
        except orjson.JSONDecodeError:
            raise BadUserInput("`extensions` is not JSON") from None
    if not isinstance(extensions, dict) or extensions.get("persistedQuery") is None:
        return None
    persisted = extensions["persistedQuery"]
    if (
        not isinstance(persisted, dict)
        or persisted.get("version") != 1
        or not isinstance(persisted.get("sha256Hash"), str)
        or not _SHA256.match(persisted["sha256Hash"].lower())
    ):
        raise BadUserInput(
            'unsupported persistedQuery: expected {"version": 1, "sha256Hash": "<hex sha256>"}'
        )
    return str(persisted["sha256Hash"]).lower()


class AllowListedOnly(SchemaExtension):
    """Refuses documents outside the allow-list on every transport (WebSockets included)."""

    def __init__(self, allow_list: Mapping[str, str]) -> None:
        self.allow_list = allow_list

    def on_execute(self) -> Iterator[None]:
        # Raised here, the refusal is a typed error on every path (subscriptions' included).
        query = self.execution_context.query
        if query is not None and document_hash(query) not in self.allow_list:
            raise PersistedQueryNotAllowed(_NOT_ALLOWED)
        yield
