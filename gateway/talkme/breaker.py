"""A circuit breaker: stop calling an upstream that keeps failing, then probe it once in a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failed calls of one operation and fails fast while the upstream is down.

    Closed: every call goes through; `failures` consecutive failures open it.
    Open: every call is refused until `reset_s` have passed.
    Half-open: exactly one probe goes through while the others are still refused; its success
    closes the breaker, its failure opens it for another `reset_s`.

    Callers ask `allow()` before a call and report its outcome with `record_success()` or
    `record_failure()`. A probe that never reports (its caller was cancelled) is presumed lost
    after `reset_s`, so the breaker cannot stay half-open forever.
    """

    def __init__(
        self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if reset_s <= 0:
            raise ValueError("reset_s must be positive")
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self._reset_s:
            return "half_open"
        return self._state

    def allow(self) -> bool:
        """Whether a call may go upstream now; a True in half-open state makes it the probe."""
        if self._state == "closed":
            return True
        now = self._clock()
        if self._state == "open":
            if now - self._opened_at < self._reset_s:
                return False
            self._state = "half_open"
            self._probe_started_at = now
            return True
        # Half-open: the probe slot is taken unless its holder vanished without reporting.
        if self._probe_started_at is not None and now - self._probe_started_at < self._reset_s:
            return False
        self._probe_started_at = now
        return True

    def record_success(self) -> None:
        self._state = "closed"
        self._consecutive_failures = 0
        self._probe_started_at = None

    def record_failure(self) -> None:
        if self._state == "closed":
            self._consecutive_failures += 1
            if self._consecutive_failures >= self._threshold:
                self._open()
        elif self._state == "half_open":
            self._open()
        # Already open: a late failure of a call admitted earlier does not extend the wait.

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probe_started_at = None
        self._consecutive_failures = 0

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state!r}, failures={self._threshold}, "
            f"reset_s={self._reset_s})"
        )
