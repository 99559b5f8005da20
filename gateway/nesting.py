"""How deeply a decoded JSON value nests, measured without recursion.

Every body talkgate decodes (GraphQL requests and their variables, WebSocket frames, webhook
deliveries) is checked against one limit, `TALKGATE_MAX_JSON_DEPTH`, before anything walks
it recursively: orjson refuses to encode past 255 levels, Python's `json` and pydantic raise
RecursionError further down, and no talk payload or GraphQL input needs more than a handful.
"""

from __future__ import annotations

from json import JSONDecodeError

import orjson


def nests_deeper(value: object, limit: int) -> bool:
    """Whether `value` has containers (dicts, lists) more than `limit` levels deep.

    A scalar is depth 0, `[]` and `{}` are 1, `[[1]]` is 2. The walk stops at the first
    container found past the limit, so its cost is bounded by the value's size.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: object = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in children)  # type: ignore[attr-defined]
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
    if nests_deeper(value, limit):
        raise TooDeep(limit)
    return value
