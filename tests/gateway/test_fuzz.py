"""Whatever arrives, talkgate answers it: no 500, no INTERNAL_SERVER_ERROR, nothing sent lost.

Hypothesis posts arbitrary JSON and mangled copies of the example talk to the webhook (each is
accepted, or refused with 400/413/422 and kept as a dead letter), and random GraphQL requests
and documents built from the schema's own names to /graphql. The examples it found once are
kept as named tests at the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import (
    GraphQLEnumType,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    is_required_argument,
    parse,
)
from graphql.type.definition import GraphQLNamedType, get_named_type
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.graphql.limits import QueryLimits, measure
from gateway.graphql.schema_assembly import build_schema
from gateway.http.app import create_app
from tests.factories import talk
from tests.strategies import json_values, mangled_talk, odd_strings, served_examples
from tests.support import ALL_KEY, READ_KEY, WEBHOOK_SECRET, talkme_settings

SCHEMA = build_schema()._schema
WEBHOOK_LIMIT = 64 * 1024
WEBHOOK = {"X-Webhook-Token": WEBHOOK_SECRET, "Content-Type": "application/json"}
# No shrinking: a failure shows as drawn, and the named tests below say what broke.
FUZZ = served_examples(120, shrink=False)


@pytest.fixture
async def gateway(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (Talk.me is the sandbox) with a few talks; an app error comes back as 500."""
    settings_ = talkme_settings(
        tmp_path, webhook_max_bytes=WEBHOOK_LIMIT, rate_limit_per_minute=1_000_000
    )
    app = create_app(settings_, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            seeded = await client.post(
                "/webhooks/talks", json=[talk(1), talk(2), talk(3)], headers=WEBHOOK
            )
            assert seeded.status_code == 202
            yield client


# -- what must hold -------------------------------------------------------------------------


async def graphql(client: httpx.AsyncClient, payload: Any, *, key: str = ALL_KEY) -> httpx.Response:
    return await client.post(
        "/graphql",
        content=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def assert_answered(response: httpx.Response) -> None:
    """No 500, and no error masked as INTERNAL_SERVER_ERROR."""
    assert response.status_code < 500, response.text[:300]
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        codes = [e.get("extensions", {}).get("code") for e in errors or ()]
        assert "INTERNAL_SERVER_ERROR" not in codes, body


async def newest_dead_letter(client: httpx.AsyncClient) -> str | None:
    query = "{ deadLetters(first: 1) { edges { node { id } } } }"
    response = await graphql(client, {"query": query})
    letters = response.json()["data"]["deadLetters"]["edges"]
    return letters[0]["node"]["id"] if letters else None


async def assert_accepted_or_kept(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    """The webhook accepts the body, or refuses it as 400/413/422 and keeps a dead letter."""
    before = await newest_dead_letter(client)
    response = await client.post("/webhooks/talks", content=body, headers=WEBHOOK)
    assert response.status_code in (202, 400, 413, 422), (response.status_code, body[:300])
    after = await newest_dead_letter(client)
    if response.status_code == 202:
        assert after == before
    else:
        assert after is not None
        assert after != before
        assert str(response.json()["deadLetterId"]) == after
    return response


# -- a query reading everything of a talk ---------------------------------------------------


def selection(named: GraphQLNamedType, depth: int) -> str:
    """Every field of `named` without required arguments, objects down to `depth` levels."""
    assert isinstance(named, GraphQLObjectType)
    parts: list[str] = []
    for name, definition in named.fields.items():
        if any(is_required_argument(arg) for arg in definition.args.values()):
            continue
        inner = get_named_type(definition.type)
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            parts.append(name)
        elif depth > 0:
            parts.append(f"{name} {{ {selection(inner, depth - 1)} }}")
    if not parts:
        parts.append("__typename")
    return " ".join(parts)


READ_TALK = f"query ($id: ID) {{ talk(id: $id) {{ {selection(SCHEMA.type_map['Talk'], 3)} }} }}"


async def assert_readable(client: httpx.AsyncClient, talk_ids: list[Any]) -> None:
    for talk_id in talk_ids:
        response = await graphql(client, {"query": READ_TALK, "variables": {"id": str(talk_id)}})
        assert response.status_code == 200, response.text[:300]
        assert_answered(response)
        assert response.json()["data"]["talk"] is not None


def test_the_read_everything_query_is_within_the_default_limits() -> None:
    # Guards the fuzz itself: a refused read would hide what it is there to find.
    limits = QueryLimits()
    document = parse(READ_TALK, max_tokens=limits.tokens)
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    found = measure(SCHEMA, operation, {}, {"id": "1"})
    assert found.depth <= limits.depth
    assert found.cost <= limits.cost
    assert "histories" in READ_TALK


# -- (a) arbitrary JSON to the webhook ------------------------------------------------------


@FUZZ
@given(value=json_values)
@example(value=[])
@example(value={})
@example(value={"id": 1})
@example(value=[{"id": 1}, None])
async def test_any_json_value_is_accepted_or_refused_and_kept(
    gateway: httpx.AsyncClient, value: Any
) -> None:
    await assert_accepted_or_kept(gateway, json.dumps(value).encode())


# -- (b) mangled talks to the webhook -------------------------------------------------------


def talk_with(**fields: Any) -> bytes:
    return json.dumps(talk(500, **fields)).encode()


@FUZZ
@given(body=mangled_talk())
@example(body=talk_with(agent_id=2**64))
@example(body=talk_with(finished_at="9999-12-31 23:59:59"))
async def test_a_mangled_talk_is_accepted_and_readable_or_refused_and_kept(
    gateway: httpx.AsyncClient, body: bytes
) -> None:
    response = await assert_accepted_or_kept(gateway, body)
    if response.status_code == 202:
        await assert_readable(gateway, response.json()["ids"])


# -- (c) random GraphQL documents -----------------------------------------------------------


def _names() -> tuple[list[str], list[str], list[str]]:
    fields: set[str] = set()
    arguments: set[str] = set()
    types: list[str] = []
    for named in SCHEMA.type_map.values():
        if named.name.startswith("__"):
            continue
        types.append(named.name)
        for name, definition in getattr(named, "fields", {}).items():
            fields.add(name)
            arguments.update(getattr(definition, "args", {}))
    return sorted(fields), sorted(arguments | {"input", "filter"}), sorted(types)


FIELDS, ARGUMENTS, TYPES = _names()
some_name = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,8}\Z")
field_name = st.sampled_from([*FIELDS, "__typename", "__schema", "__type"]) | some_name
argument_name = st.sampled_from(ARGUMENTS) | some_name
type_name = st.sampled_from(TYPES) | some_name
alias = st.none() | st.from_regex(r"\A[a-z][0-9a-z]{0,4}\Z")

literal = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=20).map(json.dumps),
    odd_strings.map(json.dumps),
    st.sampled_from(["true", "false", "null", "FINISHED", "CREATED_AT_DESC", "IN", "$v", "$n"]),
    st.sampled_from(['"9999-12-31T23:59:59-23:59"', '"1"', '"-1"', '"99999999999999999999"']),
)
value = st.recursive(
    literal,
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
        | st.dictionaries(argument_name, inner, max_size=3).map(
            lambda fields: "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"
        )
    ),
    max_leaves=6,
)
arguments = st.dictionaries(argument_name, value, max_size=3).map(
    lambda args: "(" + ", ".join(f"{k}: {v}" for k, v in args.items()) + ")" if args else ""
)


