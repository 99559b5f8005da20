"""TalkmeClient's breakers: one per operation, a call counts once, answered 4xx is no failure."""

from __future__ import annotations

import asyncio

import pytest

from gateway.talkme import (
    SandboxState,
    TalkmeBadInput,
    TalkmeClient,
    TalkmeNotFound,
    TalkmeRejected,
    TalkmeUnavailable,
)
from tests.clock import FakeClock
from tests.gateway.talkme.support import FAILURES, LOGIN, PASSWORD, RESET_S


async def open_the_logout_circuit(talkme: TalkmeClient, sandbox: SandboxState) -> None:
    sandbox.fail_next(1000, status=503)
    for _ in range(FAILURES):
        with pytest.raises(TalkmeUnavailable, match="answered 503"):
            await talkme.logout(login=LOGIN, password=PASSWORD)
    sandbox.reset()


async def test_after_the_configured_failed_calls_the_next_fails_fast_without_upstream(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    await open_the_logout_circuit(talkme, sandbox)
    with pytest.raises(TalkmeUnavailable) as caught:
        await talkme.logout(login=LOGIN, password=PASSWORD)
    assert caught.value.reason == "circuit open"
    assert sandbox.calls == []


async def test_a_call_counts_once_however_many_attempts_it_made(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    sandbox.fail_next(1000, status=503)
    for _ in range(FAILURES - 1):
        with pytest.raises(TalkmeUnavailable):
            await talkme.logout(login=LOGIN, password=PASSWORD)
    assert len(sandbox.calls) == 4 * (FAILURES - 1)
    assert talkme.breakers["logout"].state == "closed"


async def test_after_reset_s_one_probe_goes_through_and_its_success_closes_the_circuit(
    talkme: TalkmeClient, sandbox: SandboxState, clock: FakeClock
) -> None:
    await open_the_logout_circuit(talkme, sandbox)
    clock.advance(RESET_S)
    await talkme.logout(login=LOGIN, password=PASSWORD)
    assert len(sandbox.calls) == 1
    assert talkme.breakers["logout"].state == "closed"


async def test_a_failed_probe_opens_the_circuit_again(
    talkme: TalkmeClient, sandbox: SandboxState, clock: FakeClock
) -> None:
    await open_the_logout_circuit(talkme, sandbox)
    clock.advance(RESET_S)
    sandbox.fail_next(1000, status=503)
    with pytest.raises(TalkmeUnavailable, match="answered 503"):
        await talkme.logout(login=LOGIN, password=PASSWORD)
    with pytest.raises(TalkmeUnavailable, match="circuit open"):
        await talkme.logout(login=LOGIN, password=PASSWORD)


async def test_while_the_probe_runs_concurrent_calls_fail_fast(
    talkme: TalkmeClient, sandbox: SandboxState, clock: FakeClock
) -> None:
    await open_the_logout_circuit(talkme, sandbox)
    clock.advance(RESET_S)
    sandbox.delay(0.05)
    probe, other = await asyncio.gather(
        talkme.logout(login=LOGIN, password=PASSWORD),
        talkme.logout(login=LOGIN, password=PASSWORD),
        return_exceptions=True,
    )
    assert probe is None
    assert isinstance(other, TalkmeUnavailable)
    assert other.reason == "circuit open"
    assert len(sandbox.calls) == 1


async def test_wrong_passwords_do_not_open_the_circuit(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    for _ in range(FAILURES + 2):
        with pytest.raises(TalkmeRejected):
            await talkme.pause(login=LOGIN, password="wrong")
    await talkme.pause(login=LOGIN, password=PASSWORD)
    assert talkme.breakers["status"].state == "closed"


async def test_a_rejection_ends_a_run_of_failures(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    sandbox.fail_next(4 * (FAILURES - 1), status=503)
    for _ in range(FAILURES - 1):
        with pytest.raises(TalkmeUnavailable):
            await talkme.pause(login=LOGIN, password=PASSWORD)
    with pytest.raises(TalkmeRejected):
        await talkme.pause(login=LOGIN, password="wrong")
    sandbox.fail_next(4, status=503)
    with pytest.raises(TalkmeUnavailable):
        await talkme.pause(login=LOGIN, password=PASSWORD)
    assert talkme.breakers["status"].state == "closed"


async def test_missing_recordings_do_not_open_the_circuit(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    sandbox.missing("gone")
    for _ in range(FAILURES + 2):
        with pytest.raises(TalkmeNotFound):
            await talkme.fetch_audio("gone")
    assert talkme.breakers["fetchaudio"].state == "closed"


async def test_each_operation_has_its_own_circuit(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    await open_the_logout_circuit(talkme, sandbox)
    await talkme.pause(login=LOGIN, password=PASSWORD)
    assert (await talkme.fetch_audio("123")).endswith("/123.mp3")
    assert [b.state for b in talkme.breakers.values()] == ["open", "closed", "closed"]


@pytest.mark.parametrize("protocol", ["..", ".", "a/../b", "x" * 100_000, "a\x00b", ""])
async def test_a_refused_protocol_does_not_take_the_half_open_probe(
    talkme: TalkmeClient, sandbox: SandboxState, clock: FakeClock, protocol: str
) -> None:
    sandbox.fail_next(1000, status=503)
    for _ in range(FAILURES):
        with pytest.raises(TalkmeUnavailable):
            await talkme.fetch_audio("123")
    sandbox.reset()
    clock.advance(RESET_S)
    with pytest.raises(TalkmeBadInput):
        await talkme.fetch_audio(protocol)
    assert sandbox.calls == []
    # The probe slot is still free: the next real call is it, and closes the circuit.
    assert (await talkme.fetch_audio("123")).endswith("/123.mp3")
    assert talkme.breakers["fetchaudio"].state == "closed"


async def test_refused_credentials_never_count_toward_the_circuit(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    for _ in range(FAILURES + 2):
        with pytest.raises(TalkmeBadInput):
            await talkme.pause(login=LOGIN, password="\ud800")
        with pytest.raises(TalkmeBadInput):
            await talkme.logout(login=LOGIN, password="p" * 100_000)
    assert sandbox.calls == []
    assert [b.state for b in talkme.breakers.values()] == ["closed", "closed", "closed"]
