"""Deadlines: one sweep per event loop instead of a timer per await (the request body's)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.deadlines import Deadlines


async def test_work_done_in_time_gives_its_result_and_leaves_nothing_waiting() -> None:
    deadlines = Deadlines(0.2)

    async def quick() -> str:
        await asyncio.sleep(0)
        return "body"

    assert await deadlines.within(quick()) == "body"
    assert deadlines.waiting == 0
    # Still in time once the sweep has run (and found nothing due).
    await asyncio.sleep(deadlines.period * 2)
    assert await deadlines.within(quick()) == "body"


async def test_work_past_its_deadline_is_a_timeout_error_within_a_period_of_it() -> None:
    deadlines = Deadlines(0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadlines.within(asyncio.Event().wait())
    took = time.monotonic() - started
    assert 0.2 <= took < 0.2 + deadlines.period + 0.2  # the last term: a loaded machine
    assert deadlines.waiting == 0
    # The task is not left cancelled: it goes on awaiting.
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    await asyncio.sleep(0.01)


async def test_an_error_of_the_work_goes_through() -> None:
    deadlines = Deadlines(0.2)

    async def failing() -> None:
        raise ValueError("broken body")

    with pytest.raises(ValueError, match="broken body"):
        await deadlines.within(failing())
    assert deadlines.waiting == 0


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(5.0)
    task = asyncio.create_task(deadlines.within(asyncio.Event().wait()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.waiting == 0


async def test_each_task_has_its_own_deadline() -> None:
    deadlines = Deadlines(0.3)

    async def arrives(after: float) -> str:
        await asyncio.sleep(after)
        return "in time"

    async def read(after: float) -> str:
        try:
            return await deadlines.within(arrives(after))
        except TimeoutError:
            return "timed out"

    first = asyncio.create_task(read(10))
    await asyncio.sleep(0.2)  # the second starts later: due later
    second = asyncio.create_task(read(0.2))
    assert await first == "timed out"
    assert await second == "in time"


async def test_work_that_swallows_the_cancellation_leaves_the_task_uncancelled() -> None:
    deadlines = Deadlines(0.1)

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept going"
        return "never"

    assert await deadlines.within(stubborn()) == "kept going"
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    assert deadlines.waiting == 0


async def test_a_sweep_armed_on_a_closed_loop_does_not_stop_the_next_loop_s() -> None:
    deadlines = Deadlines(0.2)

    def on_another_loop() -> None:
        async def wait_a_little() -> None:
            await deadlines.within(asyncio.sleep(0.01))

        asyncio.run(wait_a_little())  # leaves its sweep armed on a loop now closed

    await asyncio.to_thread(on_another_loop)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        # wait_for's own limit (TimeoutError too) only stops the test if no sweep comes.
        await asyncio.wait_for(deadlines.within(asyncio.Event().wait()), 5)
    assert time.monotonic() - started < 2
