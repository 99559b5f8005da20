"""Who may ask what: API keys, scopes, GraphiQL, and errors that reveal nothing they should not."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.resolvers.helpers import Served, codes, error_at, serving, talk_of
from tests.support import ALL_KEY, NO_SCOPE_KEY, PUSH_KEY, READ_KEY, WEBHOOK_SECRET, gql, push

QUERY = "{ talks { totalCount } }"

ROOT_FIELDS = {
    "talk": '(id: "7") { databaseId }',
    "talks": " { totalCount }",
    "customer": '(id: "144527") { databaseId }',
    "customers": " { totalCount }",
    "agent": '(id: "2") { databaseId }',
    "agents": " { totalCount }",
    "node": '(id: "VGFsazo3") { id }',  # Talk 7
    "nodes": '(ids: ["VGFsazo3", "QWdlbnQ6Mg"]) { id }',  # Talk 7, Agent 2
}
EVERY_ROOT_FIELD = "{ " + " ".join(name + rest for name, rest in ROOT_FIELDS.items()) + " }"


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[Served]:
    """One talk in the store, and a spy able to make the store fail."""
    async with serving(app) as served:
        response = await push(served.client, talk_of(7))
        assert response.status_code == 202, response.text
        yield served


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- API keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {READ_KEY}"},
        {"Authorization": READ_KEY},
    ],
    ids=["absent", "empty", "bearer-without-key", "basic-scheme", "no-scheme"],
)
async def test_an_operation_without_a_bearer_key_is_401_unauthenticated(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body.get("data") is None
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "key", ["tgk_wrong", READ_KEY + "x", READ_KEY.upper(), READ_KEY[:-1]], ids=str
)
async def test_an_operation_with_an_unknown_key_is_401_unauthenticated(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": QUERY}, headers={"Authorization": f"bearer {READ_KEY}"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"talks": {"totalCount": 0}}}


async def test_a_webhook_only_key_cannot_read_talks(client: httpx.AsyncClient) -> None:
    body = await gql(client, QUERY, key=PUSH_KEY)
    assert body["data"] == {"talks": None}
    assert codes(body) == ["FORBIDDEN"]


async def test_the_webhook_secret_is_not_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers=bearer(WEBHOOK_SECRET))
    assert response.status_code == 401


# -- scopes ---------------------------------------------------------------------------------


async def test_a_key_without_talks_read_gets_every_root_field_null_with_forbidden(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7))
    body = await gql(client, EVERY_ROOT_FIELD, key=NO_SCOPE_KEY)
    assert body["data"] == dict.fromkeys(ROOT_FIELDS)
    for name in ROOT_FIELDS:
        error = error_at(body, name)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert "talks:read" in error["message"]
    assert len(body["errors"]) == len(ROOT_FIELDS)


async def test_a_key_with_talks_read_gets_every_root_field(client: httpx.AsyncClient) -> None:
    await push(client, talk_of(7))
    body = await gql(client, EVERY_ROOT_FIELD, key=READ_KEY)
    assert "errors" not in body, body["errors"]
    assert body["data"]["talk"] == {"databaseId": "7"}
    assert body["data"]["agent"] == {"databaseId": "2"}
    assert body["data"]["node"] == {"id": "VGFsazo3"}
    assert body["data"]["nodes"] == [{"id": "VGFsazo3"}, {"id": "QWdlbnQ6Mg"}]


async def test_a_key_without_customers_pii_sees_no_phones_emails_or_document(
    client: httpx.AsyncClient,
) -> None:
    payload = talk_of(7)
    payload["customer"]["document_number"] = "123.456.789-09"
    await push(client, payload)
    body = await gql(
        client,
        '{ talk(id: "7") { id: databaseId customer { name documentNumber telephones { fullNumber }'
        " emails { email } customFields { name value } } } }",
        key=READ_KEY,
    )
    assert body["data"]["talk"]["id"] == "7"
    for field in ("documentNumber", "telephones", "emails", "customFields"):
        assert error_at(body, "talk", "customer", field)["extensions"]["code"] == "FORBIDDEN"
    text = str(body)
    for secret in ("123.456.789-09", "51999887766", "[email protected]", "(51) 99999-8888"):
        assert secret not in text


async def test_a_key_without_customers_pii_sees_no_client_ip_agent_or_coordinates(
    client: httpx.AsyncClient,
) -> None:
    fields: dict[str, Any] = {
        "client_ip": "200.100.50.25",
        "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "latitude": "-30.0346",
        "longitude": "-51.2177",
    }
    await push(client, talk_of(7, **fields))
    body = await gql(
        client,
        '{ talk(id: "7") { id: databaseId clientIp clientUserAgent latitude longitude } }',
        key=READ_KEY,
    )
    assert body["data"]["talk"] == {
        "id": "7",
        "clientIp": None,
        "clientUserAgent": None,
        "latitude": None,
        "longitude": None,
    }
    for field in ("clientIp", "clientUserAgent", "latitude", "longitude"):
        assert error_at(body, "talk", field)["extensions"]["code"] == "FORBIDDEN"


async def test_a_key_with_customers_pii_sees_phones_and_client_ip(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7, client_ip="200.100.50.25"))
    body = await gql(
        client,
        '{ talk(id: "7") { clientIp customer { telephones { fullNumber } } } }',
        key=ALL_KEY,
    )
    assert body == {
        "data": {
            "talk": {
                "clientIp": "200.100.50.25",
                "customer": {"telephones": [{"fullNumber": "51999887766"}]},
            }
        }
    }


# -- GET and GraphiQL -----------------------------------------------------------------------


async def test_a_browser_gets_graphiql_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_a_query_by_get_with_a_key_is_answered(client: httpx.AsyncClient) -> None:
    await push(client, talk_of(7))
    response = await client.get(
        "/graphql",
        params={
            "query": "query ($id: ID) { talk(id: $id) { id: databaseId } }",
            "variables": '{"id": "7"}',
        },
        headers=bearer(READ_KEY),
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"talk": {"id": "7"}}}


async def test_a_query_by_get_without_a_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": QUERY})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_query_by_get_from_a_browser_without_a_key_is_not_answered(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7))
    response = await client.get(
        "/graphql",
        params={"query": '{ talk(id: "7") { trackingNumber } }'},
        headers={"Accept": "text/html"},
    )
    assert "TN7" not in response.text


# -- what errors reveal ---------------------------------------------------------------------


async def test_no_response_or_log_line_repeats_the_key_it_was_given(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "tgk_not_a_configured_key_0123456789"
    responses = [
        await client.post("/graphql", json={"query": QUERY}, headers=bearer(wrong)),
        await client.post(
            "/graphql", json={"query": EVERY_ROOT_FIELD}, headers=bearer(NO_SCOPE_KEY)
        ),
        await client.post(
            "/graphql",
            json={"query": "{ talks(first: 101) { totalCount } }"},
            headers=bearer(READ_KEY),
        ),
        await client.post("/graphql", json={"query": "{ nope }"}, headers=bearer(READ_KEY)),
        await client.get("/graphql", params={"query": "{ nope }"}, headers=bearer(READ_KEY)),
    ]
    assert [r.status_code for r in responses] == [401, 200, 200, 200, 200]
    for response in responses:
        assert response.json()["errors"]
        for key in (wrong, NO_SCOPE_KEY, READ_KEY):
            assert key not in response.text
            assert key not in str(response.headers)
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for key in (wrong, NO_SCOPE_KEY, READ_KEY):
        assert key not in logged


async def test_an_unexpected_error_is_masked_with_the_request_id(served: Served) -> None:
    served.spy.fail("talk_pages", RuntimeError("boom: SELECT secret_column FROM talks"))
    response = await served.client.post(
        "/graphql",
        json={"query": '{ talks { totalCount } talk(id: "7") { id: databaseId } }'},
        headers=bearer(READ_KEY),
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["data"] == {"talks": None, "talk": {"id": "7"}}
    error = error_at(body, "talks")
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": response.headers["x-request-id"],
    }
    for detail in ("boom", "secret_column", "RuntimeError", "Traceback", "sqlite"):
        assert detail not in response.text


async def test_an_unexpected_error_leaves_its_traceback_in_the_log(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.spy.fail("talk_pages", RuntimeError("boom: SELECT secret_column FROM talks"))
    response = await served.client.post(
        "/graphql", json={"query": "{ talks { totalCount } }"}, headers=bearer(READ_KEY)
    )
    assert response.json()["errors"][0]["message"] == "Internal server error"
    [record] = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "talks" in record.getMessage()
    assert "Traceback (most recent call last)" in caplog.text
    assert "RuntimeError: boom: SELECT secret_column FROM talks" in caplog.text


async def test_a_client_request_id_is_the_one_an_unexpected_error_carries(
    served: Served,
) -> None:
    served.spy.fail("customers_by_id", RuntimeError("boom"))
    response = await served.client.post(
        "/graphql",
        json={"query": '{ talk(id: "7") { id: databaseId customer { name } } }'},
        headers={**bearer(READ_KEY), "X-Request-ID": "trace-0042"},
    )
    assert response.headers["x-request-id"] == "trace-0042"
    body = response.json()
    assert body["data"] == {"talk": {"id": "7", "customer": None}}
    error = error_at(body, "talk", "customer")
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "trace-0042"}


async def test_an_expected_error_is_not_logged_as_an_error(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = await gql(
        client, '{ talks(first: 101) { totalCount } talk(id: "x") { id: databaseId } }'
    )
    assert codes(body) == ["BAD_USER_INPUT", "BAD_USER_INPUT"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
