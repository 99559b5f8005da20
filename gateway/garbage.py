"""How talkgate's processes tune Python's cyclic garbage collector."""

from __future__ import annotations

import gc


def collect_less() -> None:
    """Run the cyclic garbage collector far less often than Python's default.

    A page of 100 talks, or a batch of deliveries, allocates tens of thousands of objects
    that are nearly all freed with it: at the default threshold (700) the collector ran
    dozens of times per request, each time over everything alive. It took a third of a cold
    W1 request's time at concurrency 8, and `talkgate ingest` runs about 15 % faster without
    it (bench/RESULTS.md). What exists by now (modules, the schema) is never garbage:
    frozen, it is not walked again.
    """
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
