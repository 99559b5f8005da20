"""How deeply a decoded JSON value nests, measured without recursion.

Every body talkgate decodes (GraphQL requests and their variables, WebSocket frames, webhook
deliveries) is checked against one limit, `TALKGATE_MAX_JSON_DEPTH`, before anything walks
it recursively: orjson refuses to encode past 255 levels, Python's `json` and pydantic raise
RecursionError further down, and no talk payload or GraphQL input needs more than a handful.
"""

from __future__ import annotations

from json import JSONDecodeError

import orjson

_CONTAINERS = (dict, list, tuple)
# What JSON decodes a scalar to.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def nests_deeper(value: object, limit: int) -> bool:
    """Whether `value` has containers (dicts, lists) more than `limit` levels deep.

    A scalar is depth 0, `[]` and `{}` are 1, `[[1]]` is 2. Walked a level at a time, each
    container once and each scalar only looked at (a 5 MiB `[1,1,...]` took 2.5 s when every
    scalar was pushed on a stack, 0.1 s so); it stops at the first level past the limit, so
    its cost is bounded by the value's size.
    """
    if not isinstance(value, _CONTAINERS):
        return False
    level: list[object] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[object] = []
        for container in level:
            if not container:
                continue
            children = container.values() if isinstance(container, dict) else container
            # The kinds of the children first, at C speed: most hold no container at all.
            if set(map(type, children)) <= _SCALARS:  # type: ignore[call-overload]
                continue
            below.extend(child for child in children if isinstance(child, _CONTAINERS))  # type: ignore[attr-defined]
        level = below
    return False


class TooDeep(JSONDecodeError):
    """A JSON text nesting deeper than `max_json_depth`: refused before anything walks it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels is refused", "", 0)


def decode_limited(data: str | bytes, limit: int) -> object:
    """`data`'s JSON value; TooDeep when it nests deeper than `limit`.

    orjson itself stops at 1,024 levels (far past any limit the settings allow), with an error
    saying so; Python's json would raise RecursionError instead, and orjson cannot encode a
    value past 255 levels again (the response cache's key does).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg or "recursion" in exc.msg.lower():
            raise TooDeep(limit) from None
        raise
    # A text with no more opening brackets than the limit cannot nest deeper (brackets
    # inside strings only make the count larger): counted at C speed, it spares most
    # bodies the walk.
    if isinstance(data, str):
        opening = data.count("{") + data.count("[")
    else:
        opening = data.count(b"{") + data.count(b"[")
    if opening > limit and nests_deeper(value, limit):
        raise TooDeep(limit)
    return value
