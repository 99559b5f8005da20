"""Sealed agent sessions: bound to the key that made them, revoked by a logout."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.errors import BadUserInput
from gateway.replicas.redis_shared import RedisTicketVault
from gateway.sessions import AgentCredentials, AgentSessions, SessionSealer
from gateway.tickets import TicketVault
from tests.backends import BACKENDS, REDIS_URL, opened_store, require_redis

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


# -- sessions bound to a key, and revoked ---------------------------------------------------


@dataclass
class Put:
    digest: str
    mark: str
    expires_at: datetime


class MemoryVault:
    """Revocations in a dict, noting what was put."""

    def __init__(self) -> None:
        self.puts: list[Put] = []
        self._kept: dict[str, tuple[str, datetime]] = {}

    async def put_revocation(self, *, digest: str, mark: str, expires_at: datetime) -> None:
        self.puts.append(Put(digest, mark, expires_at))
        kept = self._kept.get(digest)
        if kept is None or kept[1] < expires_at:
            self._kept[digest] = (mark, expires_at)

    async def revocation_marks(self, *, digests: Sequence[str], now: datetime) -> list[str]:
        found = (self._kept.get(d) for d in digests)
        return [kept[0] for kept in found if kept is not None and kept[1] >= now]


TTL_S = 3600.0


@pytest.fixture
def vault() -> MemoryVault:
    return MemoryVault()


@pytest.fixture
def sessions(vault: MemoryVault) -> AgentSessions:
    return AgentSessions(vault, "a-long-random-secret-key", ttl_s=TTL_S)


async def test_a_session_opens_for_the_key_it_was_issued_to_only(sessions: AgentSessions) -> None:
    token = sessions.issue(AGENT, owner="crm")
    assert (await sessions.open(token, owner="crm")).credentials == AGENT
    with pytest.raises(BadUserInput, match="not valid"):
        await sessions.open(token, owner="crm-2")


async def test_a_session_sealed_without_an_owner_is_not_valid(sessions: AgentSessions) -> None:
    # Sessions sealed before sessions were bound to a key are refused, not opened for anyone.
    legacy = SessionSealer("a-long-random-secret-key").seal(AGENT, ttl_s=60)
    with pytest.raises(BadUserInput, match="not valid"):
        await sessions.open(legacy, owner="crm")


async def test_a_revocation_refuses_sessions_issued_before_it_not_after(
    sessions: AgentSessions,
) -> None:
    before = sessions.issue(AGENT, owner="crm")
    await sessions.revoke(AGENT.login)
    after = sessions.issue(AGENT, owner="crm")
    with pytest.raises(BadUserInput, match="revoked"):
        await sessions.open(before, owner="crm")
    assert (await sessions.open(after, owner="crm")).credentials == AGENT


async def test_revocations_are_kept_as_long_as_the_sessions_they_cover_and_no_longer(
    sessions: AgentSessions, vault: MemoryVault
) -> None:
    session = await sessions.open(sessions.issue(AGENT, owner="crm"), owner="crm")
    started = datetime.now(UTC)
    await sessions.revoke(AGENT.login, session=session)
    ended = datetime.now(UTC)
    on_login, on_session = vault.puts
    # The login's: as long as any session issued until now may live.
    ttl = timedelta(seconds=TTL_S)
    assert started + ttl - timedelta(seconds=1) <= on_login.expires_at <= ended + ttl
    # The session's: until it expires by itself.
    assert on_session.expires_at == datetime.fromtimestamp(session.expires_at, UTC)
    assert on_session.digest != on_login.digest
    assert AGENT.login not in on_login.digest


@pytest.fixture(params=[*BACKENDS, "redis"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TicketVault]:
    """Where revocations really go: each store backend, and Redis."""
    if request.param != "redis":
        async with opened_store(request.param, tmp_path, request) as store:
            yield store
        return
    await require_redis()
    client = Redis.from_url(REDIS_URL, socket_timeout=2.0)
    prefix = f"talkgate-test:{secrets.token_hex(4)}:"
    try:
        yield RedisTicketVault(client, prefix=prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_vault_keeps_the_later_revocation_and_forgets_expired_ones(
    shared: TicketVault,
) -> None:
    now = datetime.now(UTC)
    soon, later = now + timedelta(seconds=30), now + timedelta(hours=1)
    await shared.put_revocation(digest="revoked:a", mark="2", expires_at=later)
    await shared.put_revocation(digest="revoked:a", mark="1", expires_at=soon)
    await shared.put_revocation(digest="revoked:b", mark="3", expires_at=soon)
    assert sorted(await shared.revocation_marks(digests=["revoked:a", "revoked:b"], now=now)) == [
        "2",
        "3",
    ]
    at_minute = now + timedelta(minutes=1)
    if not isinstance(shared, RedisTicketVault):  # Redis expires by its own clock
        assert await shared.revocation_marks(digests=["revoked:a", "revoked:b"], now=at_minute) == [
            "2"
        ]
    assert await shared.revocation_marks(digests=["revoked:unknown"], now=now) == []


async def test_sessions_revoked_through_a_real_vault_are_refused(shared: TicketVault) -> None:
    sessions = AgentSessions(shared, "a-long-random-secret-key", ttl_s=TTL_S)
    token = sessions.issue(AGENT, owner="crm")
    session = await sessions.open(token, owner="crm")
    await sessions.revoke(AGENT.login, session=session)
    with pytest.raises(BadUserInput, match="revoked"):
        await sessions.open(token, owner="crm")
