"""How deeply a JSON value nests, measured without recursion.

Every body talkgate decodes (GraphQL requests and their variables, WebSocket frames, webhook
deliveries) is checked against one limit, `TALKGATE_MAX_JSON_DEPTH`, before anything walks
it recursively: orjson refuses to encode past 255 levels, Python's `json` and pydantic raise
RecursionError further down, and no talk payload or GraphQL input needs more than a handful.
The bodies are measured on their text (`text_nests_deeper`), right after orjson accepted it;
`nests_deeper` measures a value already decoded, the same answer by a walk.
"""

from __future__ import annotations

from itertools import accumulate
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


# Of a JSON text, only the marks that delimit strings and containers are kept in the end;
# first also the backslashes, with every character an escape can have after its backslash.
_NOT_MARKS = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_NOT_MARKS_NOR_ESCAPES = bytes(sorted(set(_NOT_MARKS) - set(b'\\"/bfnrtu')))
# An opening bracket as the byte 1, a closing one as 255: -1 once read as signed bytes.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def text_nests_deeper(text: str | bytes, limit: int) -> bool:
    """Whether the JSON text `text`, one a JSON parser already accepted, has containers more
    than `limit` levels deep: `nests_deeper` of its value, measured on the text.

    Each step runs at C speed (the walk of an 11 KB talk's value took 70 µs, this 10 to 30).
    The text is cut down to its quotes, brackets and escapes (a backslash and the character
    after it, all kept). The escapes that could hide a quote are dropped, `\\` first, left to
    right, then `\"`: in a valid text a run of backslashes begins an escape, so this pairs
    them as the parser does. Then the rest of the escapes, and what lies between each pair
    of quotes (string contents: brackets there are text). What is left are the containers'
    brackets; the depth is their highest running count. The text is copied a few times
    over and nothing is kept per character but a byte: bounded by its size whatever its
    shape.
    """
    data = text.encode() if isinstance(text, str) else text  # cannot fail: it was decoded
    kept = data.translate(None, _NOT_MARKS_NOR_ESCAPES)
    # No more opening brackets than the limit cannot nest deeper (brackets inside strings
    # only make the count larger): the most common answer.
    if kept.count(b"{") + kept.count(b"[") <= limit:
        return False
    if b"\\" in kept:
        kept = kept.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = kept.translate(None, _NOT_MARKS)
    # Two quotes side by side hold nothing (mostly a string without brackets, `""` now):
    # dropping them leaves each other mark as far inside or outside a string as it was.
    brackets = marks.replace(b'""', b"")
    if b'"' in brackets:  # some string holds brackets: every other piece is one's contents
        brackets = b"".join(brackets.split(b'"')[::2])
    steps = memoryview(brackets.translate(_STEPS)).cast("b")
    return max(accumulate(steps), default=0) > limit


class TooDeep(JSONDecodeError):
    """A JSON text nesting deeper than `max_json_depth`: refused before anything walks it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels is refused", "", 0)


def decode_limited(data: str | bytes, limit: int) -> object:
    """`data`'s JSON value; TooDeep when it nests deeper than `limit`.

    orjson itself stops at 1,024 levels (far past any limit the settings allow), with an error
    saying so; Python's json would raise RecursionError instead, and orjson cannot encode a
    value past 255 levels again (the response cache's key does). The depth is measured on
    the text, once orjson accepted it as JSON (`text_nests_deeper`).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg or "recursion" in exc.msg.lower():
            raise TooDeep(limit) from None
        raise
    if text_nests_deeper(data, limit):
        raise TooDeep(limit)
    return value