def _field(parts: tuple[str | None, str, str, list[str]]) -> str:
    name_alias, name, args, inner = parts
    prefix = f"{name_alias}: " if name_alias else ""
    return f"{prefix}{name}{args}" + (" { " + " ".join(inner) + " }" if inner else "")


selections = st.recursive(
    st.tuples(alias, field_name, arguments, st.just([])).map(_field) | st.just("...F"),
    lambda inner: (
        st.tuples(alias, field_name, arguments, st.lists(inner, min_size=1, max_size=4)).map(_field)
        | st.tuples(type_name, st.lists(inner, min_size=1, max_size=3)).map(
            lambda t: f"... on {t[0]} {{ " + " ".join(t[1]) + " }"
        )
    ),
    max_leaves=14,
)
operation = st.sampled_from(
    [
        "",
        "query",
        "query Q($v: Int, $n: String)",
        "query Q($v: TalkFilter, $n: ID = 1)",
        "mutation",
        "mutation M($v: AgentAuthInput!, $n: AgentCredentialsInput)",
        "subscription",
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    body = " ".join(draw(st.lists(selections, min_size=1, max_size=4)))
    document = f"{draw(operation)} {{ {body} }}"
    if draw(st.booleans()):
        fragment = " ".join(draw(st.lists(selections, min_size=1, max_size=3)))
        document += f" fragment F on {draw(type_name)} {{ {fragment} }}"
    if draw(st.integers(0, 9)) == 0:
        cut = draw(st.integers(0, len(document)))
        document = document[:cut] + draw(st.text(max_size=12)) + document[cut:]
    return document


AFTER_YEAR_9999 = '{ talks(filter: {createdFrom: "9999-12-31T23:59:59-23:59"}) { totalCount } }'


@FUZZ
@given(
    document=documents() | st.text(max_size=60),
    variables=st.dictionaries(st.sampled_from(["v", "n", "x"]), json_values, max_size=2),
    key=st.sampled_from([ALL_KEY, READ_KEY]),
)
@example(document=AFTER_YEAR_9999, variables={}, key=ALL_KEY)
async def test_a_random_graphql_document_never_fails_inside(
    gateway: httpx.AsyncClient, document: str, variables: dict[str, Any], key: str
) -> None:
    assert_answered(await graphql(gateway, {"query": document, "variables": variables}, key=key))


# -- (d) random GraphQL request bodies ------------------------------------------------------

requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"query": st.one_of(st.just("{ talks { totalCount } }"), documents(), json_values)},
        optional={
            "variables": json_values,
            "operationName": json_values,
            "extensions": json_values,
        },
    ),
)


