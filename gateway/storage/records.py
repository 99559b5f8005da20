"""What the store takes and gives: deliveries, filters, pages. Plain data, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from itertools import groupby
from operator import itemgetter
from typing import Any, Final

import orjson

from gateway.storage import cursor
from gateway.storage.documents import Doc, NormalizedTalk


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted body: its idempotency key, where it came from, the raw bytes and their
    sha256 (hex), its talks."""

    key: str
    source: str
    body: bytes
    body_sha256: str
    talks: list[NormalizedTalk]


# A delivery refused because messages or events it holds are another talk's.
ID_CONFLICT = "the body's messages or events belong to another talk"


def dead_letter_reason(reason: str, listed: int, count: int, truncated: bool = False) -> str:
    """A dead letter's reason: the rejection's, with how many errors were found when not all
    are listed (its `errors` hold the first MAX_ERRORS; `truncated`: maybe more, unread)."""
    if not truncated and listed == count:
        return reason
    more = " or more" if truncated else ""
    return f"{reason} ({count}{more} errors; the first {listed} are listed)"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the store refused a delivery instead of storing it (see `merge.Batch.id_conflicts`);
    the body was kept as dead letter `dead_letter_id`, in the same transaction."""

    reason: str
    errors: list[dict[str, str]]
    error_count: int
    dead_letter_id: int


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What storing a delivery did: `duplicate` when its key was seen before; `refused` when
    the store would not store it (nothing of it changed, and it is a dead letter)."""

    key: str
    duplicate: bool
    talk_ids: list[int]
    changed_ids: list[int]
    refused: Refusal | None = None


def refuse_repeats(deliveries: Sequence[Delivery], outcomes: list[DeliveryOutcome]) -> None:
    """Give a delivery that repeats one refused earlier in the same batch (its key or its body)
    that refusal: it counted as a duplicate only of the raw row the refusal removed, and
    delivered one at a time it would have been refused again."""
    refused: dict[tuple[str, str], Refusal] = {}
    for index, (delivery, outcome) in enumerate(zip(deliveries, outcomes, strict=True)):
        marks = (("key", delivery.key), ("body", delivery.body_sha256))
        if outcome.refused is not None:
            for mark in marks:
                refused.setdefault(mark, outcome.refused)
        elif outcome.duplicate:
            found = next((refused[m] for m in marks if m in refused), None)
            if found is not None:
                outcomes[index] = DeliveryOutcome(outcome.key, False, outcome.talk_ids, [], found)


