"""How snapshots of one talk combine. Every store applies these rules and no others.

PipeRun delivers at least once and out of order, each delivery a full snapshot of a talk.
A talk is the merge of everything received:

- messages and events are unioned by id and never dropped;
- the top-level fields come from the most advanced snapshot: a finished one beats an
  unfinished one, then the greater latest message id wins, then the later arrival (talks
  later in one array body arrive later);
- each message and event is kept in the version of the most advanced snapshot that held it,
  so the result does not depend on the order deliveries arrive in;
- the customer and agent documents carried by a snapshot replace stored ones only when that
  snapshot wins, or when nothing is stored yet;
- a snapshot that brings nothing new (an identical redelivery) changes nothing at all;
- a message or event belongs to the talk that first brought it: a body whose messages or
  events are another talk's is refused whole (`Batch.id_conflicts`), never moves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.storage.documents import Document, NormalizedTalk, dumps_doc


@dataclass(frozen=True, order=True, slots=True)
class Rank:
    """How advanced a snapshot is; a greater rank wins."""

    finished: bool
    latest_message_id: int
    arrival: int


# Talks of one body share its delivery sequence number; their position in the body orders them.
ARRIVAL_SLOTS = 2**20


def arrival(sequence: int, position: int) -> int:
    """The arrival order of the talk at `position` in the body stored as `sequence`."""
    if not 0 <= position < ARRIVAL_SLOTS:
        raise ValueError(f"a body holds at most {ARRIVAL_SLOTS} talks")
    return sequence * ARRIVAL_SLOTS + position


def rank_of(talk: NormalizedTalk, arrival: int) -> Rank:
    return Rank(talk.finished, talk.latest_message_id, arrival)


@dataclass(frozen=True, slots=True)
class MergePlan:
    """What to do with one incoming snapshot, given the stored rank of its talk.

    `wins`: the snapshot's top-level fields replace the stored ones, and its versions of
    messages, events, customer and agents replace stored versions. When it loses, only
    rows not stored yet are added. `rank` is the rank to keep if anything changes.
    """

    wins: bool
    rank: Rank


def plan(stored: Rank | None, incoming: NormalizedTalk, arrival: int) -> MergePlan:
    incoming_rank = rank_of(incoming, arrival)
    if stored is None or incoming_rank > stored:
        return MergePlan(wins=True, rank=incoming_rank)
    return MergePlan(wins=False, rank=stored)


# -- a batch of snapshots -----------------------------------------------------------------


@dataclass(slots=True)
class TalkRow:
    """A talk row as a batch leaves it: `doc` is JSON text, `source` the snapshot it came from
    when this batch wrote it, `stored` whether the row existed before the batch."""

    rank: Rank
    doc: str
    version: int
    stored: bool
    source: NormalizedTalk | None = None
    dirty: bool = False


@dataclass(slots=True)
class RankedRow:
    """A message or event row as a batch leaves it. `original` is the (doc, talk id) stored
    before the batch, None for a new row; `item` is set when the batch wrote its document."""

    rank: Rank
    doc: str
    talk_id: int
    original: tuple[str, int] | None
    item: Document | None = None
    dirty: bool = False

    @property
    def only_rank_moved(self) -> bool:
        """Stored before, and only its rank differs from the stored row."""
        return self.original == (self.doc, self.talk_id)


@dataclass(slots=True)
class DocRow:
    """A customer, agent or channel row as a batch leaves it; `item` None for a stub.

    `replaces`: the batch last wrote it from a winning snapshot, whose document replaces a
    stored one; otherwise from a losing snapshot, which only fills a missing or stub row.
    A store whose writers do not exclude each other (PostgreSQL's replicas) writes by it:
    a row another writer filled meanwhile is then kept, as the rules want.
    """

    stub: bool
    doc: str
    version: int
    stored: bool
    item: Document | None = None
    dirty: bool = False
    replaces: bool = False


@dataclass(frozen=True, slots=True)
class Wanted:
    """The ids of the rows a batch of snapshots may touch, to be read in bulk first."""

    talks: list[int]
    messages: list[int]
    events: list[int]
    customers: list[int]
    agents: list[int]
    channels: list[int]


def wanted(talks: Iterable[NormalizedTalk]) -> Wanted:
    ids: tuple[set[int], ...] = (set(), set(), set(), set(), set(), set())
    for talk in talks:
        ids[0].add(talk.id)
        ids[1].update(m.id for m in talk.messages)
        ids[2].update(e.id for e in talk.events)
        customer = talk.customer
        ids[3].add(customer.id if customer is not None else talk.doc.fields["customer_id"])
        ids[4].update(u.id for u in talk.users)
        ids[4].update(talk.agent_ids)
        ids[5].update(ch.id for ch in talk.channels)
    return Wanted(*(sorted(s) for s in ids))


class Batch:
    """Snapshots merged one after the other against rows read in bulk, as if each were
    stored alone in turn: the rows end as the statements of a snapshot at a time would
    leave them, to be written once. Stores fill the dicts with what they hold of `wanted`
    (absent ids are rows not stored), then `merge` each snapshot in arrival order.
    """

    def __init__(self) -> None:
        self.talks: dict[int, TalkRow] = {}
        self.messages: dict[int, RankedRow] = {}
        self.events: dict[int, RankedRow] = {}
        self.customers: dict[int, DocRow] = {}
        self.agents: dict[int, DocRow] = {}
        self.channels: dict[int, DocRow] = {}

    def id_conflicts(
        self, talks: Sequence[NormalizedTalk], limit: int
    ) -> tuple[list[dict[str, str]], int]:
        """The messages and events of a body whose ids belong to another talk, as stored or
        as an earlier snapshot of this batch or of this body left them: at most `limit` as
        errors, and how many there are. PipeRun's ids are its tables' keys, one row each:
        the same id under two talks is a broken or forged body, and storing it would take
        the row away from the talk that has it."""
        errors: list[dict[str, str]] = []
        count = 0
        claimed: dict[tuple[str, int], int] = {}
        for position, talk in enumerate(talks):
            for kind, rows, items in (
                ("talk_histories", self.messages, talk.messages),
                ("talk_events", self.events, talk.events),
            ):
                for item in items:
                    row = rows.get(item.id)
                    owner = row.talk_id if row is not None else claimed.get((kind, item.id))
                    if owner is None:
                        claimed[(kind, item.id)] = talk.id
                    elif owner != talk.id:
                        count += 1
                        if len(errors) < limit:
                            where = kind if len(talks) == 1 else f"{position}.{kind}"
                            what = "message" if kind == "talk_histories" else "event"
                            errors.append(
                                {"loc": where, "msg": f"{what} {item.id} belongs to talk {owner}"}
                            )
        return errors, count

    def merge_body(self, talks: Sequence[NormalizedTalk], sequence: int) -> list[int]:
        """Apply the talks of the body stored as `sequence`, in their order; the ids of the
        talks that changed, each once."""
        changed = [
            t.id for position, t in enumerate(talks) if self.merge(t, arrival(sequence, position))
        ]
        return list(dict.fromkeys(changed))

    def merge(self, talk: NormalizedTalk, arrival: int) -> bool:
        """Apply one snapshot; True when anything changed (the talk's version moves)."""
        row = self.talks.get(talk.id)
        decided = plan(row.rank if row is not None else None, talk, arrival)
        doc_json = talk.doc.text
        top_changed = decided.wins and (row is None or row.doc != doc_json)

        rank = rank_of(talk, arrival)
        related = self._ranked(self.messages, talk.messages, talk.id, rank)
        related += self._ranked(self.events, talk.events, talk.id, rank)
        if talk.customer is not None:
            related += self._document(self.customers, talk.customer, decided.wins, stubbed=True)
        else:
            related += self._stub(self.customers, talk.doc.fields["customer_id"])
        for user in talk.users:
            related += self._document(self.agents, user, decided.wins, stubbed=True)
        for agent_id in sorted(talk.agent_ids):
            related += self._stub(self.agents, agent_id)
        for channel in talk.channels:
            self._document(self.channels, channel, decided.wins, stubbed=False)

        if row is None:
            self.talks[talk.id] = TalkRow(decided.rank, doc_json, 1, False, talk, True)
        elif top_changed:
            row.rank, row.doc, row.source = decided.rank, doc_json, talk
            row.version += 1
            row.dirty = True
        elif related:
            row.rank = decided.rank
            row.version += 1
            row.dirty = True
        else:
            return False
        return True

    def _ranked(
        self, rows: dict[int, RankedRow], items: list[Document], talk_id: int, rank: Rank
    ) -> int:
        """`merge_rows` of one snapshot's messages or events; how many change content."""
        changed = 0
        for item in items:
            current = rows.get(item.id)
            if current is None:
                rows[item.id] = RankedRow(rank, item.text, talk_id, None, item, True)
                changed += 1
            elif rank > current.rank:
                doc = item.text
                if current.doc != doc:
                    changed += 1
                current.rank, current.doc, current.talk_id, current.item = rank, doc, talk_id, item
                current.dirty = True
        return changed

    def _document(
        self, rows: dict[int, DocRow], item: Document, wins: bool, *, stubbed: bool
    ) -> int:
        doc = item.text
        current = rows.get(item.id)
        if current is None:
            rows[item.id] = DocRow(False, doc, 1, False, item, True, wins)
            return 1
        if (current.doc != doc) if wins else (stubbed and current.stub):
            current.stub, current.doc, current.item = False, doc, item
            current.version += 1
            current.dirty, current.replaces = True, wins
            return 1
        return 0

    def _stub(self, rows: dict[int, DocRow], row_id: int) -> int:
        if row_id in rows:
            return 0
        rows[row_id] = DocRow(True, dumps_doc({"id": row_id}), 1, False, None, True)
        return 1
