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
# Most valid keys KeyRing remembers (there are as many as are configured; a bound anyway).
_MAX_KNOWN = 1024


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
        # Each key's principal made once: it is immutable, and every request asks for it.
        # The keys that matched an entry, and whose: OpenSSL's sha256 costs more than the
        # rest of a cached answer's authentication, and a caller sends the same key each
        # time. Only valid keys are kept (a stranger's guesses fill nothing); looking one up
        # hashes it with Python's keyed string hash, so its time says nothing of how close
        # a wrong key is to a right one, as the digests compared in constant time don't.
        self._known: dict[str, Principal] = {}
        self._entries = [(bytes.fromhex(e.sha256), Principal(e.name, e.scopes)) for e in entries]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def authenticate(self, key: str) -> Principal | None:
        known = self._known.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256(key.encode()).digest()
        found: Principal | None = None
        # Compare with every entry, not stopping at a match, so timing reveals nothing.
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        if found is not None:
            if len(self._known) >= _MAX_KNOWN:
                self._known.clear()
            self._known[key] = found
        return found


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


def principal(
    keys: KeyRing, authorization: str | None, client_host: str | None, *, demo: bool
) -> Principal | None:
    """Who a request is, the one rule for HTTP, WebSocket and webhook callers: the principal
    of the key in `Authorization: Bearer <key>` (None for a key not known), else, when `demo`
    allows it, the demo principal for a client on this machine, else None."""
    key = bearer_key(authorization)
    if key is not None:
        return keys.authenticate(key)
    if demo and is_loopback(client_host):
        return DEMO_PRINCIPAL
    return None
