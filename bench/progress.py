"""A line every few seconds while a benchmark's long step runs, and one at its end."""

from __future__ import annotations

import time

PROGRESS_S = 3.0


class Progress:
    """A line every few seconds while something long runs."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.start = self.last = time.perf_counter()
        self.shown = -1

    def update(self, done: int, *, final: bool = False, busy: float | None = None) -> None:
        """`busy`: seconds spent in the measured work, when the rate should count only it."""
        now = time.perf_counter()
        if (final and done == self.shown) or (not final and now - self.last < PROGRESS_S):
            return
        self.last = now
        self.shown = done
        elapsed = now - self.start
        rate = done / max(elapsed if busy is None else busy, 1e-9)
        what = "/s" if busy is None else "/s in ingest_many"
        print(
            f"  {self.label}: {done:,}/{self.total:,} talks  {rate:,.0f}{what}  {elapsed:5.1f}s",
            flush=True,
        )
