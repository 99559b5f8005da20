"""Agent sessions: credentials sealed with SECRET_KEY, bound to the API key that made them, and
revocable.

A session is a Fernet token (AES-128-CBC + HMAC-SHA256) over `{login, password, exp, iat, sid,
owner}`. It is opaque to its holder, tamper-evident, and expires. It works only for the API key
name (`owner`) that called `agentLogin`, and a successful `agentLogout` revokes it: talkgate
keeps no copy of a session, only revocations, where login tickets are kept (the store, or Redis
with REDIS_URL), each until the sessions it covers would have expired anyway.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.errors import BadUserInput

# A sealed session is about 300 characters; anything much longer is not one, and is refused
# before it is decrypted.
MAX_SESSION_CHARS = 4096


@dataclass(frozen=True, slots=True)
class AgentCredentials:
    """A Talk.me agent's login and password."""

    login: str
    password: str

    def __repr__(self) -> str:
        return f"AgentCredentials(login={self.login!r}, password='**********')"


@dataclass(frozen=True, slots=True)
class AgentSession:
    """An opened session: the credentials it stands for, whose it is, and its lifetime."""

    credentials: AgentCredentials
    owner: str
    session_id: str
    issued_at: float
    expires_at: float


# SECRET_KEY: one key, or a rotation's keys with the one sealing first.
SecretKeys = str | Sequence[str]


class SessionSealer:
    """Seals credentials into opaque tokens and opens them again, with keys derived from
    SECRET_KEY: the first key seals, every key opens (a rotation: tokens sealed with the old
    key keep working until they expire, new ones are sealed with the new key)."""

    def __init__(self, secret_key: SecretKeys, *, purpose: str = "agent-session") -> None:
        keys = [secret_key] if isinstance(secret_key, str) else list(secret_key)
        if not keys:
            raise ValueError("SessionSealer needs at least one key")
        self._fernet = MultiFernet([_fernet(key, purpose) for key in keys])

    def __repr__(self) -> str:
        return "SessionSealer(<sealed>)"

    def seal(
        self,
        credentials: AgentCredentials,
        *,
        ttl_s: float,
        now: float | None = None,
        owner: str = "",
    ) -> str:
        issued = time.time() if now is None else now
        payload = {
            "login": credentials.login,
            "password": credentials.password,
            "exp": issued + ttl_s,
            "iat": issued,
            "sid": secrets.token_urlsafe(16),
            "owner": owner,
        }
        return self._fernet.encrypt_at_time(orjson.dumps(payload), int(issued)).decode()

    def open(self, token: str, *, now: float | None = None) -> AgentCredentials:
        """The credentials in `token`; BadUserInput when it was tampered with or has expired."""
        return self.open_session(token, now=now).credentials

    def open_session(self, token: str, *, now: float | None = None) -> AgentSession:
        """Everything sealed in `token`; BadUserInput when it is not valid or has expired."""
        if len(token) > MAX_SESSION_CHARS:
            raise _not_valid()
        try:
            payload = orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, orjson.JSONDecodeError):
            raise _not_valid() from None
        if not isinstance(payload, dict):
            raise _not_valid()
        current = time.time() if now is None else now
        expires_at = payload.get("exp", 0)
        if not isinstance(expires_at, int | float) or expires_at < current:
            raise BadUserInput("the session has expired; log in again", argument="session")
        issued_at = payload.get("iat")
        return AgentSession(
            credentials=AgentCredentials(str(payload["login"]), str(payload["password"])),
            owner=str(payload.get("owner", "")),
            session_id=str(payload.get("sid", "")),
            issued_at=float(issued_at) if isinstance(issued_at, int | float) else 0.0,
            expires_at=float(expires_at),
        )


def _fernet(secret_key: str, purpose: str) -> Fernet:
    digest = hashlib.sha256(f"talkgate:{purpose}:".encode() + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _not_valid() -> BadUserInput:
    return BadUserInput("the session is not valid", argument="session")


class RevocationVault(Protocol):
    """Where revocations wait until they no longer matter: the store, or Redis."""

    async def put_revocation(self, *, digest: str, mark: str, expires_at: datetime) -> None:
        """Keep `mark` under `digest` until `expires_at` (an entry expiring later is kept)."""
        ...

    async def revocation_marks(self, *, digests: Sequence[str], now: datetime) -> list[str]:
        """The marks under those digests that have not expired."""
        ...


def _session_digest(session_id: str) -> str:
    return "revoked:" + hashlib.sha256(f"session:{session_id}".encode()).hexdigest()


def _login_digest(login: str) -> str:
    return "revoked:" + hashlib.sha256(f"login:{login}".encode()).hexdigest()


class AgentSessions:
    """Issues sessions to an API key, opens them for that key only, and revokes them.

    A revocation is a mark "refuse sessions issued at or before T". `agentLogout` puts one on
    the login (every session of that agent issued until then, whichever key made it: the agent
    is logged out of Talk.me for all of them), kept `ttl_s`, the longest any of them can live;
    and, when it was given a session, one on that session itself, kept until it expires, which
    holds even if the replicas' clocks disagree.
    """

    def __init__(self, vault: RevocationVault, secret_key: SecretKeys, *, ttl_s: float) -> None:
        self._vault = vault
        self._sealer = SessionSealer(secret_key)
        self._ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"AgentSessions(ttl_s={self._ttl_s})"

    def issue(self, credentials: AgentCredentials, *, owner: str) -> str:
        return self._sealer.seal(credentials, ttl_s=self._ttl_s, owner=owner)

    async def open(self, token: str, *, owner: str) -> AgentSession:
        """The session, for the key that made it; BadUserInput when it is not valid for `owner`,
        has expired or was revoked. Another key's session is "not valid", like a forged one:
        no caller learns that a token it holds is someone else's working session."""
        session = self._sealer.open_session(token)
        if not session.session_id or not secrets.compare_digest(
            session.owner.encode(), owner.encode()
        ):
            raise _not_valid()
        digests = [_session_digest(session.session_id), _login_digest(session.credentials.login)]
        marks = await self._vault.revocation_marks(digests=digests, now=datetime.now(UTC))
        if any(session.issued_at <= float(mark) for mark in marks):
            raise BadUserInput(
                "the session was revoked (the agent logged out); log in again",
                argument="session",
            )
        return session

    async def revoke(self, login: str, *, session: AgentSession | None = None) -> None:
        """Refuse, from now on, every session of `login` issued until now (and `session`)."""
        now = time.time()
        until = max(now + self._ttl_s, session.expires_at if session is not None else 0.0)
        await self._vault.put_revocation(
            digest=_login_digest(login), mark=repr(now), expires_at=_utc(until)
        )
        if session is not None:
            await self._vault.put_revocation(
                digest=_session_digest(session.session_id),
                mark=repr(session.expires_at),
                expires_at=_utc(session.expires_at),
            )


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
