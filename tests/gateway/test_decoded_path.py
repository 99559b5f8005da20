"""POSTed operations answered from the body the edge decoded (GraphQLView.answer_decoded) get
exactly the answer strawberry's view gives them.

Each request of a generated corpus (documents that run, fail to parse, fail validation,
name a missing operation, subscribe, mutate without the scope; variables, operation names
and extensions of every JSON type; Accept headers that ask for a stream) is sent twice to
the same app: once as the gateway serves it, once with the decoded path switched off so the
view answers it. Status, Content-Type and body must be the same.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway import graphql_app
from gateway.demo import example_talk
from gateway.settings import Settings
from tests.conftest import ALL_KEY, READ_KEY, make_settings, push

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
    decoded = graphql_app.GraphQLView.answer_decoded

    async def counted(self: graphql_app.GraphQLView, request: Any, params: Any) -> Any:
        nonlocal taken
        answer = await decoded(self, request, params)
        taken += answer is not None
        return answer

    async def never(self: graphql_app.GraphQLView, request: Any, params: Any) -> None:
        return None

    pushed = await push(client, example_talk())
    assert pushed.status_code == 202, pushed.text
    cases = corpus()
    for body, accept, key in cases:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if accept is not None:
            headers["Accept"] = accept
        monkeypatch.setattr(graphql_app.GraphQLView, "answer_decoded", counted)
        fast = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
        monkeypatch.setattr(graphql_app.GraphQLView, "answer_decoded", never)
        slow = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
        assert _answer(fast) == _answer(slow), (body, accept, key)
    # The path was taken for the plain cases, and left to the view for the others.
    assert 20 <= taken <= len(cases) - 20, taken
