"""`talkgate backup PATH` and `talkgate restore PATH`: a SQLite store copied to one file
while `serve` runs, and copied back into a store no process has open. A PostgreSQL store is
backed up with pg_dump and restored with pg_restore (the operator guide's commands)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gateway.progress import Progress, counted
from gateway.startup import StartupError, shown_url
from gateway.storage.sqlite import sqlite_path
from gateway.storage.sqlite_copies import Contents, NotAStore, StoreInUse
from gateway.storage.sqlite_copies import backup as copy_out
from gateway.storage.sqlite_copies import restore as copy_in

_POSTGRES = (
    "{command} copies a SQLite store; {url} is PostgreSQL: use pg_dump and pg_restore"
    ' (docs/operator-guide.md, "Backup and restore")'
)


def _sqlite_file(url: str, command: str) -> str:
    if not url.startswith("sqlite:///"):
        raise StartupError(_POSTGRES.format(command=command, url=shown_url(url)))
    return sqlite_path(url)


def _reporting(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress callback of (pages done, pages in all), and what ends its display."""
    shown: list[Progress] = []
    last = [0]

    def report(done: int, total: int) -> None:
        if not shown:
            shown.append(Progress(label, total, sys.stderr, unit="pages"))
        last[0] = done
        shown[0].update(done, done)

    def finish() -> None:
        if shown:
            shown[0].update(last[0], last[0], final=True)

    return report, finish


def _summary(contents: Contents) -> str:
    return (
        f"{counted(contents.pages, 'page', 'pages')} ({contents.size / 2**20:,.1f} MiB),"
        f" schema version {contents.schema.current}:"
        f" {counted(contents.talks, 'talk', 'talks')},"
        f" {counted(contents.deliveries, 'delivery', 'deliveries')},"
        f" {counted(contents.dead_letters, 'dead letter', 'dead letters')}"
    )


async def backup(url: str, target: Path) -> int:
    """Back the SQLite store at `url` up to `target`; the exit code. StartupError (one line)
    for a PostgreSQL URL, a missing store or a `target` that exists."""
    path = _sqlite_file(url, "backup")
    began = time.perf_counter()
    report, finish = _reporting("backup")
    try:
        contents = await asyncio.to_thread(copy_out, path, target, report)
    except (FileExistsError, FileNotFoundError, NotAStore, OSError) as exc:
        raise StartupError(str(exc)) from exc
    finish()
    print(
        f"backed up {shown_url(url)} to {target} in {time.perf_counter() - began:.1f}s:"
        f" {_summary(contents)}"
    )
    return 0


async def restore(url: str, source: Path) -> int:
    """Replace the SQLite store at `url` by the backup at `source`; the exit code.
    StartupError (one line) when the store is in use or `source` is not a backup."""
    path = _sqlite_file(url, "restore")
    began = time.perf_counter()
    report, finish = _reporting("restore")
    try:
        contents = await asyncio.to_thread(copy_in, source, path, report)
    except (StoreInUse, NotAStore, OSError) as exc:
        raise StartupError(str(exc)) from exc
    finish()
    print(
        f"restored {shown_url(url)} from {source} in {time.perf_counter() - began:.1f}s:"
        f" {_summary(contents)}"
    )
    if contents.schema.pending:
        print("the backup's schema is older: `talkgate migrate` (or serve) brings it up to date")
    return 0
