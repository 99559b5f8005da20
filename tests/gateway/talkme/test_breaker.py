"""CircuitBreaker on its own, with a fake clock."""

from __future__ import annotations

import pytest

from gateway.talkme import CircuitBreaker
from tests.clock import FakeClock


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failures=3, reset_s=30.0, clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_a_new_breaker_is_closed_and_lets_calls_through(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert breaker.allow()


def test_it_stays_closed_below_the_failure_threshold(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    assert breaker.state == "closed"
    assert breaker.allow()


def test_it_opens_at_the_failure_threshold(breaker: CircuitBreaker) -> None:
    fail(breaker, 3)
    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_count_of_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == "closed"


def test_an_open_breaker_refuses_calls_until_reset_s_has_passed(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(29.9)
    assert not breaker.allow()
    assert breaker.state == "open"


def test_after_reset_s_it_is_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.state == "half_open"


def test_half_open_lets_exactly_one_probe_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()
    assert breaker.state == "half_open"


def test_a_successful_probe_closes_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.allow()


def test_a_failed_probe_reopens_it_for_another_reset_s(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_after_a_successful_probe_it_takes_the_full_threshold_to_open_again(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == "closed"


def test_a_probe_that_never_reports_is_replaced_after_reset_s(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.allow()
    clock.advance(30.0)
    assert breaker.allow()
    assert not breaker.allow()


def test_late_failures_do_not_extend_an_open_breaker(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(20.0)
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 30.0), (3, 0.0)])
def test_it_refuses_limits_that_make_no_sense(failures: int, reset_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failures=failures, reset_s=reset_s)
