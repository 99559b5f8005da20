"""Stored documents decoded once, and shared while their stored text stays the same.

Every read of a page of talks used to decode each talk's JSON again, and each customer's,
although a dashboard reads the same rows over and over: decoding was the larger part of a
store read. The cache is keyed by (table, row id) and holds the text it decoded; a hit needs
the text just read to be equal to it, so a row that changed is decoded again and an old
document is never returned. Callers share the dicts: nothing may mutate a document read
from the store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Final

import orjson

__all__ = ["DecodedDocs"]

Doc = dict[str, Any]

# A decoded document takes about three times its JSON text (measured on stored talks and
# customers); the entry keeps the text as well.
_HELD_PER_BYTE: Final = 4


class DecodedDocs:
    """A least-recently-used map (table, id) -> (text, document), bounded in bytes; safe
    to use from several reader threads. A budget of 0 keeps nothing."""

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], tuple[str | bytes, Doc]] = OrderedDict()
        self._held = 0
        self.hits = 0
        self.misses = 0

    def decode(self, table: str, row_id: int, text: str | bytes) -> Doc:
        """The document stored as `text` in `table`, row `row_id`."""
        if self._budget <= 0:
            return orjson.loads(text)  # type: ignore[no-any-return]
        key = (table, row_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == text:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
        doc: Doc = orjson.loads(text)
        size = len(text) * _HELD_PER_BYTE
        if size > self._budget:
            return doc
        with self._lock:
            self.misses += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._held -= len(old[0]) * _HELD_PER_BYTE
            self._entries[key] = (text, doc)
            self._held += size
            while self._held > self._budget:
                _, (evicted, _) = self._entries.popitem(last=False)
                self._held -= len(evicted) * _HELD_PER_BYTE
        return doc
