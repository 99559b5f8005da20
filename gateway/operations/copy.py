"""`talkgate copy --to URL`: a store copied into an empty one, the way to move from the
embedded SQLite to PostgreSQL. The delivery log is sent through the same checks and merge as
the webhook's (in arrival order, under the keys it was stored with), so the copy's talks,
messages, events, customers and agents are what the first store's are, and it answers the
same queries; dead letters (with when they came), agents' queue statuses, and the login
links and session revocations still in force come along as they are."""

from __future__ import annotations

import hashlib
import sys
import time
from datetime import UTC, datetime

from gateway.ingest.ingestor import Invalid, check_body, kept_errors
from gateway.progress import Progress, counted
from gateway.settings import Settings
from gateway.startup import StartupError, opened_store, shown_url
from gateway.storage import TalkStore
from gateway.storage.protocol import dead_letter_pages
from gateway.storage.records import Delivery, TalkQuery

BATCH = 500


async def copy(settings: Settings, to: str) -> int:
    """Copy the store of TALKGATE_DATABASE_URL into the empty store at `to`; the exit code
    (0, or 1 when some delivery this talkgate no longer accepts was kept as a dead letter)."""
    if to == settings.database_url:
        raise StartupError("--to names the store being copied: name another, empty one")
    began = time.perf_counter()
    source = await opened_store(settings.database_url, migrate=settings.auto_migrate)
    try:
        target = await opened_store(to, setting="--to")
        try:
            await _refuse_unless_empty(target, to)
            refused = await _deliveries(source, target, settings)
            letters = await _dead_letters(source, target)
            statuses = await source.agent_status_rows()
            for login, status, changed_at in statuses:
                await target.set_agent_status(login=login, status=status, changed_at=changed_at)
            logins = await source.login_rows(now=datetime.now(UTC))
            for digest, value, expires_at in logins:
                await target.put_ticket(digest=digest, sealed=value, expires_at=expires_at)
            talks = (await target.count_talks(query=TalkQuery()))[None]
            deliveries = await target.count_deliveries()
        finally:
            await target.close()
    finally:
        await source.close()
    print(
        f"copied {shown_url(settings.database_url)} to {shown_url(to)} in"
        f" {time.perf_counter() - began:.1f}s: {counted(deliveries, 'delivery', 'deliveries')}"
        f" ({counted(talks, 'talk', 'talks')}), {counted(letters, 'dead letter', 'dead letters')},"
        f" {counted(len(statuses), 'agent status', 'agent statuses')},"
        f" {counted(len(logins), 'login link or revocation', 'login links and revocations')}"
    )
    if refused:
        print(f"  {refused:,} deliveries this talkgate refuses now were kept as dead letters")
    return 1 if refused else 0


async def _refuse_unless_empty(target: TalkStore, to: str) -> None:
    held = (
        (await target.count_talks(query=TalkQuery()))[None]
        + await target.count_deliveries()
        + await target.count_dead_letters()
    )
    if held:
        raise StartupError(
            f"{shown_url(to)} is not empty (it holds talks, deliveries or dead letters):"
            " copy into an empty database; nothing was copied"
        )


async def _deliveries(source: TalkStore, target: TalkStore, settings: Settings) -> int:
    """The delivery log into `target` in arrival order; how many were refused (kept as dead
    letters there: a body an older talkgate accepted and this one does not)."""
    total = await source.count_deliveries()
    progress = Progress("copy", total, sys.stderr, unit="deliveries")
    done = refused = 0
    after = 0
    while page := await source.stored_deliveries(after_seq=after, limit=BATCH):
        batch = []
        for stored in page:
            check = check_body(stored.body, settings.zone, settings.max_json_depth)
            if isinstance(check, Invalid):
                refused += 1
                reason, errors, _ = kept_errors(
                    check.reason, check.errors, check.error_count, check.truncated
                )
                await target.add_dead_letter(
                    source=stored.source,
                    reason=reason,
                    errors=errors,
                    body=stored.body,
                    body_size=len(stored.body),
                )
                continue
            digest = hashlib.sha256(stored.body).hexdigest()
            batch.append(Delivery(stored.key, stored.source, stored.body, digest, check.talks))
        await target.ingest(batch)
        done += len(page)
        after = page[-1].seq
        progress.update(done, done, final=done == total)
    return refused


async def _dead_letters(source: TalkStore, target: TalkStore) -> int:
    """Every dead letter into `target`, oldest first, with when it came."""
    letters = [x async for page in dead_letter_pages(source, size=BATCH) for x in page]
    for letter in reversed(letters):
        await target.add_dead_letter(
            source=letter.source,
            reason=letter.reason,
            errors=letter.errors,
            body=letter.body,
            body_size=letter.body_size,
            truncated=letter.truncated,
            received_at=letter.received_at,
        )
    return len(letters)
