"""Batching: a nested lookup costs one store call per level of the query, whatever its width."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from gateway.storage.sqlite import SQLiteStore
from tests.resolvers.helpers import Served, serving, talk_of
from tests.support import gql, push

TALKS = 50
FIRST_ID = 400_000
CUSTOMERS = 10
AGENTS = (31, 32, 33)  # in charge of the talks; the messages are written by PipeBot (2)


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[Served]:
    """Fifty talks of ten customers and three agents, with a spy on the store's reads."""
    async with serving(app) as served:
        payloads = [
            talk_of(
                FIRST_ID + n,
                customer_id=900_000 + n % CUSTOMERS,
                agent_id=AGENTS[n % len(AGENTS)],
                created_at=f"2025-09-08T10:{n:02d}:00Z",
            )
            for n in range(TALKS)
        ]
        response = await push(served.client, payloads)
        assert response.status_code == 202, response.text
        served.spy.reset()
        yield served


async def test_talks_with_customer_agent_messages_users_and_events_cost_one_call_per_level(
    served: Served,
) -> None:
    body = await gql(
        served.client,
        """
        {
          talks(first: 50) {
            edges { node {
              customer { name }
              agent { name }
              histories(first: 5) { edges { node { user { name } } } }
              events { id: databaseId }
            } }
          }
        }
        """,
    )
    assert "errors" not in body, body["errors"]
    nodes = [edge["node"] for edge in body["data"]["talks"]["edges"]]
    assert len(nodes) == TALKS
    assert all(len(n["histories"]["edges"]) == 3 and len(n["events"]) == 1 for n in nodes)
    assert served.spy.counts() == {
        # The page's customers are read with it (talk_pages `with_customers`).
        "talk_pages": 1,
        # Agents are looked up at two levels: the talks' agents, then the messages' users.
        "agents_by_id": 2,
        "message_pages": 1,
        "events_by_talk": 1,
    }


async def test_a_page_s_customers_are_read_with_it_through_fragments_and_aliases(
    served: Served,
) -> None:
    body = await gql(
        served.client,
        """
        { page: talks(first: 50) { ...Edges } }
        fragment Edges on TalkConnection {
          edges { node { ... on Talk { id: databaseId buyer: customer { id: databaseId name } } } }
        }
        """,
    )
    assert "errors" not in body, body["errors"]
    nodes = [edge["node"] for edge in body["data"]["page"]["edges"]]
    assert len(nodes) == TALKS
    assert {n["buyer"]["id"] for n in nodes} == {str(900_000 + n) for n in range(CUSTOMERS)}
    assert served.spy.counts() == {"talk_pages": 1}


# SQLite only: PostgreSQL reads a page's customers with the page, on its connection and in
# its retry, so a failing read there fails the page.
@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_a_failing_read_of_a_page_s_customers_leaves_the_page_answered(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The customers read with the page fail, and so does the lookup they are left to: each
    # talk's customer is then an error of its own, as when they were only looked up.
    assert isinstance(served.spy.store, SQLiteStore)
    read_by_version = SQLiteStore._versioned_docs

    def failing_sqlite(self: SQLiteStore, c: Any, table: str, stamps: Any) -> Any:
        if table == "customers":
            raise sqlite3.OperationalError("disk I/O error")
        return read_by_version(self, c, table, stamps)

    monkeypatch.setattr(SQLiteStore, "_versioned_docs", failing_sqlite)
    body = await gql(
        served.client,
        "{ talks(first: 50) { edges { node { id: databaseId customer { name } } } } }",
    )

    nodes = [edge["node"] for edge in body["data"]["talks"]["edges"]]
    assert len(nodes) == TALKS
    assert all(n["customer"] is None for n in nodes)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"SERVICE_UNAVAILABLE"}
    assert len(body["errors"]) == TALKS
    assert served.spy.counts() == {"talk_pages": 1, "customers_by_id": 1}


async def test_an_agent_already_loaded_in_the_request_is_not_fetched_again(
    served: Served,
) -> None:
    body = await gql(
        served.client,
        """
        {
          talks(first: 50) {
            edges { node {
              agent { name }
              histories { edges { node { user { name } } } }
              events { agent { name } }
            } }
          }
          again: talks(first: 50, orderBy: ID_ASC) { edges { node { agent { login } } } }
        }
        """,
    )
    assert "errors" not in body, body["errors"]
    # Users (2) and event agents (2) are one level, talks' agents (31-33) another.
    assert served.spy.counts() == {
        "talk_pages": 2,
        "agents_by_id": 2,
        "message_pages": 1,
        "events_by_talk": 1,
    }


