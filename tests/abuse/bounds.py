"""Time, memory and event-loop bounds for the abuse suite, with the figures printed.

Each abusive shape runs once under `bounded(...)`: its wall time, the peak of Python memory
allocated while it ran (tracemalloc) and the longest stall of the event loop (a ticker task
that should wake every 5 ms) are measured, printed in pytest's terminal summary, and asserted
against generous bounds: far above what the shape costs when it is refused properly, far
below what it cost when it was not.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

FIGURES: list[str] = []
_TICK_S = 0.005


@dataclass
class Figures:
    """What one abusive request cost, filled in when its `bounded` block ends."""

    name: str
    seconds: float = 0.0
    peak_mib: float = 0.0
    stall_ms: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        more = "".join(f", {k} {v}" for k, v in self.extra.items())
        return (
            f"{self.name}: {self.seconds * 1000:.1f} ms, peak {self.peak_mib:.1f} MiB,"
            f" loop stall {self.stall_ms:.1f} ms{more}"
        )


async def _ticker(stalls: list[float], last: list[float]) -> None:
    last[0] = time.perf_counter()
    while True:
        await asyncio.sleep(_TICK_S)
        now = time.perf_counter()
        stalls.append(now - last[0] - _TICK_S)
        last[0] = now


@asynccontextmanager
async def bounded(
    name: str, *, seconds: float, peak_mib: float, stall_ms: float | None = None
) -> AsyncIterator[Figures]:
    """Measure the block; fail when it took longer, allocated more, or stalled the loop
    longer than the bounds. `stall_ms` defaults to the time bound."""
    figures = Figures(name)
    stalls: list[float] = [0.0]
    last = [time.perf_counter()]
    ticker = asyncio.create_task(_ticker(stalls, last))
    await asyncio.sleep(0)  # let the ticker take its first timestamp
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    try:
        yield figures
    finally:
        ended = time.perf_counter()
        figures.seconds = ended - started
        stalls.append(ended - last[0] - _TICK_S)  # a stall the block ended in
        _, peak = tracemalloc.get_traced_memory()
        if not already:
            tracemalloc.stop()
        ticker.cancel()
        figures.peak_mib = max(0, peak - base) / (1024 * 1024)
        figures.stall_ms = max(stalls) * 1000
        FIGURES.append(figures.line())
    assert figures.seconds <= seconds, figures.line()
    assert figures.peak_mib <= peak_mib, figures.line()
    limit = stall_ms if stall_ms is not None else seconds * 1000
    assert figures.stall_ms <= limit, figures.line()
