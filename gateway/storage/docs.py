"""Stored documents decoded once, and shared while their stored text stays the same.

Every read of a page of talks used to decode each talk's JSON again, and each customer's,
although a dashboard reads the same rows over and over: decoding was the larger part of a
store read. The cache is keyed by (table, row id) and holds, with each document, the stamp
of the row it was decoded from: a hit needs the stamp just read to be equal to it, so a row
that changed is decoded again and an old document is never returned.

The stamp is the row's text itself, or, for a table whose rows carry a version that every
change of their document moves, that version: then a read needs the text only of the rows
the cache does not hold as of their version. Callers share the dicts: nothing may mutate a
document read from the store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Final

import orjson

from gateway.storage.documents import Doc

__all__ = ["DecodedDocs"]


# A decoded document takes about three times its JSON text (measured on stored talks and
# customers); the entry keeps the text as well.
_HELD_PER_BYTE: Final = 4


class DecodedDocs:
    """A least-recently-used map (table, id) -> (stamp, document), bounded in bytes; safe
    to use from several reader threads. A budget of 0 keeps nothing."""

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._lock = threading.Lock()
        # (table, id) -> (stamp, document, bytes it counts for)
        self._entries: OrderedDict[tuple[str, int], tuple[object, Doc, int]] = OrderedDict()
        self._held = 0
        self.hits = 0
        self.misses = 0

    def cached(self, table: str, row_id: int, stamp: object) -> Doc | None:
        """The document of `table`'s row `row_id` if it is held as of `stamp`, else None."""
        key = (table, row_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != stamp:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def cached_many(
        self, table: str, stamps: Sequence[tuple[int, object]]
    ) -> tuple[dict[int, Doc], dict[int, object]]:
        """`cached` for each (row id, stamp) of `stamps`, under one lock: the documents held
        as of their stamps by id, and the (id -> stamp) of the others."""
        held: dict[int, Doc] = {}
        missing: dict[int, object] = {}
        entries = self._entries
        entry_of, used = entries.get, entries.move_to_end
        with self._lock:
            for row_id, stamp in stamps:
                key = (table, row_id)
                entry = entry_of(key)
                if entry is not None and entry[0] == stamp:
                    used(key)
                    held[row_id] = entry[1]
                else:
                    missing[row_id] = stamp
            self.hits += len(held)
        return held, missing

    def read_at(
        self,
        table: str,
        held: dict[int, Doc],
        missing: Mapping[int, object],
        rows: Sequence[tuple[int, object, str | bytes]],
    ) -> dict[int, Doc] | None:
        """`held` (from `cached_many`) with the documents of `rows` added, (id, stamp, text)
        just read for the ids of `missing`; None when one of those was not read, or was read
        at another stamp than `missing` gives for it (its row moved in between)."""
        if len(rows) != len(missing):
            return None
        for row_id, stamp, text in rows:
            if missing[row_id] != stamp:
                return None
            held[row_id] = self.decode(table, row_id, text, stamp)
        return held

    def decode(self, table: str, row_id: int, text: str | bytes, stamp: object = None) -> Doc:
        """The document stored as `text` in `table`, row `row_id`; `stamp` (by default the
        text) is what a later read must bring for the same document to be reused."""
        if self._budget <= 0:
            return orjson.loads(text)  # type: ignore[no-any-return]
        if stamp is None:
            stamp = text
            hit = self.cached(table, row_id, stamp)
            if hit is not None:
                return hit
        doc: Doc = orjson.loads(text)
        size = len(text) * _HELD_PER_BYTE
        if size > self._budget:
            return doc
        key = (table, row_id)
        with self._lock:
            self.misses += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._held -= old[2]
            self._entries[key] = (stamp, doc, size)
            self._held += size
            while self._held > self._budget:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._held -= evicted
        return doc
