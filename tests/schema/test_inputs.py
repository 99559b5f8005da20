"""Inputs built directly (`schema.inputs.built_directly`) equal strawberry's own conversion.

Each value is converted twice through strawberry's `convert_argument`: once with the type's
`from_input` hook, once with the hook taken away (strawberry's generic conversion), and the
two objects must be equal and of the same class. TalkFilter is drawn over its own fields;
a test input holds every other kind of field (a list, a nested input, a `Maybe`, a
GlobalID, an enum without a default) to show that those still go strawberry's way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import strawberry
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.relay import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import convert_argument
from strawberry.types.unset import UNSET

from schema.enums import TalkStatus
from schema.inputs import TalkFilter, built_directly
from schema.scalars import SCALARS, UtcDateTime


@strawberry.input
class Inner:
    word: str | None = None


@built_directly
@strawberry.input
class Mixed:
    shade: TalkStatus  # no default: null unless given
    words: list[str] | None = None
    inner: Inner | None = None
    maybe: strawberry.Maybe[str | None] = None
    node: GlobalID | None = None
    moment: UtcDateTime | None = None


@strawberry.type
class _Query:
    @strawberry.field
    def talks(self, filter: TalkFilter | None = None) -> int:
        return 0

    @strawberry.field
    def mixed(self, value: Mixed) -> int:
        return 0


SCHEMA = strawberry.Schema(query=_Query, config=StrawberryConfig(scalar_map=SCALARS))
REGISTRY = SCHEMA.schema_converter.scalar_registry


@contextmanager
def strawberry_s_own(cls: type) -> Iterator[None]:
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    hook, definition.from_input = definition.from_input, None
    try:
        yield
    finally:
        definition.from_input = hook


def both(cls: type, value: dict[str, Any]) -> tuple[Any, Any]:
    direct = convert_argument(value, cls, REGISTRY, SCHEMA.config)
    with strawberry_s_own(cls):
        generic = convert_argument(value, cls, REGISTRY, SCHEMA.config)
    return direct, generic


MOMENT = datetime(2025, 9, 8, 14, 1, 17, tzinfo=UTC)
FILTER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "customerId": st.text(max_size=3),
    "agentId": st.text(max_size=3),
    "queueId": st.text(max_size=3),
    "channelId": st.text(max_size=3),
    "trackingNumber": st.text(max_size=3),
    "externalProtocol": st.text(max_size=3),
    "createdFrom": st.just(MOMENT),
    "createdTo": st.just(MOMENT),
    "status": st.sampled_from(TalkStatus),
    "wasSuccess": st.booleans(),
    "isCritical": st.booleans(),
    "text": st.text(max_size=5),
}


@settings(max_examples=200, deadline=None, database=None)
@given(
    value=st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(st.none(), st.just(UNSET), values)
            for name, values in FILTER_VALUES.items()
        },
    )
)
def test_a_talk_filter_is_built_as_strawberry_builds_it(value: dict[str, Any]) -> None:
    direct, generic = both(TalkFilter, value)
    assert type(direct) is type(generic) is TalkFilter
    assert direct == generic


def test_the_filter_s_names_are_the_schema_s() -> None:
    # Every field of the strategy above is a field of the schema's TalkFilter, and back.
    printed = SCHEMA.as_str()
    block = printed[printed.index("input TalkFilter") :]
    block = block[: block.index("}")]
    declared = {line.split(":")[0].strip() for line in block.splitlines()[1:] if ":" in line}
    assert declared == set(FILTER_VALUES)


OTHER_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "words": st.one_of(st.none(), st.lists(st.text(max_size=2), max_size=2)),
    "inner": st.one_of(st.none(), st.fixed_dictionaries({"word": st.text(max_size=2)})),
    "maybe": st.one_of(st.none(), st.text(max_size=2)),
    "node": st.one_of(st.none(), st.just(str(GlobalID("Talk", "7")))),
    "moment": st.one_of(st.none(), st.just(MOMENT)),
}


@settings(max_examples=100, deadline=None, database=None)
@given(
    value=st.fixed_dictionaries(
        {"shade": st.sampled_from(TalkStatus)},
        optional=OTHER_KINDS,
    )
)
def test_fields_of_other_kinds_still_go_strawberry_s_way(value: dict[str, Any]) -> None:
    direct, generic = both(Mixed, value)
    assert type(direct) is type(generic) is Mixed
    assert direct == generic
    if value.get("words") is not None:
        assert direct.words is not value["words"]  # copied, as strawberry copies lists
    if value.get("node") is not None:
        assert direct.node == GlobalID("Talk", "7")


def test_a_field_without_a_default_is_null_unless_given() -> None:
    direct, generic = both(Mixed, {})
    assert direct.shade is None
    assert direct == generic
