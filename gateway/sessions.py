"""Agent sessions: credentials sealed with SECRET_KEY so clients never hold them in the clear.

A session is a Fernet token (AES-128-CBC + HMAC-SHA256) over `{login, password, exp}`. It is
opaque to its holder, tamper-evident, and expires; talkgate keeps no server-side copy.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken

from gateway.errors import BadUserInput


@dataclass(frozen=True, slots=True)
class AgentCredentials:
    """A Talk.me agent's login and password."""

    login: str
    password: str

    def __repr__(self) -> str:
        return f"AgentCredentials(login={self.login!r}, password='**********')"


class SessionSealer:
    """Seals credentials into opaque tokens and opens them again; a key derived from SECRET_KEY."""

    def __init__(self, secret_key: str, *, purpose: str = "agent-session") -> None:
        digest = hashlib.sha256(f"talkgate:{purpose}:".encode() + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def __repr__(self) -> str:
        return "SessionSealer(<sealed>)"

    def seal(self, credentials: AgentCredentials, *, ttl_s: float, now: float | None = None) -> str:
        issued = time.time() if now is None else now
        payload = {
            "login": credentials.login,
            "password": credentials.password,
            "exp": issued + ttl_s,
        }
        return self._fernet.encrypt_at_time(orjson.dumps(payload), int(issued)).decode()

    def open(self, token: str, *, now: float | None = None) -> AgentCredentials:
        """The credentials in `token`; BadUserInput when it was tampered with or has expired."""
        try:
            payload = orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, orjson.JSONDecodeError):
            raise BadUserInput("the session is not valid", argument="session") from None
        current = time.time() if now is None else now
        if not isinstance(payload, dict) or payload.get("exp", 0) < current:
            raise BadUserInput("the session has expired; log in again", argument="session")
        return AgentCredentials(str(payload["login"]), str(payload["password"]))
