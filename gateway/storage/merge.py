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
- a snapshot that brings nothing new (an identical redelivery) changes nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.payload import NormalizedTalk


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


@dataclass(frozen=True, slots=True)
class RowMerge:
    """Which rows of a snapshot to write, and how many of them change content."""

    writes: frozenset[int]
    changed: int


def merge_rows(
    stored: Mapping[int, tuple[Rank, object]],
    incoming: Iterable[tuple[int, object]],
    rank: Rank,
) -> RowMerge:
    """Messages or events of a snapshot of rank `rank` against the stored versions.

    A row is written when it is missing, or when this snapshot outranks the snapshot the
    stored version came from; it counts as changed when its content differs.
    """
    writes: set[int] = set()
    changed = 0
    for row_id, doc in incoming:
        current = stored.get(row_id)
        if current is None or rank > current[0]:
            writes.add(row_id)
            changed += current is None or current[1] != doc
    return RowMerge(frozenset(writes), changed)
