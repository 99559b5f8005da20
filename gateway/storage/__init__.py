"""The talk store: a protocol and its backends, chosen by the database URL."""

from __future__ import annotations

from gateway.storage.protocol import StoreUnavailable, TalkStore

__all__ = ["StoreUnavailable", "TalkStore", "open_store"]


def open_store(url: str) -> TalkStore:
    """The store for `url` (not opened yet): SQLite for sqlite:///, PostgreSQL for
    postgresql:// or postgres://."""
    if url.startswith("sqlite:///"):
        from gateway.storage.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.storage.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError("TALKGATE_DATABASE_URL must start with sqlite:/// or postgresql://")
