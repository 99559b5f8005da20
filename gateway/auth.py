"""API keys: who is calling and which scopes the key grants."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.settings import SCOPES, ApiKeyEntry

KEY_PREFIX = "tgk_"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the key's name and its scopes."""

    name: str
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"Principal(name={self.name!r}, scopes={sorted(self.scopes)!r})"


DEMO_PRINCIPAL = Principal("demo", SCOPES)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key; only its sha256 is ever configured."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, checked in constant time against every entry."""

    def __init__(self, entries: Sequence[ApiKeyEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), e) for e in entries]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def authenticate(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).digest()
        found: ApiKeyEntry | None = None
        # Compare with every entry, not stopping at a match, so timing reveals nothing.
        for expected, entry in self._entries:
            if hmac.compare_digest(digest, expected):
                found = entry
        return Principal(found.name, found.scopes) if found else None


def bearer_key(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header, if that is what it holds."""
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    return key


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine (demo mode's open access stops there)."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
