"""The dead letters an admin key reads and replays: pages of them, and their bodies sent
through ingest again (`Services.replays`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from strawberry import ID

from gateway.errors import BadUserInput
from gateway.storage import cursor
from gateway.storage import records as stored
from gateway.storage.protocol import dead_letter_pages
from resolvers.context import Services
from resolvers.pagination import MAX_FIRST
from schema.admin import DeadLetter, DeadLetterReplay, FieldError
from schema.connections import Connection, connection_parts
from schema.scalars import UtcDateTime

KIND = "dead_letter"


def dead_letter(letter: stored.DeadLetter) -> DeadLetter:
    return DeadLetter(
        id=ID(str(letter.id)),
        received_at=UtcDateTime(letter.received_at),
        source=letter.source,
        reason=letter.reason,
        errors=[FieldError(loc=e.get("loc", ""), msg=e.get("msg", "")) for e in letter.errors],
        body=letter.body.decode("utf-8", errors="replace"),
        body_size=letter.body_size,
        truncated=letter.truncated,
    )


async def page(
    services: Services, first: int, after: str | None, reason: str | None
) -> Connection[DeadLetter]:
    """Dead letters most recent first, `first` of them after the cursor `after`, whose
    reason contains `reason` when given."""
    if not 1 <= first <= MAX_FIRST:
        raise BadUserInput(f"first must be between 1 and {MAX_FIRST}", argument="first")
    before_id = cursor.decode(KIND, after, 1)[0] if after else None
    store = services.store
    letters = await store.dead_letters(limit=first + 1, before_id=before_id, reason=reason)
    shown = letters[:first]
    edges, info = connection_parts(
        KIND,
        [(letter.id,) for letter in shown],
        [dead_letter(letter) for letter in shown],
        has_next=len(letters) > first,
        has_previous=after is not None,
    )

    async def count() -> int:
        return await store.count_dead_letters(reason=reason)

    return Connection(edges=edges, page_info=info, count=count)


def _letter_ids(ids: Sequence[ID]) -> list[int]:
    numbers = []
    for given in ids:
        if not str(given).isdigit():
            raise BadUserInput(f"not a dead letter id: {given!r}", argument="ids")
        numbers.append(int(given))
    return numbers


async def replay(services: Services, ids: Sequence[ID] | None) -> DeadLetterReplay:
    """Replay the dead letters of `ids` (every one must exist), or all of them."""
    store = services.store
    if ids is not None:
        wanted = _letter_ids(ids)
        letters = await store.dead_letters_by_id(wanted)
        missing = sorted(set(wanted) - {letter.id for letter in letters})
        if missing:
            shown = ", ".join(map(str, missing))
            raise BadUserInput(f"no dead letter {shown}: nothing was replayed", argument="ids")
        pages = _one(letters)
    else:
        pages = dead_letter_pages(store, size=100)
    accepted: list[ID] = []
    refused: list[int] = []
    async for page in pages:
        for letter in page:
            result = await services.replays.replay(letter)
            if result.accepted:
                accepted.append(ID(str(letter.id)))
            else:
                refused.append(letter.id)
    again = await store.dead_letters_by_id(refused)
    return DeadLetterReplay(accepted=accepted, still_refused=[dead_letter(x) for x in again])


async def _one(page: list[stored.DeadLetter]) -> AsyncIterator[list[stored.DeadLetter]]:
    yield page
