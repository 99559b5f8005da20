"""What browsers see: GraphiQL and its headers, introspection and suggestions, CORS, and
what a page may not make the gateway do.

GraphiQL, introspection and field suggestions help people explore the API; each can be
switched off, and cross-origin browser calls are allowed only from configured origins.
Writes need a JSON body and no foreign Origin; TALKGATE_ALLOWED_HOSTS limits the Host names
answered (the demo's own checks are in tests/abuse/test_browser.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from gateway.http.app import create_app
from gateway.settings import Settings
from tests.factories import talk
from tests.support import READ_KEY, WEBHOOK_SECRET, make_settings, serving

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
BEARER = {"Authorization": f"Bearer {READ_KEY}"}
ALLOWED = "https://app.example"


@asynccontextmanager
async def gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(make_settings(tmp_path, **overrides))) as client:
        yield client


async def ask(client: httpx.AsyncClient, document: str, variables: Any = None) -> Any:
    response = await client.post(
        "/graphql", json={"query": document, "variables": variables or {}}, headers=BEARER
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- GraphiQL -------------------------------------------------------------------------------


STAND_IN_PAGE = (
    "<!doctype html><html><head><title>talkgate explorer (GraphiQL)</title>"
    '<script defer src="/explorer/assets/explorer.js" nonce=""></script></head>'
    '<body><div id="explorer"></div></body></html>'
)


@pytest.fixture(params=["built", "not built"])
async def graphiql(request: pytest.FixtureRequest, tmp_path: Path) -> httpx.Response:
    """What a browser gets on /graphql: the explorer (a stand-in build), or without a build
    the page saying how to build it."""
    directory = tmp_path / "explorer-build"
    if request.param == "built":
        directory.mkdir()
        (directory / "index.html").write_text(STAND_IN_PAGE)
    app = create_app(make_settings(tmp_path), explorer_dir=directory)
    async with serving(app) as client:
        response = await client.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    return response


def test_graphiql_may_not_be_framed(graphiql: httpx.Response) -> None:
    assert graphiql.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in graphiql.headers["content-security-policy"]


def test_graphiql_has_a_content_security_policy_restricting_where_it_connects(
    graphiql: httpx.Response,
) -> None:
    policy = [p.strip() for p in graphiql.headers["content-security-policy"].split(";")]
    if "default-src 'none'" not in policy:
        assert "default-src 'self'" in policy
        assert "connect-src 'self'" in policy
    assert "base-uri 'none'" in policy
    assert "unsafe-inline" not in graphiql.headers["content-security-policy"]
    assert "https:" not in graphiql.headers["content-security-policy"]


def test_graphiql_is_not_sniffed_and_sends_no_referrer(graphiql: httpx.Response) -> None:
    assert graphiql.headers["x-content-type-options"] == "nosniff"
    assert graphiql.headers["referrer-policy"] == "no-referrer"


async def test_with_graphiql_off_a_browser_without_a_key_gets_401(tmp_path: Path) -> None:
    async with gateway(tmp_path, graphiql=False) as client:
        response = await client.get("/graphql", headers=BROWSER)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "graphiql" not in response.text.lower()


async def test_with_graphiql_off_a_browser_with_a_key_gets_no_graphiql(tmp_path: Path) -> None:
    async with gateway(tmp_path, graphiql=False) as client:
        response = await client.get("/graphql", headers={**BROWSER, **BEARER})
    # A GET without a document, as any client's: a request error saying what is missing.
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "errors": [
            {
                "message": "a GraphQL document is required in `query`",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }


async def test_with_graphiql_off_queries_by_get_are_still_answered(tmp_path: Path) -> None:
    async with gateway(tmp_path, graphiql=False) as client:
        response = await client.get(
            "/graphql", params={"query": "{ talks { totalCount } }"}, headers=BEARER
        )
    assert response.json() == {"data": {"talks": {"totalCount": 0}}}


# -- introspection --------------------------------------------------------------------------


async def test_introspection_is_on_by_default(client: httpx.AsyncClient) -> None:
    body = await ask(client, "{ __schema { queryType { name } } }")
    assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


@pytest.mark.parametrize(
    "document",
    ["{ __schema { queryType { name } } }", '{ __type(name: "Talk") { fields { name } } }'],
    ids=["__schema", "__type"],
)
async def test_with_introspection_off_introspection_queries_are_refused(
    tmp_path: Path, document: str
) -> None:
    async with gateway(tmp_path, introspection=False) as client:
        body = await ask(client, document)
    assert body.get("data") is None
    assert body["errors"]
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert "introspection has been disabled" in body["errors"][0]["message"]


async def test_with_introspection_off_typename_is_still_answered(tmp_path: Path) -> None:
    async with gateway(tmp_path, introspection=False) as client:
        body = await ask(client, "{ __typename talks { __typename totalCount } }")
    assert body == {
        "data": {"__typename": "Query", "talks": {"__typename": "TalkConnection", "totalCount": 0}}
    }


# -- suggestions ----------------------------------------------------------------------------

# A mistake: the document, its variables, what the error names, and what a suggestion would.
MISTAKES: dict[str, tuple[str, Any, str, str]] = {
    "field": ("{ talkz { totalCount } }", None, "Cannot query field 'talkz'", "'talks'"),
    "argument": (
        "{ talks(frist: 1) { totalCount } }",
        None,
        "Unknown argument 'frist'",
        "'first'",
    ),
    "enum value": (
        # The value given is not quoted (it is a value, which may be a secret).
        "{ talks(orderBy: CREATED_AT_DES) { totalCount } }",
        None,
        "The value given does not exist in the 'TalkOrder' enum.",
        "CREATED_AT_DESC",
    ),
    "type": (
        "{ ...F } fragment F on Qery { talks { totalCount } }",
        None,
        "Unknown type 'Qery'",
        "'Query'",
    ),
    "input field": (
        "{ talks(filter: {statuz: FINISHED}) { totalCount } }",
        None,
        "statuz",
        "'status'",
    ),
    "variable field": (
        "query ($f: TalkFilter) { talks(filter: $f) { totalCount } }",
        {"f": {"trackingNumbr": "TN1"}},
        "trackingNumbr",
        "'trackingNumber'",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
async def test_with_introspection_on_a_mistake_comes_with_a_suggestion(
    client: httpx.AsyncClient, mistake: str
) -> None:
    document, variables, about, suggestion = MISTAKES[mistake]
    body = await ask(client, document, variables)
    [error] = body["errors"]
    assert about in error["message"]
    assert "Did you mean" in error["message"]
    assert suggestion in error["message"]


@pytest.mark.parametrize("mistake", list(MISTAKES))
async def test_with_introspection_off_a_mistake_comes_without_a_suggestion(
    tmp_path: Path, mistake: str
) -> None:
    document, variables, about, suggestion = MISTAKES[mistake]
    async with gateway(tmp_path, introspection=False) as client:
        body = await ask(client, document, variables)
    [error] = body["errors"]
    assert about in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "did you mean" not in error["message"].lower()
    assert suggestion not in error["message"]


# -- CORS -----------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_no_origin_is_allowed_by_default(client: httpx.AsyncClient) -> None:
    checked = await client.options("/graphql", headers=preflight(ALLOWED))
    posted = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={**BEARER, "Origin": ALLOWED}
    )
    assert "access-control-allow-origin" not in checked.headers
    assert "access-control-allow-origin" not in posted.headers


async def test_an_allowed_origin_passes_the_preflight(tmp_path: Path) -> None:
    async with gateway(tmp_path, cors_origins=(ALLOWED,)) as client:
        response = await client.options("/graphql", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers


async def test_an_allowed_origin_may_read_the_answer_to_its_post(tmp_path: Path) -> None:
    async with gateway(tmp_path, cors_origins=(ALLOWED,)) as client:
        response = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={**BEARER, "Origin": ALLOWED}
        )
    assert response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["access-control-allow-origin"] == ALLOWED


async def test_another_origin_is_not_allowed(tmp_path: Path) -> None:
    elsewhere = "https://evil.example"
    async with gateway(tmp_path, cors_origins=(ALLOWED,)) as client:
        checked = await client.options("/graphql", headers=preflight(elsewhere))
        posted = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={**BEARER, "Origin": elsewhere}
        )
    assert checked.headers.get("access-control-allow-origin") not in (elsewhere, "*")
    assert "access-control-allow-origin" not in posted.headers


async def test_an_origin_differing_only_by_scheme_is_not_allowed(tmp_path: Path) -> None:
    async with gateway(tmp_path, cors_origins=(ALLOWED,)) as client:
        checked = await client.options("/graphql", headers=preflight("http://app.example"))
    assert "access-control-allow-origin" not in checked.headers


# -- writes from browsers: Origin and Content-Type ------------------------------------------

QUERY = {"query": "{ __typename }"}


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "http://testserver:8080", "https://testserver"],
)
async def test_a_write_from_a_foreign_origin_is_refused_even_with_a_key(
    tmp_path: Path, origin: str
) -> None:
    async with gateway(tmp_path) as client:
        response = await client.post("/graphql", json=QUERY, headers={**BEARER, "Origin": origin})
    assert response.status_code == 403
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "TALKGATE_PUBLIC_URL" in error["message"]


@pytest.mark.parametrize(
    ("origin", "overrides"),
    [
        (None, {}),
        ("http://testserver", {}),
        ("https://gateway.example", {"public_url": "https://gateway.example/"}),
        (ALLOWED, {"cors_origins": (ALLOWED,)}),
    ],
    ids=["none", "own", "public url", "cors origin"],
)
async def test_a_write_from_no_origin_its_own_or_a_configured_one_is_answered(
    tmp_path: Path, origin: str | None, overrides: dict[str, Any]
) -> None:
    headers = {**BEARER, **({"Origin": origin} if origin else {})}
    async with gateway(tmp_path, **overrides) as client:
        response = await client.post("/graphql", json=QUERY, headers=headers)
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"],
)
async def test_graphql_takes_a_post_only_as_json_415(
    tmp_path: Path, content_type: str | None
) -> None:
    headers = {**BEARER, **({"Content-Type": content_type} if content_type else {})}
    async with gateway(tmp_path) as client:
        response = await client.post(
            "/graphql", content=b'{"query": "{ __typename }"}', headers=headers
        )
    assert response.status_code == 415
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "application/json" in error["message"]


async def test_outside_the_demo_the_webhook_judges_a_delivery_by_its_content(
    tmp_path: Path,
) -> None:
    """Each delivery carries a credential; a body that is not JSON is a dead letter (400),
    whatever its label, so nothing sent is lost."""
    token = {"X-Webhook-Token": WEBHOOK_SECRET, "Content-Type": "text/plain"}
    async with gateway(tmp_path) as client:
        taken = await client.post(
            "/webhooks/talks", content=orjson.dumps(talk(8801)), headers=token
        )
        kept = await client.post("/webhooks/talks", content=b"not json", headers=token)
    assert taken.status_code == 202
    assert kept.status_code == 400
    assert kept.json()["deadLetterId"]


# -- Host names outside the demo ------------------------------------------------------------


async def test_outside_the_demo_any_host_is_answered_by_default(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        response = await client.get("/healthz", headers={"Host": "anything.example:1234"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("gateway.example", 200),
        ("GATEWAY.example:443", 200),
        ("api.internal.example:8000", 200),
        ("a.b.internal.example", 200),
        ("10.0.0.5:8000", 200),
        ("internal.example", 400),
        ("gateway.example.evil.com", 400),
        ("evilgateway.example", 400),
        ("gateway.example:x", 400),
        ("127.0.0.1:8000", 400),
    ],
)
async def test_allowed_hosts_answer_only_those_names(
    tmp_path: Path, host: str, status: int
) -> None:
    hosts = ("gateway.example", "*.internal.example", "10.0.0.5")
    async with gateway(tmp_path, allowed_hosts=hosts) as client:
        response = await client.get("/healthz", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert "TALKGATE_ALLOWED_HOSTS" in response.json()["error"]


def test_allowed_hosts_are_read_as_a_list_of_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALKGATE_ALLOWED_HOSTS", "Gateway.example, *.internal.example,[::1]")
    assert Settings(_env_file=None).allowed_hosts == (
        "gateway.example",
        "*.internal.example",
        "[::1]",
    )


@pytest.mark.parametrize(
    "host", ["https://gateway.example", "gateway.example:443", "gateway.example/x", "*", "a b"]
)
def test_an_allowed_host_that_is_not_a_name_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValidationError, match="is not a host name"):
        make_settings(tmp_path, allowed_hosts=(host,))
