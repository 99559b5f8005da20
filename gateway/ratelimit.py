"""Per-key rate limits: a token bucket for each API key.

A bucket holds up to `per_minute` tokens and refills at `per_minute / 60` tokens a second;
each request takes one. An empty bucket answers how long until the next token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    async def take(self, key: str) -> float | None:
        """None when `key` may proceed; otherwise the seconds until it may retry."""
        ...


class LocalRateLimiter:
    """Buckets in this process (each replica counts on its own)."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float | None:
        now = self._clock()
        tokens, updated = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - updated) * self._rate)
        if tokens >= 1.0:
            self._remember(key, (tokens - 1.0, now))
            return None
        self._remember(key, (tokens, now))
        return (1.0 - tokens) / self._rate

    def _remember(self, key: str, bucket: tuple[float, float]) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            # Full buckets carry no state worth keeping; forget the oldest entry.
            self._buckets.pop(next(iter(self._buckets)))
        self._buckets[key] = bucket
