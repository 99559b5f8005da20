"""The talk store: a protocol and its backends, chosen by the database URL."""

from __future__ import annotations

from gateway.storage.protocol import StoreUnavailable, TalkStore

__all__ = ["StoreUnavailable", "TalkStore", "open_store"]


def open_store(url: str) -> TalkStore:
    """The store for `url` (not opened yet): SQLite for sqlite:///, PostgreSQL later."""
    if url.startswith("sqlite:///"):
        from gateway.storage.sqlite import SQLiteStore

        return SQLiteStore(url)
    raise ValueError("PostgreSQL support is not built yet; use a sqlite:/// TALKGATE_DATABASE_URL")