async def test_channels_of_talks_and_messages_cost_one_call(served: Served) -> None:
    body = await gql(
        served.client,
        "{ talks(first: 50) { edges { node { channel { description }"
        " histories { edges { node { channel { description } } } } } } } }",
    )
    assert "errors" not in body, body["errors"]
    # The messages' channel (1) was loaded with the talks' channel (1) one level up.
    assert served.spy.counts() == {"talk_pages": 1, "channels_by_id": 1, "message_pages": 1}


async def test_total_counts_of_nested_connections_cost_one_call_per_level(
    served: Served,
) -> None:
    body = await gql(
        served.client,
        "{ talks(first: 50) { totalCount edges { node { histories(first: 1) { totalCount } } } } }",
    )
    assert "errors" not in body, body["errors"]
    counts = [e["node"]["histories"]["totalCount"] for e in body["data"]["talks"]["edges"]]
    assert counts == [3] * TALKS
    assert served.spy.counts() == {
        "talk_pages": 1,
        "count_talks": 1,
        "message_pages": 1,
        "count_messages": 1,
    }


async def test_each_customer_talks_page_in_a_list_costs_one_call_for_all(
    served: Served,
) -> None:
    body = await gql(
        served.client,
        "{ customers(first: 10) { edges { node { id: databaseId talks(first: 2) { totalCount"
        " edges { node { id: databaseId agent { name } } } } } } } }",
    )
    assert "errors" not in body, body["errors"]
    customers = [e["node"] for e in body["data"]["customers"]["edges"]]
    assert len(customers) == CUSTOMERS
    assert {c["talks"]["totalCount"] for c in customers} == {TALKS // CUSTOMERS}
    assert all(len(c["talks"]["edges"]) == 2 for c in customers)
    assert served.spy.counts() == {
        "customer_page": 1,
        "talk_pages": 1,
        "count_talks": 1,
        "agents_by_id": 1,
    }


async def test_each_agent_talks_page_in_a_list_costs_one_call_for_all(served: Served) -> None:
    body = await gql(
        served.client,
        "{ agents { edges { node { id: databaseId talks(first: 3) {"
        " edges { node { customer { id: databaseId } } } } } } } }",
    )
    assert "errors" not in body, body["errors"]
    assert served.spy.counts() == {"agent_page": 1, "talk_pages": 1, "customers_by_id": 1}


async def test_nested_pages_of_different_sizes_cost_one_call_per_size(served: Served) -> None:
    body = await gql(
        served.client,
        "{ talks(first: 50) { edges { node {"
        " one: histories(first: 1) { edges { cursor } }"
        " two: histories(first: 2) { edges { cursor } }"
        " again: histories(first: 1) { edges { node { id: databaseId } } } } } } }",
    )
    assert "errors" not in body, body["errors"]
    assert served.spy.counts() == {"talk_pages": 1, "message_pages": 2}


async def test_talks_asked_by_id_in_one_document_cost_one_call(served: Served) -> None:
    aliases = " ".join(f't{n}: talk(id: "{FIRST_ID + n}") {{ databaseId }}' for n in range(20))
    body = await gql(served.client, f"{{ {aliases} }}")
    assert "errors" not in body, body["errors"]
    assert body["data"]["t7"] == {"databaseId": str(FIRST_ID + 7)}
    assert served.spy.counts() == {"talks_by_id": 1}


async def test_each_request_has_its_own_loaders(served: Served) -> None:
    query = (
        f'{{ talk(id: "{FIRST_ID}") {{ histories {{ edges {{ node {{ user {{ name }} }} }} }} }} }}'
    )
    before = await gql(served.client, query)
    renamed = talk_of(FIRST_ID + 999)
    for history in renamed["talk_histories"]:
        history["user"]["name"] = "PipeBot 2"
    await push(served.client, renamed)
    served.spy.reset()
    after = await gql(served.client, query)
    names = [
        {e["node"]["user"]["name"] for e in body["data"]["talk"]["histories"]["edges"]}
        for body in (before, after)
    ]
    assert names == [{"PipeBot"}, {"PipeBot 2"}]
    assert served.spy.counts()["agents_by_id"] == 1
