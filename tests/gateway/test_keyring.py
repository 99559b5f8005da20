"""KeyRing: a key is its configured entry's principal, a wrong key none, however often asked."""

from __future__ import annotations

import secrets

import pytest

from gateway import auth
from gateway.auth import KeyRing, key_digest
from gateway.settings import ApiKeyEntry


def _ring(keys: dict[str, frozenset[str]]) -> KeyRing:
    return KeyRing([ApiKeyEntry(name=k, sha256=key_digest(k), scopes=s) for k, s in keys.items()])


def test_a_key_is_its_entry_every_time_and_a_wrong_one_never() -> None:
    keys = {f"tgk_{i}": frozenset({"talks:read"} if i % 2 else {"admin"}) for i in range(5)}
    ring = _ring(keys)
    wrong = [f"tgk_{i}x" for i in range(5)] + ["", "tgk_", secrets.token_urlsafe(32)]
    for _ in range(3):  # the first time computed, then remembered: the same answers
        for key, scopes in keys.items():
            principal = ring.authenticate(key)
            assert principal is not None
            assert (principal.name, principal.scopes) == (key, scopes)
        assert all(ring.authenticate(key) is None for key in wrong)


def test_only_valid_keys_are_remembered_and_no_more_than_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "_MAX_KNOWN", 3)
    keys = {f"tgk_{i}": frozenset({"talks:read"}) for i in range(10)}
    ring = _ring(keys)
    for i in range(1000):
        assert ring.authenticate(f"guess-{i}") is None
    assert ring._known == {}
    for key in keys:
        assert ring.authenticate(key) is not None
        assert len(ring._known) <= 3
    # Forgotten keys are found again by their digest.
    assert all(ring.authenticate(key) is not None for key in keys)
