"""Opaque keyset cursors: a kind tag and the sort key of the last item, base64url-encoded."""

from __future__ import annotations

import base64
import binascii

import orjson

from gateway.errors import BadUserInput


def encode(kind: str, *key: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([kind, *key])).decode().rstrip("=")


def decode(kind: str, cursor: str, size: int) -> tuple[int, ...]:
    """The sort key inside `cursor`; BadUserInput when it was not made for `kind`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadUserInput("the cursor is not one talkgate issued") from None
    if (
        not isinstance(value, list)
        or len(value) != size + 1
        or value[0] != kind
        or not all(type(v) is int and -(2**63) <= v < 2**63 for v in value[1:])
    ):
        raise BadUserInput("the cursor belongs to another list or ordering") from None
    return tuple(value[1:])
