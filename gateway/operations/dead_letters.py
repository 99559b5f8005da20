"""`talkgate dead-letters list` and `talkgate dead-letters replay`: the bodies talkgate
refused, listed, and sent through the webhook's ingest again once a parser fix has landed
(`Ingestor.replay`: accepted ones become deliveries and leave the dead letters; those
refused again stay, with their new reason). The admin query `deadLetters` and mutation
`replayDeadLetters` do the same over GraphQL."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from gateway.ingest.files import announcer
from gateway.ingest.ingestor import Ingestor
from gateway.progress import Progress
from gateway.settings import Settings
from gateway.startup import StartupError, opened_store, shown_url
from gateway.storage import TalkStore
from gateway.storage.protocol import dead_letter_pages
from gateway.storage.records import DeadLetter

# Exit codes: 0 every one accepted (or nothing to do), 1 some refused again.
REFUSED_AGAIN = 1
# Refusal reasons shown after a replay's summary, at most.
SHOWN_REASONS = 5


async def list_letters(settings: Settings, *, reason: str | None, limit: int) -> int:
    """Print the `limit` most recent dead letters (whose reason contains `reason`)."""
    store = await opened_store(settings.database_url, migrate=settings.auto_migrate)
    try:
        total = await store.count_dead_letters(reason=reason)
        letters = await store.dead_letters(limit=limit, reason=reason)
    finally:
        await store.close()
    which = f" whose reason contains {reason!r}" if reason else ""
    shown = f"; the {len(letters)} most recent:" if letters else ""
    print(f"{total:,} dead letter{'s' * (total != 1)}{which}{shown}")
    for letter in letters:
        part = " (only its start kept)" if letter.truncated else ""
        print(
            f"  {letter.id}  {letter.received_at}  {letter.source}"
            f"  {letter.body_size:,} bytes{part}  {letter.reason}"
        )
    return 0


async def replay(settings: Settings, *, ids: Sequence[int], every: bool, reason: str | None) -> int:
    """Replay the dead letters of `ids`, or with `every` all of them (whose reason contains
    `reason`); print progress and a summary; the exit code."""
    store = await opened_store(settings.database_url, migrate=settings.auto_migrate)
    announcing = announcer(settings)
    try:
        letters = await _chosen(store, ids, every, reason)
        # With Redis, running servers push the talks that changed to their subscribers.
        ingestor = Ingestor(
            store,
            settings.zone,
            announcing.broker if announcing else None,
            max_depth=settings.max_json_depth,
        )
        began = time.perf_counter()
        progress = Progress("replay", len(letters), sys.stderr, unit="dead letters")
        accepted, refused = 0, []
        for done, letter in enumerate(letters, start=1):
            result = await ingestor.replay(letter)
            if result.accepted:
                accepted += 1
            else:
                refused.append(f"  refused again: {result.reason} (dead letter {letter.id})")
            progress.update(done, done, final=done == len(letters))
    finally:
        await store.close()
        if announcing is not None:
            await announcing.client.aclose()
    print(
        f"replayed {len(letters):,}: accepted {accepted:,} (now deliveries; they left the dead"
        f" letters), refused again {len(refused):,} (kept, with their reason now),"
        f" in {time.perf_counter() - began:.1f}s, in {shown_url(settings.database_url)}"
    )
    for line in refused[:SHOWN_REASONS]:
        print(line)
    if len(refused) > SHOWN_REASONS:
        print(f"  ... and {len(refused) - SHOWN_REASONS:,} more: talkgate dead-letters list")
    return REFUSED_AGAIN if refused else 0


async def _chosen(
    store: TalkStore, ids: Sequence[int], every: bool, reason: str | None
) -> list[DeadLetter]:
    """The dead letters to replay, oldest first; StartupError for an id there is not."""
    if not every:
        letters = await store.dead_letters_by_id(ids)
        missing = sorted(set(ids) - {letter.id for letter in letters})
        if missing:
            raise StartupError(
                f"no dead letter {', '.join(map(str, missing))}: nothing was replayed"
                " (talkgate dead-letters list shows them)"
            )
        return sorted(letters, key=lambda letter: letter.id)
    newest_first = [x async for page in dead_letter_pages(store, reason=reason) for x in page]
    return newest_first[::-1]
