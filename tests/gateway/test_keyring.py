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


@pytest.mark.parametrize(
    ("authorization", "host", "demo", "expected"),
    [
        ("Bearer tgk_reader", "203.0.113.9", False, "tgk_reader"),
        ("bearer  tgk_reader ", "127.0.0.1", True, "tgk_reader"),
        # A key that is given decides, even in the demo on this machine.
        ("Bearer tgk_unknown", "127.0.0.1", True, None),
        (None, "127.0.0.1", True, "demo"),
        (None, "::1", True, "demo"),
        (None, "localhost", True, "demo"),
        (None, "203.0.113.9", True, None),
        (None, None, True, None),
        (None, "127.0.0.1", False, None),
        ("Basic dXNlcjpwYXNz", "127.0.0.1", True, "demo"),
        ("Basic dXNlcjpwYXNz", "127.0.0.1", False, None),
    ],
)
def test_who_a_request_is_by_its_key_or_by_the_demo_s_loopback_rule(
    authorization: str | None, host: str | None, demo: bool, expected: str | None
) -> None:
    ring = _ring({"tgk_reader": frozenset({"talks:read"})})
    found = auth.principal(ring, authorization, host, demo=demo)
    assert (None if found is None else found.name) == expected
    if expected == "demo":
        assert found is auth.DEMO_PRINCIPAL
