"""POSTed operations answered from the body the edge decoded (GraphQLView.answer_decoded) get
exactly the answer strawberry's view gives them.

The decoded path (and the view, for what it decodes itself: GETs among them) runs an
operation that passes every check without strawberry's extension runner
(`_Schema.execute_checked`); the second test holds that to strawberry's answers and counts
under settings that make the checks refuse: introspection off, tight limits, an allow-list;
with field errors of every kind (a scope refused, a resolver's typed error, the upstream's,
variables that do not coerce).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from graphql import get_operation_ast, parse
from starlette.applications import Starlette

from gateway.demo import example_talk
from gateway.graphql import schema_assembly, view
from gateway.graphql.persisted import document_hash
from gateway.http.app import create_app
from gateway.settings import Settings
from tests.support import (
    AGENT_LOGIN,
    AGENT_PASSWORD,
    ALL_KEY,
    OPERATIONS,
    READ_KEY,
    make_settings,
    push,
    scrape,
    serving,
    talkme_settings,
)

DOCUMENTS: list[Any] = [
    "{ talks(first: 2) { edges { node { id: databaseId } } } }",
    "query Q($n: Int!) { talks(first: $n) { edges { cursor node { id: databaseId customer {"
    " id: databaseId name } } }"
    " pageInfo { hasNextPage endCursor } totalCount } }",
    "query A { __typename } query B { talks(first: 1) { totalCount } }",
    'mutation M { agentLogout(input: {session: "not-a-session"}) { __typename } }',
    "subscription S { talkUpdated { id: databaseId } }",
    "{ talks(first: 2) { edges { node { id: databaseId nope } } } }",
    "{ talks(first: ",
    "{ talks(first: 500) { totalCount } }",
    "{ __schema { queryType { name } } }",
    '{ talk(id: "114603") { id: databaseId customer { name } } }',
    "",
    None,
    7,
    ["{ __typename }"],
]
VARIABLES: list[Any] = ["absent", None, {}, {"n": 1}, {"n": "x"}, [], "text"]
NAMES: list[Any] = ["absent", None, "A", "B", "Q", "Missing", 5]
EXTENSIONS: list[Any] = ["absent", None, {}, [], {"other": 1}]
ACCEPTS: list[str | None] = [
    None,
    "application/json",
    "application/graphql-response+json",
    "text/event-stream",
    "multipart/mixed",
]
KEYS = [READ_KEY, ALL_KEY]


def corpus() -> list[tuple[dict[str, Any], str | None, str]]:
    """Every document with every operation name, and a seeded sample of the other parts."""
    rng = random.Random(20)
    cases: list[tuple[dict[str, Any], str | None, str]] = []
    for document, name in itertools.product(DOCUMENTS, NAMES):
        cases.append((_body(document, {"n": 1}, name, "absent"), None, READ_KEY))
    for _ in range(160):
        body = _body(
            rng.choice(DOCUMENTS), rng.choice(VARIABLES), rng.choice(NAMES), rng.choice(EXTENSIONS)
        )
        cases.append((body, rng.choice(ACCEPTS), rng.choice(KEYS)))
    return cases


def _body(document: Any, variables: Any, name: Any, extensions: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"query": document}
    parts = (("variables", variables), ("operationName", name), ("extensions", extensions))
    for key, value in parts:
        if value != "absent":
            body[key] = value
    return body


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """conftest's app and client on these settings. No response cache: the second of each
    pair must be executed too, not served."""
    return make_settings(tmp_path, response_cache_mb=0, rate_limit_per_minute=100_000)


def _answer(response: httpx.Response) -> tuple[int, str, Any]:
    """Status, Content-Type and body; an internal error's request id is each request's own."""
    kind = response.headers.get("content-type", "")
    body: Any = response.text
    if kind.startswith("application/json"):
        body = orjson.loads(response.content)
        for error in body.get("errors") or () if isinstance(body, dict) else ():
            if "requestId" in error.get("extensions", {}):
                error["extensions"]["requestId"] = "<request id>"
    return response.status_code, kind, body


async def test_the_decoded_path_answers_as_the_view_does(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = 0
    decoded = view.GraphQLView.answer_decoded

    async def counted(self: view.GraphQLView, request: Any, params: Any) -> Any:
        nonlocal taken
        answer = await decoded(self, request, params)
        taken += answer is not None
        return answer

    async def never(self: view.GraphQLView, request: Any, params: Any) -> None:
        return None

    pushed = await push(client, example_talk())
    assert pushed.status_code == 202, pushed.text
    cases = corpus()
    for body, accept, key in cases:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if accept is not None:
            headers["Accept"] = accept
        monkeypatch.setattr(view.GraphQLView, "answer_decoded", counted)
        fast = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
        monkeypatch.setattr(view.GraphQLView, "answer_decoded", never)
        slow = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
        assert _answer(fast) == _answer(slow), (body, accept, key)
    # The path was taken for the plain cases, and left to the view for the others.
    assert 20 <= taken <= len(cases) - 20, taken


# Documents each of which one check or another refuses under STRICT, or that fail at a field.
STRICT_DOCUMENTS: list[str] = [
    "{ talks(first: 2) { edges { node { id: databaseId } } } }",
    "query Q($n: Int!) { talks(first: $n) { edges { node { id: databaseId } } } }",
    # customers:pii refused to READ_KEY: null and FORBIDDEN at the field.
    "{ talks(first: 2) { edges { node { customer { name documentNumber } } } } }",
    # A resolver's own typed error (BAD_USER_INPUT), and the upstream's answer.
    '{ recording(protocol: " ") { __typename } }',
    '{ recording(protocol: "20250901200000") { __typename } }',
    "mutation P($input: AgentAuthInput!) { pauseAgent(input: $input) { status } }",
    # Too deep, too costly, introspection (off), not on the allow-list.
    "{ talks { edges { node { customer { talks { edges { node { customer { id } } } } } } } } }",
    "{ talks(first: 100) { edges { node { histories(first: 100) { totalCount } } } } }",
    "{ __schema { queryType { name } } }",
    "query NotListed { talks(first: 1) { totalCount } }",
]
STRICT_VARIABLES: list[Any] = [
    None,
    {"n": 1},
    {"n": "x"},
    {"n": 2_000},
    {"input": {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}},
    {"input": {"credentials": {"login": AGENT_LOGIN, "password": "wrong"}}},
]


def _strict_settings(tmp_path: Path) -> Settings:
    """Introspection off, tight limits and an allow-list of all STRICT_DOCUMENTS but the last."""
    listed = {document_hash(d): d for d in STRICT_DOCUMENTS[:-1]}
    manifest = tmp_path / "persisted.json"
    manifest.write_bytes(orjson.dumps(listed))
    return talkme_settings(
        tmp_path,
        response_cache_mb=0,
        rate_limit_per_minute=100_000,
        introspection=False,
        max_query_depth=6,
        max_query_cost=2_000,
        persisted_queries_file=manifest,
        persisted_queries_only=True,
    )


async def _operation_counts(client: httpx.AsyncClient) -> dict[tuple[str, ...], float]:
    return {
        tuple(sorted(labels.values())): value
        for name, labels, value in await scrape(client)
        if name == OPERATIONS
    }


async def test_operations_run_without_strawberrys_runner_answer_and_count_as_through_it(
    tmp_path: Path, sandbox: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(_strict_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    ran = 0
    checked = schema_assembly.TalkgateSchema.execute_checked

    async def counted(self: schema_assembly.TalkgateSchema, *args: Any) -> Any:
        nonlocal ran
        result = await checked(self, *args)
        ran += result is not None
        return result

    async def never(self: schema_assembly.TalkgateSchema, *args: Any) -> None:
        return None

    cases = [
        (document, variables, key)
        for document, variables, key in itertools.product(STRICT_DOCUMENTS, STRICT_VARIABLES, KEYS)
    ]
    async with serving(app) as client:
        pushed = await push(client, example_talk())
        assert pushed.status_code == 202, pushed.text
        for document, variables, key in cases:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            body = orjson.dumps({"query": document, "variables": variables})
            before = await _operation_counts(client)
            monkeypatch.setattr(schema_assembly.TalkgateSchema, "execute_checked", counted)
            direct = await client.post("/graphql", content=body, headers=headers)
            between = await _operation_counts(client)
            monkeypatch.setattr(schema_assembly.TalkgateSchema, "execute_checked", never)
            through = await client.post("/graphql", content=body, headers=headers)
            after = await _operation_counts(client)
            assert _answer(direct) == _answer(through), (document, variables, key)
            counted_direct = {k: v - before.get(k, 0) for k, v in between.items()}
            counted_through = {k: v - between.get(k, 0) for k, v in after.items()}
            assert {k: v for k, v in counted_direct.items() if v} == {
                k: v for k, v in counted_through.items() if v
            }, (document, variables, key)
            # The same by GET, which the view decodes itself (mutations: 405 both ways).
            query = {"query": document, "variables": orjson.dumps(variables).decode()}
            get = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
            monkeypatch.setattr(schema_assembly.TalkgateSchema, "execute_checked", counted)
            direct = await client.get("/graphql", params=query, headers=get)
            monkeypatch.setattr(schema_assembly.TalkgateSchema, "execute_checked", never)
            through = await client.get("/graphql", params=query, headers=get)
            assert _answer(direct) == _answer(through), ("GET", document, variables, key)
    # The checks let through the operations they pass, and only those; a few of each.
    assert 20 <= ran <= 2 * len(cases) - 60, ran


async def test_a_document_off_the_allow_list_is_left_to_strawberrys_refusal(
    tmp_path: Path,
) -> None:
    # The HTTP edge refuses it first (PersistedQueryPolicy); the schema refuses it on every
    # path all the same, so the direct run leaves it to `execute`, whose AllowListedOnly
    # words the refusal.
    listed = "{ __typename }"
    schema = schema_assembly.build_schema(
        make_settings(tmp_path), allow_list={document_hash(listed): listed}
    )
    assert isinstance(schema, schema_assembly.TalkgateSchema)
    for query, runs in ((listed, True), ("{ talks(first: 1) { totalCount } }", False)):
        document = parse(query)
        operation = get_operation_ast(document)
        assert operation is not None
        result = await schema.execute_checked(query, document, operation, None, None, None)
        assert (result is not None) is runs, query
        if result is not None:
            assert result.data == {"__typename": "Query"}
            assert not result.errors
        refused = await schema.execute(query)
        assert (refused.errors is None) is runs, refused.errors
