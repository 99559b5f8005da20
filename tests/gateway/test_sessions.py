"""Sealed agent sessions."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import BadUserInput
from gateway.sessions import AgentCredentials, SessionSealer

AGENT = AgentCredentials("1234", "s3nh@-do-agente")


def test_a_sealed_session_opens_to_the_same_credentials() -> None:
    sealer = SessionSealer("a-long-random-secret-key")
    token = sealer.seal(AGENT, ttl_s=60)
    assert sealer.open(token) == AGENT


def test_the_token_does_not_show_the_credentials() -> None:
    token = SessionSealer("a-long-random-secret-key").seal(AGENT, ttl_s=60)
    decoded = base64.urlsafe_b64decode(token + "==")
    assert b"s3nh" not in decoded
    assert b"1234" not in decoded
    assert "s3nh" not in repr(AGENT)


def test_a_tampered_session_is_bad_user_input() -> None:
    sealer = SessionSealer("a-long-random-secret-key")
    token = sealer.seal(AGENT, ttl_s=60)
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    with pytest.raises(BadUserInput, match="not valid"):
        sealer.open(flipped)


def test_a_session_sealed_with_another_key_is_refused() -> None:
    token = SessionSealer("one-secret-key-value").seal(AGENT, ttl_s=60)
    with pytest.raises(BadUserInput):
        SessionSealer("another-secret-key-value").open(token)


def test_an_expired_session_is_refused() -> None:
    sealer = SessionSealer("a-long-random-secret-key")
    token = sealer.seal(AGENT, ttl_s=60, now=1_000_000)
    assert sealer.open(token, now=1_000_059) == AGENT
    with pytest.raises(BadUserInput, match="expired"):
        sealer.open(token, now=1_000_061)


@pytest.mark.parametrize("garbage", ["", "abc", "gAAAAA" + "x" * 80, "🙂"])
def test_garbage_is_refused_without_crashing(garbage: str) -> None:
    with pytest.raises(BadUserInput):
        SessionSealer("a-long-random-secret-key").open(garbage)
