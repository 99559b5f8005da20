"""Reads shared in rounds (gateway/storage/rounds.py): callers asking together share one
read, and none is answered by a read begun before it asked, whatever the interleaving."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage.rounds import Rounds


class Source:
    """A value that commits change; a read returns the value it began at, later."""

    def __init__(self, pauses: list[int] | None = None) -> None:
        self.value = 0
        self.reads = 0
        self.pauses = pauses or [1]
        self.fail_next = False

    async def read(self) -> int:
        began = self.value
        pause = self.pauses[self.reads % len(self.pauses)]
        self.reads += 1
        for _ in range(pause):
            await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("store down")
        return began


async def test_callers_asking_together_share_one_read_after_the_first() -> None:
    source = Source()
    rounds = Rounds(source.read)
    values = await asyncio.gather(*(rounds() for _ in range(10)))
    # The first caller's read begins at once; the nine asking in the same turn share the next.
    assert values == [0] * 10
    assert source.reads == 2


# A schedule: callers asking, commits changing the value, turns of the loop passing.
STEPS = st.lists(st.sampled_from(["ask", "commit", "turn"]), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS, pauses=st.lists(st.integers(0, 4), min_size=1, max_size=5))
def test_no_caller_is_answered_by_a_read_begun_before_it_asked(
    steps: list[str], pauses: list[int]
) -> None:
    async def run() -> None:
        source = Source(pauses)
        rounds = Rounds(source.read)
        checks: list[asyncio.Task[None]] = []

        async def ask(known: int) -> None:
            assert await rounds() >= known  # the commits it could know of are seen

        for step in steps:
            if step == "ask":
                checks.append(asyncio.create_task(ask(source.value)))
                await asyncio.sleep(0)
            elif step == "commit":
                source.value += 1
            else:
                await asyncio.sleep(0)
        await asyncio.gather(*checks)
        assert source.reads <= len(checks)

    asyncio.run(run())


async def test_a_failed_read_fails_its_round_and_the_next_round_reads_again() -> None:
    source = Source()
    rounds = Rounds(source.read)
    source.fail_next = True
    results = await asyncio.gather(rounds(), return_exceptions=True)
    assert isinstance(results[0], ConnectionError)
    assert await rounds() == 0


async def test_a_cancelled_caller_leaves_its_round_to_the_others() -> None:
    source = Source([3])
    rounds = Rounds(source.read)
    first = asyncio.create_task(rounds())
    second = asyncio.create_task(rounds())
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 0
    with pytest.raises(asyncio.CancelledError):
        await first


def test_rounds_work_again_on_another_loop() -> None:
    source = Source([5])
    rounds = Rounds(source.read)

    async def abandon() -> None:
        task = asyncio.create_task(rounds())
        await asyncio.sleep(0)
        task.cancel()

    asyncio.run(abandon())  # the loop closes with a round begun and never finished
    assert asyncio.run(rounds()) == 0
