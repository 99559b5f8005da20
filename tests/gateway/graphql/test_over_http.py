"""GraphQL over HTTP as its specification says (graphql.github.io/graphql-over-http/draft):
the media type chosen by `Accept`, status codes per media type, no `data` entry when nothing
executed, and every request that is not well-formed refused with one answer whether or not
the response cache holds its query."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.http.app import create_app
from tests.strategies import served_examples
from tests.support import READ_KEY, make_settings, serving

JSON = "application/json"
GR = "application/graphql-response+json"
QUERY = "{ talks(first: 1) { totalCount } }"
KEY = {"Authorization": f"Bearer {READ_KEY}"}
FUZZ = served_examples(150)


@asynccontextmanager
async def gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    tmp_path.mkdir(exist_ok=True)  # noqa: ASYNC240 - once, before the app starts
    app: Starlette = create_app(
        make_settings(tmp_path, rate_limit_per_minute=1_000_000, **overrides)
    )
    async with serving(app) as client:
        yield client


@dataclass(frozen=True)
class Sent:
    """One request, as drawn: its method, headers and body or query string."""

    method: str
    headers: dict[str, str]
    content: bytes | None = None
    params: dict[str, str] | None = None

    async def to(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(
            self.method,
            "/graphql",
            headers={**KEY, **self.headers},
            content=self.content,
            params=self.params,
        )


def answer(response: httpx.Response) -> tuple[int, str | None, str | None, bytes]:
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("allow"),
        response.content,
    )


# -- the malformed family -------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=4,
)
# What each parameter may not be (the spec: an object or null, a string or null, a string).
WRONG = {
    "variables": VALUES.filter(lambda v: v is not None and not isinstance(v, dict))
    | st.just(json.dumps({"n": 1})),
    "extensions": VALUES.filter(lambda v: v is not None and not isinstance(v, dict)),
    "operationName": VALUES.filter(lambda v: v is not None and not isinstance(v, str)),
    "query": VALUES.filter(lambda v: not (isinstance(v, str) and v)),
}
ACCEPTS = st.sampled_from([None, JSON, GR, "*/*", f"{GR}, {JSON};q=0.9"])
NOT_JSON_TYPES = st.sampled_from(
    [
        None,
        "",
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        GR,
        "text/json",
        "application/jsonp",
    ]
) | st.from_regex(r"\A[a-z]{1,8}/[a-z+.-]{1,12}\Z").filter(lambda t: t != JSON)
GOOD_BODY = json.dumps({"query": QUERY}).encode()


def with_accept(headers: dict[str, str], accept: str | None) -> dict[str, str]:
    return {**headers, **({"Accept": accept} if accept else {})}


@st.composite
def malformed(draw: st.DrawFn) -> Sent:
    """A request that is not a well-formed GraphQL-over-HTTP request for QUERY."""
    accept = draw(ACCEPTS)
    json_type = with_accept({"Content-Type": JSON}, accept)
    kind = draw(st.sampled_from(["parameter", "body", "content type", "method", "get"]))
    if kind == "parameter":
        name = draw(st.sampled_from(sorted(WRONG)))
        body = {"query": QUERY, name: draw(WRONG[name])}
        return Sent("POST", json_type, json.dumps(body).encode())
    if kind == "body":
        content = draw(
            st.sampled_from([b"", b"{", b'{"query": ', b"not json", b"\xff\xfe", b'{"a":1}'])
            | VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode())
            | st.just(json.dumps([{"query": QUERY}]).encode())  # a batch
        )
        return Sent("POST", json_type, content)
    if kind == "content type":
        content_type = draw(NOT_JSON_TYPES)
        headers = with_accept({"Content-Type": content_type} if content_type else {}, accept)
        return Sent("POST", headers, GOOD_BODY)
    if kind == "method":
        method = draw(st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS"]))
        return Sent(method, json_type, GOOD_BODY)
    name = draw(st.sampled_from(["variables", "extensions"]))
    text = draw(
        st.sampled_from(["{", "nope", "[]", "1", '"x"', "true"])
        | VALUES.filter(lambda v: v is not None and not isinstance(v, dict)).map(json.dumps)
    )
    return Sent("GET", with_accept({}, accept), params={"query": QUERY, name: text})


@dataclass
class ColdAndWarm:
    """Two gateways: one whose cache never held QUERY, one that answers it from the cache."""

    cold: httpx.AsyncClient
    warm: httpx.AsyncClient


@pytest.fixture
async def cold_and_warm(tmp_path: Path) -> AsyncIterator[ColdAndWarm]:
    async with gateway(tmp_path / "cold") as cold, gateway(tmp_path / "warm") as warm:
        for _ in range(2):  # the second is answered from the cache
            posted = await warm.post("/graphql", json={"query": QUERY}, headers=KEY)
            got = await warm.get("/graphql", params={"query": QUERY}, headers=KEY)
        assert posted.json() == {"data": {"talks": {"totalCount": 0}}}
        assert "etag" in got.headers  # only the cache's answers carry one
        yield ColdAndWarm(cold, warm)


@FUZZ
@given(sent=malformed())
async def test_a_malformed_request_gets_one_answer_cold_or_warm(
    cold_and_warm: ColdAndWarm, sent: Sent
) -> None:
    cold = await sent.to(cold_and_warm.cold)
    warm = await sent.to(cold_and_warm.warm)
    assert answer(cold) == answer(warm), sent
    assert 400 <= cold.status_code < 500, (sent, cold.text)
    expected = GR if sent.headers.get("Accept", "").startswith(GR) else JSON
    assert cold.headers["content-type"] == expected
    body = cold.json()
    assert "data" not in body  # nothing executed
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    if cold.status_code == 405:
        assert cold.headers["allow"] == "GET, POST"


async def test_the_cached_query_is_still_answered_warm_after_the_family(
    cold_and_warm: ColdAndWarm,
) -> None:
    """The family's refusals are no property of the query: it is answered, cold and warm."""
    for client in (cold_and_warm.cold, cold_and_warm.warm):
        response = await client.post("/graphql", json={"query": QUERY}, headers=KEY)
        assert response.json() == {"data": {"talks": {"totalCount": 0}}}


