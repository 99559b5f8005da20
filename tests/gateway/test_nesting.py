"""The nesting measure every decoded body is checked with."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.nesting import nests_deeper, text_nests_deeper


def _nested(depth: int, *, kind: str = "list") -> object:
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


def test_scalars_do_not_nest() -> None:
    assert not nests_deeper(1, 0)
    assert not nests_deeper("x", 0)


def test_a_value_at_the_limit_passes_and_one_more_level_does_not() -> None:
    for kind in ("list", "dict"):
        assert not nests_deeper(_nested(64, kind=kind), 64)
        assert nests_deeper(_nested(65, kind=kind), 64)


def test_a_deep_value_is_measured_without_recursion() -> None:
    assert nests_deeper(_nested(200_000), 64)


def test_the_deepest_branch_counts_not_the_first() -> None:
    assert nests_deeper({"a": 1, "b": [1, 2, {"c": [[[]]]}]}, 5)
    assert not nests_deeper({"a": 1, "b": [1, 2, {"c": [[[]]]}]}, 6)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=30,
)


@given(json_values, st.integers(min_value=0, max_value=8))
def test_agrees_with_a_recursive_depth(value: object, limit: int) -> None:
    assert nests_deeper(value, limit) == (_depth(value) > limit)


# -- measured on the text ---------------------------------------------------------------------

# Strings made mostly of what the text measure looks at: quotes, brackets, backslashes (each
# escaped in the text), and what escapes to `\uXXXX`, or is UTF-8 of several bytes.
_TRICKY = st.text(
    st.sampled_from('"[]{}\\/\n\t\x00 aé中😀') | st.characters(exclude_categories=["Cs"]),
    max_size=8,
)
tricky_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


@st.composite
def json_texts(draw: st.DrawFn) -> tuple[object, bytes]:
    """A value and one of its JSON spellings: orjson's, or json's escaped or not, indented
    or not, with spaces around the separators or not."""
    value = draw(tricky_values)
    if draw(st.booleans()):
        return value, orjson.dumps(value)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2, "\t"])),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\r\n")])),
    )
    return value, text.encode()


@settings(max_examples=500)
@given(json_texts(), st.integers(min_value=0, max_value=10))
def test_the_text_measure_agrees_with_the_walk_of_the_value(
    spelled: tuple[object, bytes], limit: int
) -> None:
    value, text = spelled
    assert orjson.loads(text) == value  # a JSON text of the value
    expected = nests_deeper(value, limit)
    assert expected == (_depth(value) > limit)
    assert text_nests_deeper(text, limit) == expected
    assert text_nests_deeper(text.decode(), limit) == expected


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (rb"1", 0),
        (rb'"[[[["', 0),
        (rb"[]", 1),
        (rb'[" ]]] "]', 1),
        (rb'["\\"]', 1),  # an escaped backslash, then the closing quote
        (rb'["\\\\", "[["]', 1),
        (rb'["\\\"[", "]"]', 1),  # an escaped backslash, an escaped quote, a bracket
        (rb'[["\\\\\"]"], {"\"": [{}]}]', 4),
        (rb'{"a\"b": ["\u005c", ["\u0022]"]]}', 3),
        (rb'[{"k": "{\"[\"]"}, [[]]]', 3),
        ('["é中😀[", ["😀"]]'.encode(), 2),
        (b" \n[\t[ ]\r\n] ", 2),
    ],
)
def test_the_text_measure_of_escapes_and_strings_of_brackets(text: bytes, depth: int) -> None:
    assert _depth(orjson.loads(text)) == depth  # each case is what it says
    for limit in range(depth + 2):
        assert text_nests_deeper(text, limit) == (depth > limit)
        assert text_nests_deeper(text.decode(), limit) == (depth > limit)


def test_the_text_measure_reads_any_depth() -> None:
    # Past orjson's 1,024 levels: the measure has no recursion nor a limit of its own.
    text = b'{"a":' * 100_000 + b"[]" + b"}" * 100_000
    assert text_nests_deeper(text, 100_000)
    assert not text_nests_deeper(text, 100_001)
