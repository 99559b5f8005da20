"""What a long command shows while it works: a progress bar on a terminal, a line every few
seconds elsewhere (a log, CI); each command ends with its own summary line."""

from __future__ import annotations

import time
from typing import IO


class Progress:
    """`label`'s progress towards `total` (bytes, pages, rows: whatever `done` counts), with
    how many `unit` are done so far and their rate."""

    def __init__(self, label: str, total: int, stream: IO[str], *, unit: str) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream
        self.unit = unit
        self.tty = stream.isatty()
        self.start = time.perf_counter()
        self.last = self.start

    def update(self, done: int, items: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        fraction = min(done / self.total, 1.0)
        rate = items / max(now - self.start, 1e-9)
        shown = f"{fraction:6.1%}  {items} {self.unit}  {rate:,.0f}/s"
        if self.tty:
            bar = "#" * int(fraction * 30)
            self.stream.write(f"\r[{bar:<30}] {shown}")
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {shown}\n")
        self.stream.flush()


def counted(number: int, one: str, many: str) -> str:
    """`number` with its noun, as a summary line says it: 1 talk, 2 talks, 1,000 talks."""
    return f"{number:,} {one if number == 1 else many}"
