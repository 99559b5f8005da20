"""How deeply a decoded JSON value nests, measured without recursion.

Every body talkgate decodes (GraphQL requests and their variables, WebSocket frames, webhook
deliveries) is checked against one limit, `TALKGATE_MAX_JSON_DEPTH`, before anything walks
it recursively: orjson refuses to encode past 255 levels, Python's `json` and pydantic raise
RecursionError further down, and no talk payload or GraphQL input needs more than a handful.
"""

from __future__ import annotations


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