class StoreOrder(Enum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    ID_DESC = "ID_DESC"
    ID_ASC = "ID_ASC"


# Each order's opposite: a backward page is read in it (PageRequest.read_order).
_OPPOSITE: Final[dict[StoreOrder, StoreOrder]] = {
    StoreOrder.CREATED_AT_DESC: StoreOrder.CREATED_AT_ASC,
    StoreOrder.CREATED_AT_ASC: StoreOrder.CREATED_AT_DESC,
    StoreOrder.ID_DESC: StoreOrder.ID_ASC,
    StoreOrder.ID_ASC: StoreOrder.ID_DESC,
}


@dataclass(frozen=True, slots=True)
class TalkQuery:
    """Filters over talks; every field narrows, None means "any"."""

    customer_id: int | None = None
    agent_id: int | None = None
    queue_id: int | None = None
    channel_id: int | None = None
    tracking_number: str | None = None
    external_protocol: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    status: str | None = None
    was_success: bool | None = None
    is_critical: bool | None = None
    text: str | None = None
    talk_id: int | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`first` items after the opaque `after` cursor (from the list's start without one);
    or, with `last`, the `last` items just before the `before` cursor (up to the list's end
    without one). Either way the page's items come in the list's own order.

    A store reads a backward page as a forward one in the opposite order (the same cursor,
    the comparison and the ORDER BY turned round), then turns it back (`Page.settle`)."""

    first: int = 0
    after: str | None = None
    last: int | None = None
    before: str | None = None

    @property
    def backward(self) -> bool:
        return self.last is not None

    @property
    def size(self) -> int:
        """How many items the page holds at most."""
        return self.first if self.last is None else self.last

    @property
    def cursor(self) -> str | None:
        """The cursor the page starts from, in the direction it is read."""
        return self.after if self.last is None else self.before

    def ascending(self, ascending: bool) -> bool:
        """Whether the statement reads ascending, for a list that is `ascending`."""
        return ascending != self.backward

    def read_order(self, order: StoreOrder) -> StoreOrder:
        """The order the statement reads a page of a list in `order` in."""
        return _OPPOSITE[order] if self.backward else order


@dataclass(slots=True)
class Page:
    """One page of documents, each with the sort key (`keys`, the same index as `docs`)
    its opaque cursor is made of, as `kind`'s (see `cursor.encode`); for a page of talks
    read `with_customers`, the customers of its talks too, by id.

    A cursor is encoded only when asked for (`cursor`, `items`, `end_cursor`): most pages
    are read for their documents, and encoding each item's cursor was a sixth of the CPU
    of a page of 100 talks."""

    kind: str
    docs: list[Doc] = field(default_factory=list)
    keys: list[tuple[int, ...]] = field(default_factory=list)
    has_next: bool = False
    customers: dict[int, Doc] = field(default_factory=dict)
    has_previous: bool = False

    def add(self, key: tuple[int, ...], doc: Doc) -> None:
        self.keys.append(key)
        self.docs.append(doc)

    def settle(self, request: PageRequest, more: bool) -> Page:
        """The page read for `request`, in the direction it was read (`more`: a row beyond
        its size was found), put in the list's order with which sides go on.

        Forward, items precede the page when it starts after a cursor (the item the cursor
        was made from, at least: Relay lets a server say so when it knows it cheaply);
        backward, items follow it when it ends before one."""
        if request.last is None:
            self.has_next, self.has_previous = more, request.after is not None
        else:
            self.keys.reverse()
            self.docs.reverse()
            self.has_next, self.has_previous = request.before is not None, more
        return self

    @classmethod
    def of_rows(
        cls, kind: str, rows: Iterable[tuple[int, str | bytes]], request: PageRequest
    ) -> Page:
        """The page of `kind` that rows of (id, document JSON) make, read for `request`
        (one row beyond its size, when there is one: then the page has more)."""
        page = cls(kind)
        more = False
        for row_id, doc in rows:
            if len(page.docs) == request.size:
                more = True
                break
            page.add((row_id,), orjson.loads(doc))
        return page.settle(request, more)

    def cursor(self, index: int) -> str:
        """The cursor of item `index`."""
        return cursor.encode(self.kind, *self.keys[index])

    @property
    def items(self) -> list[tuple[str, Doc]]:
        """Each item as (its cursor, its document), in order."""
        kind, encode = self.kind, cursor.encode
        return [(encode(kind, *key), doc) for key, doc in zip(self.keys, self.docs, strict=True)]

    @property
    def start_cursor(self) -> str | None:
        return self.cursor(0) if self.keys else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursor(-1) if self.keys else None


# Of a row beginning (group, created_us, talk id, version): its group (the stores sort by
# it too), its talk's id, its stamp (talk id, version) and its sort key by creation.
ROW_GROUP: Final = itemgetter(0)
_TALK_ID: Final = itemgetter(2)
_STAMP: Final = itemgetter(2, 3)
_CREATED_KEY: Final = itemgetter(1, 2)


class TalkPages:
    """Pages of talks as a store reads them: its rows placed in their group's page in the
    statement's order, the request's size at most (a row beyond says more follow in that
    direction); then, once the documents of the rows placed are read (by the versions in
    `stamps`), the pages with them in the list's order (`Page.settle`), each talk with its
    sort key (`size` sort values: (created_us, id) or (id,)) and its customer when read.

    A page's rows are taken as one run, sliced, mapped with C-level getters: per-row Python
    bookkeeping was a fifth of a 100-talk page's read."""

    def __init__(
        self, request: PageRequest, kind: str, size: int, group_ids: Sequence[int] | None
    ) -> None:
        self._request = request
        self._kind = kind
        self._size = size
        self._grouped = group_ids is not None
        self._pages: dict[int | None, Page] = (
            {None: Page(kind)} if group_ids is None else {i: Page(kind) for i in group_ids}
        )
        self._more: set[int | None] = set()
        self._placed: list[tuple[Page, Sequence[Sequence[Any]]]] = []
        self.stamps: list[tuple[int, int]] = []

    def place(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows beginning (group, created_us, talk id, version), the group ignored when the
        pages are not grouped, in the statement's order (so each group's together); once
        per read."""
        runs: Iterable[tuple[int | None, Sequence[Sequence[Any]]]] = (
            ((grp, list(run)) for grp, run in groupby(rows, ROW_GROUP))
            if self._grouped
            else ((None, rows),)
        )
        pages, first = self._pages, self._request.size
        for grp, run in runs:
            target = pages.get(grp)
            if target is None:
                target = pages[grp] = Page(self._kind)
            if len(run) > first:
                self._more.add(grp)
                run = run[:first]
            self._placed.append((target, run))
            self.stamps.extend(map(_STAMP, run))

    def filled(
        self, talks: Mapping[int, Doc], customers: Mapping[int, Doc]
    ) -> dict[int | None, Page]:
        """The pages, with `talks` (every row placed) and those of `customers` they name."""
        for target, run in self._placed:
            docs = list(map(talks.__getitem__, map(_TALK_ID, run)))
            target.docs.extend(docs)
            if self._size == 2:
                target.keys.extend(map(_CREATED_KEY, run))
            else:
                target.keys.extend([(talk_id,) for talk_id in map(_TALK_ID, run)])
            if customers:
                held = target.customers
                for doc in docs:
                    customer = customers.get(doc["customer_id"])
                    if customer is not None:
                        held[doc["customer_id"]] = customer
        for grp, target in self._pages.items():
            target.settle(self._request, grp in self._more)
        return self._pages


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A body talkgate could not accept, kept with the reason so nothing sent is lost."""

    id: int
    received_at: str
    source: str
    reason: str
    errors: list[dict[str, str]]
    body: bytes
    body_size: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Replayed:
    """A dead letter's body sent through ingest again: `accepted` (stored as a delivery, the
    dead letter gone), or refused again with `reason` (kept with it)."""

    letter_id: int
    accepted: bool
    reason: str
    talk_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """An accepted body as the delivery log keeps it, in arrival order (`seq`)."""

    seq: int
    key: str
    source: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge removed (or, dry, would remove)."""

    talks: int = 0
    messages: int = 0
    events: int = 0
    deliveries: int = 0
    dead_letters: int = 0
    customers: int = 0
    agents: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def counts(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}
