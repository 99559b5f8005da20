"""The store's contract: every backend implements it and passes one shared test suite."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Literal, Protocol

from gateway.storage.documents import Doc
from gateway.storage.migrations import SchemaState
from gateway.storage.records import (
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    Page,
    PageRequest,
    Purged,
    StoredDelivery,
    StoreOrder,
    TalkQuery,
)

TalkGroup = Literal["customer_id", "agent_id"]


class StoreUnavailable(Exception):
    """The store cannot be reached or written right now; the caller may retry later."""


class TalkStore(Protocol):
    """The cache of PipeRun talks, its raw delivery log and its dead letters."""

    async def open(self, *, migrate: bool = True) -> None:
        """Open the store, bringing its schema to this talkgate's (`migrate`); with
        `migrate` false nothing is made or changed, and a store with migrations pending is
        refused. A store of a newer schema is refused either way, never changed: both as
        StoreSchemaError (gateway/storage/migrations.py)."""
        ...

    async def schema_state(self) -> SchemaState:
        """The store's schema version against this talkgate's, read now; the store need not
        be open, and nothing is made (a SQLite file that does not exist is at version 0)."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot answer."""
        ...

    async def generation(self) -> str:
        """Which state the store is in: this database's id and a number every commit that
        changes talks advances, whoever commits it. A reader that sees a generation sees
        every such commit up to it."""
        ...

    async def ingest(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Store deliveries in one transaction, merging their talks; all or nothing."""
        ...

    async def add_dead_letter(
        self,
        *,
        source: str,
        reason: str,
        errors: list[dict[str, str]],
        body: bytes,
        body_size: int,
        truncated: bool = False,
        received_at: str | None = None,
    ) -> int:
        """Keep a refused body; `received_at` (ISO 8601 UTC): when it came, if not now."""
        ...

    async def dead_letters(
        self, *, limit: int = 100, before_id: int | None = None, reason: str | None = None
    ) -> list[DeadLetter]:
        """Dead letters, most recent first: those older than `before_id` (a page's next),
        whose reason contains `reason` (case aside) when given."""
        ...

    async def count_dead_letters(self, *, reason: str | None = None) -> int:
        """How many dead letters there are (whose reason contains `reason`, when given)."""
        ...

    async def dead_letters_by_id(self, ids: Sequence[int]) -> list[DeadLetter]:
        """The dead letters of those ids that exist, in the order of `ids`."""
        ...

    async def update_dead_letter(
        self, letter_id: int, *, reason: str, errors: list[dict[str, str]]
    ) -> None:
        """Give a dead letter its new reason (a replay refused it again)."""
        ...

    async def remove_dead_letters(self, ids: Sequence[int]) -> int:
        """Remove those dead letters (their bodies were accepted since); how many went."""
        ...

    async def raw_deliveries(self, *, talk_id: int) -> list[bytes]: ...

    async def purge(self, *, before: str, limit: int | None = 500, dry: bool = False) -> Purged:
        """Remove up to `limit` talks finished before `before` (ISO 8601 UTC) with their
        messages, events and search words, the raw deliveries left with no talk, the customers
        and agents left with none, and the dead letters received before it; in one transaction,
        which advances the generation (cached answers go). `dry`: count, change nothing
        (`limit` then counts every one). Deleted content is overwritten, not only unlinked."""
        ...

    async def count_finished_before(self, before: str) -> int:
        """How many talks finished before `before` (ISO 8601 UTC): what a purge would take."""
        ...

    async def checkpoint(self) -> None:
        """After a purge: what the store keeps beside its file of what went, cleared (SQLite's
        WAL written back and emptied); nothing for PostgreSQL."""
        ...

    async def stored_deliveries(
        self, *, after_seq: int = 0, limit: int = 500
    ) -> list[StoredDelivery]:
        """The delivery log from after `after_seq`, in arrival order, `limit` at most."""
        ...

    async def count_deliveries(self) -> int: ...

    async def agent_status_rows(self) -> list[tuple[str, str, str]]:
        """Every agent's queue status: (login, status, changed_at)."""
        ...

    async def login_rows(self, *, now: datetime) -> list[tuple[str, str, datetime]]:
        """The login tickets and session revocations still in force: (digest, value,
        expires_at), as `put_ticket` and `put_revocation` keep them."""
        ...

    async def talks_by_id(self, ids: Sequence[int]) -> dict[int, Doc]: ...

    async def talk_by_tracking_number(self, tracking_number: str) -> Doc | None: ...

    async def talk_pages(
        self,
        *,
        query: TalkQuery,
        page: PageRequest,
        order: StoreOrder,
        group: TalkGroup | None = None,
        group_ids: Sequence[int] = (),
        with_customers: bool = False,
    ) -> dict[int | None, Page]:
        """Talks matching `query`: {None: page}, or with `group` one page per id of `group_ids`.

        `with_customers`: each page's `customers` holds its talks' customers, read with them
        (one store call where `customers_by_id` would be a second). Best effort: a customer
        missing there is one to read through `customers_by_id`, which reports what fails.
        """
        ...

    async def count_talks(
        self, *, query: TalkQuery, group: TalkGroup | None = None, group_ids: Sequence[int] = ()
    ) -> dict[int | None, int]: ...

    async def message_pages(self, *, talk_ids: Sequence[int], page: PageRequest) -> dict[int, Page]:
        """Messages of each talk, oldest first."""
        ...

    async def count_messages(self, talk_ids: Sequence[int]) -> dict[int, int]: ...

    async def events_by_talk(self, talk_ids: Sequence[int]) -> dict[int, list[Doc]]: ...

    async def customers_by_id(self, ids: Sequence[int]) -> dict[int, Doc]: ...

    async def customer_page(self, *, search: str | None, page: PageRequest) -> Page: ...

    async def count_customers(self, *, search: str | None) -> int: ...

    async def agents_by_id(self, ids: Sequence[int]) -> dict[int, Doc]: ...

    async def agent_by_login(self, login: str) -> Doc | None: ...

    async def agent_page(self, *, page: PageRequest) -> Page: ...

    async def count_agents(self) -> int: ...

    async def channels_by_id(self, ids: Sequence[int]) -> dict[int, Doc]: ...

    async def messages_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        """Messages (`talk_histories`) by their own id, whatever their talk."""
        ...

    async def events_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        """Tabulation records (`talk_events`) by their own id, whatever their talk."""
        ...

    async def set_agent_status(self, *, login: str, status: str, changed_at: str) -> None:
        """Remember the last queue status talkgate set for `login` through Talk.me."""
        ...

    async def agent_statuses(self, logins: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(status, changed_at) of each login talkgate set a status for."""
        ...

    async def put_ticket(self, *, digest: str, sealed: str, expires_at: datetime) -> None:
        """Keep a one-time login ticket (by the digest of its id) until `expires_at`."""
        ...

    async def take_ticket(self, *, digest: str, now: datetime) -> str | None:
        """Remove and return a ticket's sealed content; None if unknown, used or expired."""
        ...

    async def put_revocation(self, *, digest: str, mark: str, expires_at: datetime) -> None:
        """Keep a session revocation beside the tickets until `expires_at`; of two under one
        digest, the one expiring later is kept."""
        ...

    async def revocation_marks(self, *, digests: Sequence[str], now: datetime) -> list[str]:
        """The marks of the revocations under those digests that have not expired."""
        ...


class ReadsById(ABC):
    """The by-id reads of `TalkStore`, one table each, as both backends answer them: through
    the backend's own `_docs_by_id(table, ids)` (the documents found, by id)."""

    @abstractmethod
    async def _docs_by_id(self, table: str, ids: Sequence[int]) -> dict[int, Doc]: ...

    async def talks_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("talks", ids)

    async def customers_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("customers", ids)

    async def agents_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("agents", ids)

    async def channels_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("channels", ids)

    async def messages_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("messages", ids)

    async def events_by_id(self, ids: Sequence[int]) -> dict[int, Doc]:
        return await self._docs_by_id("events", ids)


async def dead_letter_pages(
    store: TalkStore, *, reason: str | None = None, size: int = 500
) -> AsyncIterator[list[DeadLetter]]:
    """Every dead letter there is now (whose reason contains `reason`), newest first, a page
    at a time. Pages go by id, so removing the letters of a page, or changing them, does not
    move the pages still to come (a replay does both)."""
    before_id: int | None = None
    while page := await store.dead_letters(limit=size, before_id=before_id, reason=reason):
        yield page
        before_id = page[-1].id
