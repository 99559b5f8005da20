"""How talkgate writes a moment: ISO 8601 in UTC, with `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime, *, timespec: str = "auto") -> str:
    """`moment` (aware) in UTC as ISO 8601 ending in `Z`."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def now_iso(*, timespec: str = "auto") -> str:
    return iso(datetime.now(UTC), timespec=timespec)
