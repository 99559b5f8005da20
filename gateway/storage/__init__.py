"""The talk store: a protocol and its backends, chosen by the database URL."""

from __future__ import annotations

from gateway.storage.protocol import StoreUnavailable, TalkStore

__all__ = ["StoreUnavailable", "TalkStore", "open_store"]


def open_store(url: str, *, doc_cache_mb: int = 32) -> TalkStore:
    """The store for `url` (not opened yet): SQLite for sqlite:///, PostgreSQL for
    postgresql:// or postgres://. It keeps up to `doc_cache_mb` of decoded documents
    (gateway/storage/docs.py)."""
    doc_cache_bytes = doc_cache_mb * 2**20
    if url.startswith("sqlite:///"):
        from gateway.storage.sqlite import SQLiteStore

        return SQLiteStore(url, doc_cache_bytes=doc_cache_bytes)
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.storage.postgres import PostgresStore

        return PostgresStore(url, doc_cache_bytes=doc_cache_bytes)
    raise ValueError(
        "TALKGATE_DATABASE_URL must start with sqlite:///, postgresql:// or postgres://"
    )
