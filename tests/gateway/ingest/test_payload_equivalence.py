"""`validate_talks` gives what the plain pydantic path gave: model, `model_dump`, then split.

`validate_talks` validates straight into the final documents (see `_documents_schema`); the
reference below is the straightforward path it replaced, kept verbatim, so any difference in a
document's text as stored, its fields, or a rejection's reason and errors shows here.
"""

from __future__ import annotations

import copy
import json
import sys
from datetime import tzinfo
from importlib import resources
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from gateway.demo import example_talk, sample_talks
from gateway.ingest import coercers, validation
from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.payload import TalkPayload
from gateway.ingest.validation import PayloadRejected, validate_talks, validated_items
from gateway.storage.documents import Doc, NormalizedTalk, dumps_doc
from tests.factories import DecodedTalk, talk
from tests.strategies import json_values, mangled_talk, odd_strings, other_values

# PipeRun's documented example, as delivered (the package's copy of shared/fixtures/).
FIXTURE = resources.files("gateway.demo").joinpath("talk_114603.json")
UTC_ZONE = ZoneInfo("UTC")
_REFERENCE_TALKS = TypeAdapter(list[TalkPayload])
EQUIVALENCE = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the reference: validate_talks and normalize as they were ----------------------------------


def reference_normalize(talk: TalkPayload) -> DecodedTalk:
    dumped = talk.model_dump(mode="json", by_alias=True)
    histories: list[Doc] = dumped.pop("talk_histories")
    events: list[Doc] = dumped.pop("talk_events")
    customer: Doc | None = dumped.pop("customer")

    users: dict[int, Doc] = {}
    channels: dict[int, Doc] = {}
    messages: list[Doc] = []
    for history in histories:
        user = history.pop("user")
        channel = history.pop("channel")
        if user is not None:
            users[user["id"]] = user
        if channel is not None:
            channels[channel["id"]] = channel
        history["talk_id"] = talk.id
        messages.append(history)
    for event in events:
        event["talk_id"] = talk.id

    agent_ids = {
        i
        for i in (
            talk.agent_id,
            talk.delivered_to,
            talk.scaled_to,
            *(h.user_id for h in talk.talk_histories),
            *(e.agent_id for e in talk.talk_events),
        )
        if i is not None
    }
    return DecodedTalk(
        id=talk.id,
        doc=dumped,
        messages=_unique_by_id(messages),
        events=_unique_by_id(events),
        customer=customer,
        users=list(users.values()),
        channels=list(channels.values()),
        agent_ids=frozenset(agent_ids - users.keys()),
    )


def _unique_by_id(docs: list[Doc]) -> list[Doc]:
    return list({d["id"]: d for d in docs}.values())


def reference_validate_talks(data: object, *, zone: tzinfo = DEFAULT_ZONE) -> list[DecodedTalk]:
    # The same envelope (one talk or an array, errors field by field) as validate_talks;
    # what differs is the models' validation followed by reference_normalize.
    talks = validated_items(_REFERENCE_TALKS.validate_python, data, zone)
    return [reference_normalize(t) for t in talks]


# -- comparison ---------------------------------------------------------------------------------


def outcome(validate: Any, raw: bytes, zone: tzinfo) -> object:
    """What one path makes of a body: its documents' texts as stored, or its rejection."""
    try:
        talks = validate(orjson.loads(raw), zone=zone)  # each path gets its own copy
    except PayloadRejected as exc:
        return ("rejected", exc.reason, exc.errors)
    return [_stored(t) if isinstance(t, NormalizedTalk) else _reference_stored(t) for t in talks]


def _stored(t: NormalizedTalk) -> tuple[object, ...]:
    documents = [t.doc, *t.messages, *t.events, *t.users, *t.channels]
    for document in [*documents, *([t.customer] if t.customer else [])]:
        item = document.item
        assert document.id == item["id"]
        assert document.fields == {name: item.get(name) for name in document.fields}
    texts = [[d.text for d in ds] for ds in (t.messages, t.events, t.users, t.channels)]
    customer = t.customer.text if t.customer else None
    return (t.id, t.doc.text, *texts, customer, sorted(t.agent_ids))


def _reference_stored(t: DecodedTalk) -> tuple[object, ...]:
    texts = [[dumps_doc(d) for d in ds] for ds in (t.messages, t.events, t.users, t.channels)]
    customer = dumps_doc(t.customer) if t.customer else None
    return (t.id, dumps_doc(t.doc), *texts, customer, sorted(t.agent_ids))


def assert_same(payload: object, zone: tzinfo = DEFAULT_ZONE) -> object:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:  # refused before validation (integers beyond 64 bits)
        return None
    expected = outcome(reference_validate_talks, raw, zone)
    assert outcome(validate_talks, raw, zone) == expected
    return expected


# -- cases --------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", [DEFAULT_ZONE, UTC_ZONE])
def test_the_fixture_talk_is_stored_as_the_model_dump_stored_it(zone: tzinfo) -> None:
    result = assert_same(FIXTURE.read_bytes(), zone)

    assert isinstance(result, list)
    assert len(result) == 1


def test_the_demo_talks_are_stored_as_the_model_dump_stored_them() -> None:
    talks = sample_talks(60)

    assert_same(talks)
    for one in talks:
        assert_same(one)


