"""The merge rules: which snapshot of a talk is the most advanced (pure, no store)."""

from __future__ import annotations

import pytest

from gateway.ingest.validation import validate_talks
from gateway.storage import merge
from gateway.storage.documents import NormalizedTalk
from gateway.storage.merge import Rank, plan, rank_of
from tests.factories import Payload, snapshot

TALK = 114700


def normalized(payload: Payload) -> NormalizedTalk:
    [talk] = validate_talks(payload)
    return talk


def test_the_rank_of_a_snapshot_is_finished_latest_message_id_and_arrival() -> None:
    talk = normalized(snapshot(TALK, [12, 30, 7], finished=True))

    assert rank_of(talk, 9) == Rank(finished=True, latest_message_id=30, arrival=9)


def test_a_snapshot_without_messages_has_latest_message_id_zero() -> None:
    talk = normalized(snapshot(TALK, []))

    assert rank_of(talk, 1) == Rank(finished=False, latest_message_id=0, arrival=1)


@pytest.mark.parametrize(
    ("higher", "lower"),
    [
        (Rank(True, 1, 1), Rank(False, 999_999, 999)),
        (Rank(True, 0, 1), Rank(False, 1, 2)),
        (Rank(False, 11, 1), Rank(False, 10, 999)),
        (Rank(True, 11, 1), Rank(True, 10, 999)),
        (Rank(False, 10, 2), Rank(False, 10, 1)),
        (Rank(True, 10, 2), Rank(True, 10, 1)),
    ],
    ids=[
        "finished-beats-more-messages",
        "finished-beats-later-arrival",
        "greater-latest-id-beats-later-arrival",
        "greater-latest-id-among-finished",
        "later-arrival-breaks-a-tie",
        "later-arrival-breaks-a-tie-among-finished",
    ],
)
def test_ranks_order_finished_then_latest_message_then_arrival(higher: Rank, lower: Rank) -> None:
    assert higher > lower
    assert max(lower, higher) == higher


def test_the_first_snapshot_of_a_talk_wins() -> None:
    talk = normalized(snapshot(TALK, [11]))

    result = plan(None, talk, 1)

    assert result.wins
    assert result.rank == rank_of(talk, 1)


def test_a_finished_snapshot_beats_an_unfinished_one_whatever_the_message_ids() -> None:
    stored = Rank(finished=False, latest_message_id=99_999, arrival=1)

    result = plan(stored, normalized(snapshot(TALK, [11], finished=True)), 2)

    assert result.wins
    assert result.rank == Rank(True, 11, 2)


def test_an_unfinished_snapshot_loses_to_a_finished_one_whatever_the_message_ids() -> None:
    stored = Rank(finished=True, latest_message_id=11, arrival=1)

    result = plan(stored, normalized(snapshot(TALK, [11, 99_999])), 2)

    assert not result.wins
    assert result.rank == stored


def test_a_greater_latest_message_id_wins_even_when_it_arrives_first() -> None:
    stored = Rank(finished=False, latest_message_id=12, arrival=5)

    result = plan(stored, normalized(snapshot(TALK, [11, 13])), 3)

    assert result.wins
    assert result.rank == Rank(False, 13, 3)


def test_a_smaller_latest_message_id_loses_even_when_it_arrives_later() -> None:
    stored = Rank(finished=False, latest_message_id=13, arrival=1)

    result = plan(stored, normalized(snapshot(TALK, [11, 12])), 2)

    assert not result.wins
    assert result.rank == stored


@pytest.mark.parametrize("finished", [False, True])
def test_with_identical_ranks_but_arrival_the_later_snapshot_wins(finished: bool) -> None:
    stored = Rank(finished=finished, latest_message_id=12, arrival=1)

    result = plan(stored, normalized(snapshot(TALK, [11, 12], finished=finished)), 2)

    assert result.wins
    assert result.rank == Rank(finished, 12, 2)


@pytest.mark.parametrize("finished", [False, True])
def test_with_identical_ranks_but_arrival_the_earlier_snapshot_loses(finished: bool) -> None:
    stored = Rank(finished=finished, latest_message_id=12, arrival=2)

    result = plan(stored, normalized(snapshot(TALK, [11, 12], finished=finished)), 1)

    assert not result.wins
    assert result.rank == stored


# -- rows (messages, events) ----------------------------------------------------------------


def holding(message_id: int, rank: Rank, doc: str) -> merge.Batch:
    """A batch in which the store held one message, of a snapshot of rank `rank`."""
    batch = merge.Batch()
    batch.messages[message_id] = merge.RankedRow(rank, doc, TALK, (doc, TALK))
    return batch


def test_rows_missing_from_the_store_are_written_and_counted_changed() -> None:
    talk = normalized(snapshot(TALK, [11, 12]))
    batch = merge.Batch()

    assert batch.merge(talk, 1)

    written = {i: (row.doc, row.dirty, row.original) for i, row in batch.messages.items()}
    assert written == {m.id: (m.text, True, None) for m in talk.messages}


def test_a_row_from_an_outranked_source_is_replaced() -> None:
    talk = normalized(snapshot(TALK, [11, 12]))
    batch = holding(11, Rank(False, 10, 1), "old")

    batch.merge(talk, 2)

    row = batch.messages[11]
    assert (row.doc, row.rank, row.dirty) == (talk.messages[0].text, rank_of(talk, 2), True)
    assert not row.only_rank_moved


def test_a_row_from_a_higher_source_is_kept() -> None:
    talk = normalized(snapshot(TALK, [11, 12]))
    batch = holding(11, Rank(True, 14, 1), "newer")

    batch.merge(talk, 2)

    row = batch.messages[11]
    assert (row.doc, row.rank, row.dirty) == ("newer", Rank(True, 14, 1), False)


def test_an_identical_row_from_a_higher_source_moves_its_rank_without_counting_a_change() -> None:
    talk = normalized(snapshot(TALK, [11]))
    batch = merge.Batch()
    assert batch.merge(talk, 1)

    # The same snapshot arriving later outranks the first, and brings nothing new.
    assert not batch.merge(talk, 2)

    assert batch.messages[11].rank == rank_of(talk, 2)


def test_talks_later_in_one_body_arrive_later() -> None:
    assert merge.arrival(5, 0) < merge.arrival(5, 1) < merge.arrival(6, 0)
    with pytest.raises(ValueError, match="at most"):
        merge.arrival(5, merge.ARRIVAL_SLOTS)
