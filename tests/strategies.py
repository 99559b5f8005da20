"""Hypothesis strategies the fuzz tests share: JSON values, odd strings, mangled talks."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.factories import talk


def served_examples(max_examples: int, *, shrink: bool = True) -> settings:
    """Hypothesis settings for a property run against a served gateway: `max_examples` drawn,
    no deadline and no example database; the function-scoped fixtures it shares across
    examples, and its slowness, are accepted. With `shrink` off, a failure shows as drawn."""
    phases = list(Phase) if shrink else [Phase.explicit, Phase.generate]
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)


json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


RAW_VALUES = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b'"\xff\xfe\xfd"',
    b'"caf\xc3"',
    b'"\\ud800"',
    b"123456789012345678901234567890",
    b"-9223372036854775809",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b"tru",
    b"",
]


odd_strings = st.sampled_from(
    [
        "",
        " ",
        "2025-09-08 11: 01: 18",
        "2025-09-08T14:01:17.000000Z",
        "9999-12-31 23:59:59",
        "0001-01-01 00:00:00",
        "0000-00-00 00:00:00",
        "2025-13-45 25:61:61",
        "1",
        "-1",
        "1e3",
        "true",
        "null",
        "http//broken url",
        "\x00",
        "\ud7ff\ue000\U0010ffff",
    ]
)


other_values = st.one_of(
    json_values,
    odd_strings,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(min_value=-1e20, max_value=1e20),
    st.integers(1_000, 80_000).map(lambda n: "x" * n),
)


@st.composite
def mangled_talk(draw: st.DrawFn) -> bytes:
    """The example talk, with some of its values replaced, deleted or spliced as raw bytes."""
    payload: Any = talk(draw(st.integers(1, 40)))
    raw: dict[str, bytes] = {}
    for n in range(draw(st.integers(1, 4))):
        holder: Any = payload
        key: Any = None
        node: Any = payload
        while isinstance(node, dict | list) and node and (key is None or draw(st.booleans())):
            holder = node
            key = draw(
                st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
            )
            node = holder[key]
        if key is None:
            continue
        action = draw(st.sampled_from(["replace", "replace", "delete", "raw"]))
        if action == "delete":
            del holder[key]
        elif action == "raw":
            marker = f"@@raw{n}@@"
            holder[key] = marker
            raw[json.dumps(marker)] = draw(st.sampled_from(RAW_VALUES))
        else:
            holder[key] = draw(other_values)
    body = json.dumps(payload).encode()
    for marker, value in raw.items():
        body = body.replace(marker.encode(), value)
    return body
