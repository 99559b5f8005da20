"""The nesting measure every decoded body is checked with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.nesting import nests_deeper


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