@pytest.mark.parametrize(
    "payload",
    [
        talk(talk_histories=[{**talk()["talk_histories"][0], "from_": "x"}]),
        talk(talk_histories=[{**talk()["talk_histories"][0], "from_": 5, "from": None}]),
        talk(talk_histories=[{**talk()["talk_histories"][0], "from_": [1]}]),
        talk(customer={**example_talk()["customer"], "custom_fields": [{"name": 5}]}),
        talk(customer={**example_talk()["customer"], "custom_fields": [{"name": []}]}),
        talk(customer={**example_talk()["customer"], "telephones": ["x", 3]}),
        talk(customer=[]),
        talk(bot="bot"),
        talk(talk_histories=[None, {"id": 1}]),
        talk(created_at=None),
        talk(created_at=""),
        talk(created_at="2025-09-08 11: 01: 18.5"),
        talk(created_at=1757340077.25),
        talk(finished_at="0005-01-01T00:00:00.000001Z"),
        talk(talk_histories=None, talk_events=None, customer=None),
        talk(user={"nested": {"deep": [1, 2.5, None, "x"]}}),
        [talk(1), talk(2, id="x")],
        [talk(1), None, 3],
        [],
        "text",
        None,
    ],
)
def test_odd_payloads_end_the_same(payload: object) -> None:
    assert_same(payload)


@EQUIVALENCE
@given(body=mangled_talk())
def test_mangled_talks_end_the_same(body: bytes) -> None:
    assert_same(body)


@EQUIVALENCE
@given(value=json_values)
def test_any_json_value_ends_the_same(value: object) -> None:
    assert_same(value)


@st.composite
def dirtied_talk(draw: st.DrawFn, values: st.SearchStrategy[Any] | None = None) -> Any:
    """The example talk with values replaced or unknown keys added anywhere inside it."""
    payload: Any = talk(draw(st.integers(1, 40)))
    dicts: list[Any] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            dicts.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                collect(child)

    collect(payload)
    value = (
        values
        if values is not None
        else st.one_of(other_values, odd_strings, st.sampled_from(["S", "não", " 12 ", "3.0"]))
    )
    for _ in range(draw(st.integers(1, 8))):
        node = draw(st.sampled_from(dicts))
        key = draw(st.sampled_from([*sorted(node), "from_", "extra_field", "id"]))
        node[key] = draw(value)
    if draw(st.booleans()):
        payload = [payload, *draw(st.lists(st.just(talk(41)), max_size=2))]
    return payload


@EQUIVALENCE
@given(payload=dirtied_talk(), zone=st.sampled_from([DEFAULT_ZONE, UTC_ZONE]))
def test_dirtied_talks_end_the_same(payload: object, zone: tzinfo) -> None:
    assert_same(payload, zone)


# -- the fast schema ------------------------------------------------------------------------------


# Values at the edges of what an int, a flag, a text or a datetime field takes as it is.
EDGE_VALUES = [
    True,
    False,
    None,
    0,
    1.0,
    1.5,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    "1",
    " 1 ",
    "x",
]
edge_values = st.sampled_from(EDGE_VALUES)


def fast_and_exact(body: object, zone: tzinfo = DEFAULT_ZONE) -> tuple[object, object]:
    """What the fast and the exact schema make of a body: its documents as JSON, or refused."""
    items = body if isinstance(body, list) else [body]

    def run(validator: Any) -> object:
        try:
            docs = validator.validate_python(copy.deepcopy(items), context={"zone": zone})
        except ValidationError:
            return "refused"
        return json.dumps(docs)  # in key order; extra fields may hold ints beyond 64 bits

    return run(validation._FAST_DOCUMENTS), run(validation._TALK_DOCUMENTS)


@pytest.mark.parametrize("value", EDGE_VALUES)
@pytest.mark.parametrize(
    "field", ["id", "agent_id", "was_success", "tracking_number", "latitude", "finished_at"]
)
def test_the_fast_schema_takes_edge_values_as_the_exact_one(field: str, value: object) -> None:
    body = talk()
    body[field] = value
    fast, exact = fast_and_exact(body)
    assert fast == exact


@EQUIVALENCE
@given(
    body=dirtied_talk(st.one_of(edge_values, other_values)),
    zone=st.sampled_from([DEFAULT_ZONE, UTC_ZONE]),
)
def test_the_fast_schema_accepts_what_the_exact_one_does_and_gives_the_same(
    body: object, zone: tzinfo
) -> None:
    fast, exact = fast_and_exact(body, zone)
    assert fast == exact


def test_plain_values_never_reach_the_lenient_functions() -> None:
    plain = {coercers.lenient_int: int, coercers.lenient_bool: bool, coercers.as_text: str}
    kinds = {function.__code__: kind for function, kind in plain.items()}
    calls: list[tuple[str, object]] = []

    def watch(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code in kinds:
            calls.append((frame.f_code.co_name, frame.f_locals["value"]))

    talks = sample_talks(5)
    sys.setprofile(watch)
    try:
        validate_talks(talks)
    finally:
        sys.setprofile(None)

    # Only what PipeRun sends dirty (ints as strings, numbers as text) goes through them;
    # the thousand-odd values that are already what their field wants do not.
    by_name = {f.__name__: kind for f, kind in plain.items()}
    assert [c for c in calls if c[1] is None or type(c[1]) is by_name[c[0]]] == []
    assert 0 < len(calls) < 20 * len(talks)
