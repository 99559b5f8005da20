"""How snapshots of one talk combine. Every store applies these rules and no others.

PipeRun delivers at least once and out of order, each delivery a full snapshot of a talk.
A talk is the merge of everything received:

- messages and events are unioned by id and never dropped;
- the top-level fields come from the most advanced snapshot: a finished one beats an
  unfinished one, then the greater latest message id wins, then the later arrival;
- where a message or event id is already stored, the version from the winning snapshot is
  kept (a losing, older snapshot adds what is missing and changes nothing else);
- the customer and agent documents carried by a snapshot replace stored ones only when that
  snapshot wins, or when nothing is stored yet;
- a snapshot that brings nothing new (an identical redelivery) changes nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.payload import NormalizedTalk


@dataclass(frozen=True, order=True, slots=True)
class Rank:
    """How advanced a snapshot is; a greater rank wins."""

    finished: bool
    latest_message_id: int
    arrival: int


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
