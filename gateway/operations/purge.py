"""Retention: `talkgate purge --before DATE [--dry-run]`, and the daily purge `serve` runs
when TALKGATE_RETENTION_DAYS is set. Talks finished before the date go, with their messages,
events and search words, the raw deliveries and the customers and agents left with no talk,
and the dead letters received before it (`TalkStore.purge`), a batch of talks per
transaction; what went is overwritten in the SQLite file, not only unlinked."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo

from gateway.progress import Progress
from gateway.settings import Settings
from gateway.startup import StartupError, opened_store, shown_url
from gateway.storage import TalkStore
from gateway.storage.records import Purged

log = logging.getLogger("talkgate")

# Talks per transaction: short ones, so that deliveries arriving meanwhile wait little.
BATCH = 500
DAY_S = 24 * 3600.0


def cutoff(text: str, zone: tzinfo) -> str:
    """`text` (a date: its midnight in `zone`; or an ISO 8601 date and time, naive ones in
    `zone`) as the ISO 8601 UTC text the store compares; StartupError when it is neither."""
    try:
        moment = (
            datetime.combine(date.fromisoformat(text), datetime.min.time())
            if len(text) == 10
            else datetime.fromisoformat(text)
        )
    except ValueError:
        raise StartupError(
            f"--before {text!r} is not a date (2025-01-31) nor a date and time"
            " (2025-01-31T12:00:00-03:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def purge_all(
    store: TalkStore, before: str, on_batch: Callable[[Purged], None] = lambda _: None
) -> Purged:
    """Purge in batches until nothing is left to take; what went, in all."""
    total = Purged()
    while True:
        done = await store.purge(before=before, limit=BATCH)
        total += done
        on_batch(done)
        if done.talks < BATCH:
            break
    if any(total.counts().values()):
        await store.checkpoint()
    return total


def _shown(purged: Purged) -> str:
    return ", ".join(
        f"{count:,} {what.replace('_', ' ')}" for what, count in purged.counts().items()
    )


async def purge(settings: Settings, *, before: str, dry: bool) -> int:
    """`talkgate purge`: print what went (or, `dry`, would go); the exit code."""
    moment = cutoff(before, settings.zone)
    store = await opened_store(settings.database_url, migrate=settings.auto_migrate)
    began = time.perf_counter()
    where = shown_url(settings.database_url)
    try:
        if dry:
            would = await store.purge(before=moment, dry=True)
            print(f"would purge from {where} what finished before {moment}: {_shown(would)}")
            return 0
        # Counted, not a dry purge: that would take the write lock for the whole purge.
        talks = await store.count_finished_before(moment)
        progress = Progress("purge", talks, sys.stderr, unit="talks")
        done = [0]

        def shown(batch: Purged) -> None:
            done[0] += batch.talks
            progress.update(done[0], done[0], final=batch.talks < BATCH)

        total = await purge_all(store, moment, shown)
    finally:
        await store.close()
    print(
        f"purged from {where} what finished before {moment} in"
        f" {time.perf_counter() - began:.1f}s: {_shown(total)}"
    )
    return 0


async def daily(
    store: TalkStore, days: int, on_purged: Callable[[Purged], None], interval_s: float = DAY_S
) -> None:
    """What `serve` runs with TALKGATE_RETENTION_DAYS: a purge at start, then every day."""
    while True:
        before = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            purged = await purge_all(store, before)
        except Exception:  # the next day tries again; the server goes on
            log.exception("the retention purge failed")
        else:
            on_purged(purged)
            log.info("retention purge", extra={"before": before, **purged.counts()})
        await asyncio.sleep(interval_s)
