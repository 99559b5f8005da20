"""An error never quotes a value the client sent (it may be a password), and ends as a
sentence.

A secret is put in every argument position of every root field (down through input objects
and lists), as every literal kind (string, block string, enum, broken number, escape, list,
object) and as a variable of the argument's type, of the right or a wrong JSON kind; also in
places no value belongs (after the document, in a selection, as a variable's default).
Whatever the answer says, the secret is not in it, every error has its `extensions.code`, and
every message of graphql-core (parse, validation, coercion: errors without a path) ends with a
full stop or a question. Names (of operations, fields, types, arguments) are the document's
structure, and are quoted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
)
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.graphql.schema_assembly import build_schema
from gateway.graphql.typed_errors import scrub_values
from gateway.http.app import create_app
from tests.strategies import served_examples
from tests.support import ALL_KEY, serving, talkme_settings

SCHEMA = build_schema()._schema
FUZZ = served_examples(300)
# Never a name of the schema, nor a word of any message.
SECRETS = st.from_regex(r"\AZq[A-Za-z0-9]{8,16}\Z")


@pytest.fixture
async def client(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    settings_ = talkme_settings(tmp_path, rate_limit_per_minute=1_000_000)
    app = create_app(settings_, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as c:
        yield c


def root_fields() -> list[tuple[str, str, GraphQLField]]:
    """(operation keyword, field name, field) of every query and mutation field with
    arguments."""
    found: list[tuple[str, str, GraphQLField]] = []
    for keyword, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        assert root is not None
        found += [(keyword, name, f) for name, f in root.fields.items() if f.args]
    return found


ROOT_FIELDS = root_fields()


def selection(field: GraphQLField) -> str:
    return " { __typename }" if isinstance(get_named_type(field.type), GraphQLObjectType) else ""


def unwrap(kind: GraphQLInputType) -> GraphQLInputType:
    while isinstance(kind, GraphQLNonNull | GraphQLList):
        kind = kind.of_type
    return kind


@st.composite
def position(draw: st.DrawFn) -> tuple[str, str, GraphQLField, list[str], GraphQLInputType]:
    """A root field, a path of an argument and input fields in it, and the type there."""
    keyword, name, field = draw(st.sampled_from(ROOT_FIELDS))
    argument: GraphQLArgument = draw(st.sampled_from(list(field.args.values())))
    arg_name = next(n for n, a in field.args.items() if a is argument)
    path = [arg_name]
    kind = argument.type
    while isinstance(unwrap(kind), GraphQLInputObjectType) and draw(st.booleans()):
        fields = unwrap(kind).fields  # type: ignore[union-attr]
        inner = draw(st.sampled_from(sorted(fields)))
        path.append(inner)
        kind = fields[inner].type
    return keyword, name, field, path, kind


def literal_kinds(secret: str) -> list[str]:
    return [
        f'"{secret}"',
        f'"""{secret}"""',
        secret,  # an enum value (or a name where none belongs)
        f"[{secret}]",
        f'["{secret}"]',
        f"{{a: {secret}}}",
        f'{{a: "{secret}"}}',
        f"1{secret}",
        f"0{secret}",
        f"1.{secret}",
        f'"\\{secret}"',
        f'"\\u{{{secret}}}"',
        f'"\\u{secret}"',
        f'"{secret}',  # unterminated
        f"'{secret}'",
    ]


def nest(path: list[str], value: str) -> str:
    """`value` at `path` (an argument, then input fields) as argument syntax."""
    text = value
    for name in reversed(path[1:]):
        text = f"{{{name}: {text}}}"
    return f"{path[0]}: {text}"


def nest_json(path: list[str], value: Any) -> Any:
    for name in reversed(path):
        value = {name: value}
    return value


@st.composite
def request_with_secret(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """A GraphQL request holding the secret somewhere a client could put it."""
    secret = draw(SECRETS)
    keyword, name, field, path, _ = draw(position())
    how = draw(st.sampled_from(["literal", "variable", "stray"]))
    if how == "literal":
        value = draw(st.sampled_from(literal_kinds(secret)))
        return f"{keyword} {{ {name}({nest(path, value)}){selection(field)} }}", {}, secret
    if how == "variable":
        kinds: list[Any] = [
            secret,
            [secret],
            {"a": secret},
            [[secret]],
            {path[-1]: secret},
            f"{secret}\u0000",
        ]
        arg_type = field.args[path[0]].type
        variables = {"v": nest_json(path[1:], draw(st.sampled_from(kinds)))}
        document = f"{keyword} ($v: {arg_type}) {{ {name}({path[0]}: $v){selection(field)} }}"
        return document, variables, secret
    stray = draw(
        st.sampled_from(
            [
                f'{{ __typename }} "{secret}"',
                f"{{ __typename }} {secret}",
                f'{{ __typename "{secret}" }}',
                f"{{ __typename(a: {secret}) }}",
                f'query Q($v: Int = "{secret}") {{ __typename }}',
                f"query Q($v: [Int] = [{secret}]) {{ __typename }}",
            ]
        )
    )
    return stray, {}, secret


def assert_no_secret(response: httpx.Response, secret: str) -> None:
    text = response.text
    assert secret not in text, text
    assert secret.lower() not in text.lower(), text
    body = response.json()
    for error in body.get("errors", ()):
        assert error["extensions"]["code"], error
        if "path" not in error and error["message"][:1].isupper():  # graphql-core's
            assert error["message"].endswith((".", "?")), error["message"]


@FUZZ
@given(case=request_with_secret())
async def test_no_error_quotes_a_value_sent(
    client: httpx.AsyncClient, case: tuple[str, dict[str, Any], str]
) -> None:
    document, variables, secret = case
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": document, "variables": variables}).encode(),
        headers={"Authorization": f"Bearer {ALL_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.text
    assert_no_secret(response, secret)


def enum_positions() -> dict[str, tuple[str, str]]:
    """For each enum some argument takes (at any depth of its input objects): an operation
    keyword and a selection giving it VALUE there."""
    found: dict[str, tuple[str, str]] = {}

    def walk(name: str, field: GraphQLField, path: list[str], kind: GraphQLInputType) -> None:
        named = unwrap(kind)
        if isinstance(named, GraphQLEnumType) and named.name not in found:
            found[named.name] = (keyword, f"{{ {name}({nest(path, 'VALUE')}){selection(field)} }}")
        elif isinstance(named, GraphQLInputObjectType) and len(path) < 4:
            for inner, definition in named.fields.items():
                walk(name, field, [*path, inner], definition.type)

    for keyword, name, field in ROOT_FIELDS:  # noqa: B007 - walk reads it
        for arg, definition in field.args.items():
            walk(name, field, [arg], definition.type)
    return found


ENUM_LITERALS = enum_positions()
SECRET = "hunter2secret"


def test_every_enum_a_client_may_send_is_tried() -> None:
    """The enums no argument takes are never coerced from what a client sends."""
    inputs: list[GraphQLInputType] = [
        a.type for _, _, field in ROOT_FIELDS for a in field.args.values()
    ]
    for named in SCHEMA.type_map.values():
        if isinstance(named, GraphQLInputObjectType):
            inputs += [f.type for f in named.fields.values()]
    taken = {t.name for t in map(unwrap, inputs) if isinstance(t, GraphQLEnumType)}
    assert taken == set(ENUM_LITERALS)
    assert {"TalkStatus", "TalkOrder"} <= taken


@pytest.mark.parametrize("enum", sorted(ENUM_LITERALS))
async def test_no_enum_literal_is_quoted(client: httpx.AsyncClient, enum: str) -> None:
    keyword, body = ENUM_LITERALS[enum]
    document = f"{keyword} {body.replace('VALUE', SECRET)}"
    response = await client.post(
        "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {ALL_KEY}"}
    )
    assert_no_secret(response, SECRET)
    messages = [e["message"] for e in response.json()["errors"]]
    assert f"The value given does not exist in the '{enum}' enum." in messages


@pytest.mark.parametrize("enum", sorted(ENUM_LITERALS))
async def test_no_enum_variable_is_quoted(client: httpx.AsyncClient, enum: str) -> None:
    keyword, body = ENUM_LITERALS[enum]
    document = f"{keyword} ($v: {enum}) {body.replace('VALUE', '$v')}"
    response = await client.post(
        "/graphql",
        json={"query": document, "variables": {"v": SECRET}},
        headers={"Authorization": f"Bearer {ALL_KEY}"},
    )
    assert_no_secret(response, SECRET)
    messages = [e["message"] for e in response.json()["errors"]]
    assert any(f"'{enum}' enum" in m for m in messages), messages


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        (
            "Syntax Error: Invalid number, expected digit but got: 'x'.",
            "Syntax Error: Invalid number, expected digit.",
        ),
        (
            "Value 'hunter2secret' does not exist in 'TalkStatus' enum.",
            "The value given does not exist in the 'TalkStatus' enum.",
        ),
        (
            "Value 'WAITIN' does not exist in 'TalkStatus' enum. Did you mean the enum value"
            " 'WAITING'?",
            "The value given does not exist in the 'TalkStatus' enum. Did you mean the enum"
            " value 'WAITING'?",
        ),
        (
            "Variable '$s' has invalid value: Int cannot represent non-integer value: \"x\"",
            "Variable '$s' has invalid value: Int cannot represent non-integer value.",
        ),
        (
            "Syntax Error: Expected Name, found String 'x'.",
            "Syntax Error: Expected Name, found String.",
        ),
        ("Syntax Error: Unexpected Name 'x'.", "Syntax Error: Unexpected Name."),
        (
            "Syntax Error: Invalid Unicode escape sequence: '\\u{x'.",
            "Syntax Error: Invalid Unicode escape sequence.",
        ),
    ],
)
def test_messages_are_whole_sentences_without_the_value(raw: str, scrubbed: str) -> None:
    assert scrub_values(raw) == scrubbed
