"""Python's `gql` client (pinned in the `test` extra) against a keyed gateway served by
uvicorn, as a partner's script runs it: the schema fetched by introspection and documents
checked against it, a query, a query with variables, errors (the client's local validation,
the server's request error and a field's error) and a mutation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError
from starlette.applications import Starlette

from gateway.http.app import create_app
from tests.factories import talk
from tests.support import (
    AGENT_LOGIN,
    AGENT_PASSWORD,
    ALL_KEY,
    READ_KEY,
    WEBHOOK_SECRET,
    live_server,
    talkme_settings,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def address(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[str]:
    app = create_app(talkme_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    async with live_server(app) as served:
        async with httpx.AsyncClient(base_url=f"http://{served}") as http:
            pushed = await http.post(
                "/webhooks/talks",
                json=[talk(1), talk(2), talk(3)],
                headers={"X-Webhook-Token": WEBHOOK_SECRET},
            )
            assert pushed.status_code == 202, pushed.text
        yield served


def client(address: str, key: str, *, fetch_schema: bool = True) -> Client:
    transport = HTTPXAsyncTransport(
        url=f"http://{address}/graphql", headers={"Authorization": f"Bearer {key}"}
    )
    return Client(transport=transport, fetch_schema_from_transport=fetch_schema)


async def test_gql_runs_a_query_against_the_introspected_schema(address: str) -> None:
    async with client(address, READ_KEY) as session:
        result = await session.execute(gql("{ talks { totalCount } }"))
        assert session.client.schema is not None
        assert "Talk" in session.client.schema.type_map
    assert result == {"talks": {"totalCount": 3}}


async def test_gql_runs_a_query_with_variables(address: str) -> None:
    document = gql(
        "query Page($n: Int!, $after: String) { talks(first: $n, after: $after, orderBy: ID_ASC)"
        " { edges { node { id: databaseId } } pageInfo { hasNextPage endCursor } } }"
    )
    async with client(address, READ_KEY) as session:
        first = await session.execute(GraphQLRequest(document, variable_values={"n": 2}))
        after = first["talks"]["pageInfo"]["endCursor"]
        rest = await session.execute(
            GraphQLRequest(document, variable_values={"n": 2, "after": after})
        )
    ids = [e["node"]["id"] for page in (first, rest) for e in page["talks"]["edges"]]
    assert ids == ["1", "2", "3"]
    assert first["talks"]["pageInfo"]["hasNextPage"] is True
    assert rest["talks"]["pageInfo"]["hasNextPage"] is False


async def test_gql_refuses_locally_what_the_schema_does_not_have(address: str) -> None:
    async with client(address, READ_KEY) as session:
        with pytest.raises(GraphQLError, match="Cannot query field 'totalCont'"):
            await session.execute(gql("{ talks { totalCont } }"))


async def test_gql_reads_the_servers_request_error_and_its_code(address: str) -> None:
    async with client(address, READ_KEY, fetch_schema=False) as session:
        with pytest.raises(TransportQueryError) as raised:
            await session.execute(
                GraphQLRequest(
                    "query ($s: TalkStatus) { talks(filter: {status: $s}) { totalCount } }",
                    variable_values={"s": "hunter2secret"},
                )
            )
    [error] = raised.value.errors or []
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "hunter2secret" not in str(raised.value)
    assert raised.value.data is None


async def test_gql_reads_a_fields_error_with_the_rest_of_the_data(address: str) -> None:
    async with client(address, READ_KEY) as session:
        with pytest.raises(TransportQueryError) as raised:
            await session.execute(
                gql('{ talk(id: "1") { id: databaseId customer { telephones { number } } } }')
            )
    [error] = raised.value.errors or []
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert raised.value.data == {"talk": {"id": "1", "customer": {"telephones": None}}}


async def test_gql_runs_a_mutation(address: str) -> None:
    document = gql(
        "mutation Pause($in: AgentCredentialsInput!) {"
        " pauseAgent(input: {credentials: $in}) { login status } }"
    )
    credentials = {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}
    async with client(address, ALL_KEY) as session:
        result = await session.execute(
            GraphQLRequest(document, variable_values={"in": credentials})
        )
    assert result == {"pauseAgent": {"login": AGENT_LOGIN, "status": "PAUSED"}}
