"""`talkgate migrate [--check]`: the store's schema brought to this talkgate's, or what is
pending listed. `serve` migrates by itself unless TALKGATE_AUTO_MIGRATE is false; running
this first is the upgrade's step for replicas (migrate once, then roll the replicas)."""

from __future__ import annotations

import time

from gateway.startup import shown_url, store_at, store_problems
from gateway.storage.migrations import SchemaState, newer_store

# Exit codes: 0 done (or nothing pending), 1 `--check` found migrations pending.
PENDING = 1


async def migrate(url: str, *, check: bool) -> int:
    """Migrate the store at `url` (or, with `check`, only say what is pending); the exit code.
    StartupError for a store that cannot be reached or is newer than this talkgate."""
    store = store_at(url, doc_cache_mb=0)
    with store_problems(url):
        state = await store.schema_state()
        if state.newer:
            raise newer_store(state)
    print(f"store {shown_url(url)}: schema version {state.current} of {state.latest}")
    if not state.pending:
        print("no migration pending")
        return 0
    _list(state)
    if check:
        return PENDING
    began = time.perf_counter()
    with store_problems(url):
        await store.open(migrate=True)
        await store.close()
        after = await store.schema_state()
    count = len(state.pending)
    print(
        f"applied {count} migration{'s' * (count != 1)} in {time.perf_counter() - began:.1f}s:"
        f" schema version {after.current} of {after.latest}"
    )
    return 0


def _list(state: SchemaState) -> None:
    count = len(state.pending)
    print(f"{count} pending:")
    for number, summary in enumerate(state.pending, start=state.current + 1):
        print(f"  {number}. {summary}")
