"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

TOLERANCE_S = 300


def secret_bytes(secret: str) -> bytes:
    """The HMAC key: base64 after `whsec_` (the spec's format), else the secret's own bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(
    key: bytes,
    *,
    msg_id: str,
    timestamp: str,
    signatures: str,
    body: bytes,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """True when the timestamp is fresh and any of the space-separated v1 signatures matches."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_s:
        return False
    expected = sign(key, msg_id, sent_at, body).encode()
    matched = False
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            matched = True
    return matched