# -- media types and status codes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (f"{JSON}; charset=utf-8", JSON),
        (GR, GR),
        (f"{GR}, {JSON};q=0.9", GR),
        (f"{JSON}, {GR}", GR),
        (f"{JSON}, {GR};q=0.5", JSON),
        (f"{GR};q=0, */*", JSON),
        (f"{JSON};q=0, */*", GR),
        ("text/html, */*;q=0.8", JSON),
    ],
)
async def test_accept_chooses_the_media_type(
    tmp_path: Path, accept: str | None, media: str
) -> None:
    async with gateway(tmp_path) as client:
        response = await client.post(
            "/graphql", json={"query": QUERY}, headers=with_accept(KEY, accept)
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == media
    assert response.json() == {"data": {"talks": {"totalCount": 0}}}


@pytest.mark.parametrize(
    "accept", ["text/html", "application/xml", f"{GR};charset=latin-1", "text/event-stream"]
)
async def test_an_accept_allowing_neither_media_type_is_406(tmp_path: Path, accept: str) -> None:
    async with gateway(tmp_path) as client:
        response = await client.post(
            "/graphql", json={"query": QUERY}, headers={**KEY, "Accept": accept}
        )
    assert response.status_code == 406
    assert response.headers["content-type"] == JSON
    [error] = response.json()["errors"]
    assert GR in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@dataclass(frozen=True)
class Case:
    """A well-formed request and its answer under each media type."""

    body: dict[str, Any]
    json_status: int
    gr_status: int
    executed: bool
    message: str | None = None


CASES = {
    "runs": Case({"query": QUERY}, 200, 200, executed=True),
    "does not parse": Case({"query": "{ talks("}, 200, 400, executed=False),
    "does not validate": Case({"query": "{ talkz }"}, 200, 400, executed=False),
    "variables do not coerce": Case(
        {"query": "query ($n: Int!) { talks(first: $n) { totalCount } }", "variables": {"n": "x"}},
        200,
        400,
        executed=False,
    ),
    "a field fails (execution began)": Case(
        {"query": '{ talk(id: "1", trackingNumber: "x") { id } talks { totalCount } }'},
        200,
        200,
        executed=True,
    ),
    "several operations, none named": Case(
        # GraphQL's GetOperation: a request error (strawberry would run the first).
        {"query": "query A { __typename } query B { __typename }"},
        200,
        400,
        executed=False,
        message="the document must hold exactly one operation, or name the one to run in"
        " `operationName`",
    ),
    "an operation name not in the document": Case(
        {"query": "query A { __typename }", "operationName": "hunter2secret"},
        200,
        400,
        executed=False,
        message="the document holds no operation of the name given in `operationName`",
    ),
    "a subscription": Case(
        {"query": "subscription { talkUpdated { id } }"},
        200,
        400,
        executed=False,
        message="subscriptions run over WebSocket (graphql-transport-ws at /graphql), not over"
        " HTTP",
    ),
}


@pytest.mark.parametrize("media", [JSON, GR])
@pytest.mark.parametrize("case", list(CASES))
async def test_each_outcome_has_its_status_under_each_media_type(
    tmp_path: Path, case: str, media: str
) -> None:
    expected = CASES[case]
    async with gateway(tmp_path) as client:
        response = await client.post(
            "/graphql", json=expected.body, headers={**KEY, "Accept": media}
        )
    assert response.status_code == (expected.json_status if media == JSON else expected.gr_status)
    assert response.headers["content-type"] == media
    body = response.json()
    assert ("data" in body) is expected.executed
    assert all(e["extensions"]["code"] for e in body.get("errors", []))
    if expected.message is not None:
        assert body["errors"] == [
            {"message": expected.message, "extensions": {"code": "BAD_USER_INPUT"}}
        ]


@pytest.mark.parametrize("media", [JSON, GR])
async def test_a_mutation_by_get_is_405_allowing_post(tmp_path: Path, media: str) -> None:
    async with gateway(tmp_path) as client:
        response = await client.get(
            "/graphql",
            params={"query": 'mutation { agentLogout(input: {session: "x"}) { status } }'},
            headers={**KEY, "Accept": media},
        )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == media
    assert response.json() == {
        "errors": [
            {
                "message": "mutations are not allowed over GET: send them by POST",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }


async def test_a_cached_answer_is_sent_as_the_media_type_asked_for(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        answers = [
            await client.get("/graphql", params={"query": QUERY}, headers={**KEY, "Accept": media})
            for media in (JSON, GR, JSON, GR)
        ]
    assert [a.headers["content-type"] for a in answers] == [JSON, GR, JSON, GR]
    assert len({a.content for a in answers}) == 1
    # Each media type is a representation of its own: its own tag, and caches told so.
    assert answers[0].headers["etag"] == answers[2].headers["etag"]
    assert answers[1].headers["etag"] == answers[3].headers["etag"]
    assert answers[0].headers["etag"] != answers[1].headers["etag"]
    assert "Accept" in answers[1].headers["vary"]


@pytest.mark.parametrize("media", [JSON, GR])
async def test_refusals_before_the_query_runs_have_no_data_entry(
    tmp_path: Path, media: str
) -> None:
    async with gateway(tmp_path) as client:
        unauthenticated = await client.post(
            "/graphql", json={"query": QUERY}, headers={"Accept": media}
        )
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == media
    assert unauthenticated.json() == {
        "errors": [
            {
                "message": "a valid API key is required: Authorization: Bearer <key>",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