@FUZZ
@given(payload=requests)
@example(payload=42)
@example(payload="{ talks { totalCount } }")
@example(payload=None)
@example(payload=[])
async def test_a_random_graphql_request_body_is_never_a_500(
    gateway: httpx.AsyncClient, payload: Any
) -> None:
    response = await graphql(gateway, payload)
    assert_answered(response)
    assert response.status_code in (200, 400)


# -- found by fuzzing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        talk_with(id=2**63),
        talk_with(id=10**30),
        talk_with(customer_id=2**63),
        talk_with(agent_id=2**64),
        talk_with(score=10**20),
        talk_with(created_at="9999-12-31 23:59:59"),
        talk_with(created_at=1e20),
        talk_with(created_at=2**62),
    ],
    ids=[
        "id-2**63",
        "id-10**30",
        "customer_id-2**63",
        "agent_id-2**64",
        "score-10**20",
        "created_at-year-9999-local",
        "created_at-timestamp-1e20",
        "created_at-timestamp-2**62",
    ],
)
async def test_a_talk_with_an_out_of_range_value_is_422_and_kept(
    gateway: httpx.AsyncClient, body: bytes
) -> None:
    response = await assert_accepted_or_kept(gateway, body)
    assert response.status_code == 422


@pytest.mark.parametrize("payload", [42, "{ talks { totalCount } }", None, True])
async def test_a_graphql_body_that_is_json_but_not_an_object_is_400(
    gateway: httpx.AsyncClient, payload: Any
) -> None:
    response = await graphql(gateway, payload)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (AFTER_YEAR_9999, {}),
        ('{ talks(filter: {createdTo: "0001-01-01T00:00:00+01:00"}) { totalCount } }', {}),
        (
            "query ($f: TalkFilter) { talks(filter: $f) { totalCount } }",
            {"f": {"createdFrom": "9999-12-31T23:59:59-23:59"}},
        ),
    ],
    ids=["literal-after-year-9999", "literal-before-year-1", "variable-after-year-9999"],
)
async def test_a_datetime_argument_out_of_range_is_bad_user_input(
    gateway: httpx.AsyncClient, document: str, variables: dict[str, Any]
) -> None:
    response = await graphql(gateway, {"query": document, "variables": variables})
    assert response.status_code == 200
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
