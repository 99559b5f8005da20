"""Relay connections: keyset cursors, page sizes, orderings, nested connections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import strawberry
from graphql import GraphQLResolveInfo, execute_sync, parse

from resolvers import pagination
from resolvers.pagination import selects
from tests.resolvers.helpers import codes, error_at, node_ids, talk_of
from tests.support import gql, push

TALKS = 40
FIRST_ID = 300_000
CUSTOMERS = {910_001: "ANA COSTA", 910_002: "MARIA SILVA", 910_003: "Mariana Souza"}
AGENTS = (31, 32, 33)
START = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
LOCAL = ZoneInfo("America/Sao_Paulo")


def created(n: int) -> datetime:
    # Not monotonic in the id, and with ties, so that every ordering is its own list.
    return START + timedelta(hours=(n * 7) % 13)


def spelled(n: int) -> str:
    """The creation moment of talk n, in one of the spellings PipeRun uses."""
    moment = created(n)
    if n % 2:
        return moment.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")  # naive local time
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def customer_of(n: int) -> int:
    return list(CUSTOMERS)[n % len(CUSTOMERS)]


def payload(n: int) -> dict[str, Any]:
    customer_id = customer_of(n)
    return talk_of(
        FIRST_ID + n,
        customer_id=customer_id,
        customer_name=CUSTOMERS[customer_id],
        agent_id=AGENTS[n % len(AGENTS)],
        created_at=spelled(n),
    )


def expected(order: str, numbers: range = range(TALKS)) -> list[str]:
    """Talk ids in `order`, as SPEC defines it: by createdAt then id, or by id."""
    by_created = sorted(numbers, key=lambda n: (created(n), FIRST_ID + n))
    by_id = sorted(numbers, key=lambda n: FIRST_ID + n)
    ordered = {
        "CREATED_AT_DESC": by_created[::-1],
        "CREATED_AT_ASC": by_created,
        "ID_DESC": by_id[::-1],
        "ID_ASC": by_id,
    }[order]
    return [str(FIRST_ID + n) for n in ordered]


@pytest.fixture
async def many(client: httpx.AsyncClient) -> None:
    """Forty talks of three customers and three agents, posted as one webhook delivery."""
    response = await push(client, [payload(n) for n in range(TALKS)])
    assert response.status_code == 202, response.text


PAGE = """
query ($first: Int!, $after: String, $order: TalkOrder!) {
  talks(first: $first, after: $after, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id: databaseId } }
  }
}
"""


async def walk(
    client: httpx.AsyncClient, query: str, path: list[str], first: int, **variables: Any
) -> list[dict[str, Any]]:
    """Every page of the connection at `path`, following endCursor until hasNextPage is false."""
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        body = await gql(client, query, {**variables, "first": first, "after": after})
        assert "errors" not in body, body["errors"]
        connection = body["data"]
        for key in path:
            connection = connection[key]
        pages.append(connection)
        assert len(pages) <= 50, "the pages never end"
        if not connection["pageInfo"]["hasNextPage"]:
            return pages
        after = connection["pageInfo"]["endCursor"]


# -- talks, page by page --------------------------------------------------------------------


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize("order", ["CREATED_AT_DESC", "CREATED_AT_ASC", "ID_DESC", "ID_ASC"])
async def test_paging_through_talks_yields_each_talk_once_in_order(
    client: httpx.AsyncClient, order: str
) -> None:
    pages = await walk(client, PAGE, ["talks"], 7, order=order)
    seen = [talk_id for page in pages for talk_id in node_ids(page)]
    assert seen == expected(order)
    assert [len(page["edges"]) for page in pages] == [7, 7, 7, 7, 7, 5]
    assert {page["totalCount"] for page in pages} == {TALKS}


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize("order", ["CREATED_AT_DESC", "ID_ASC"])
async def test_end_cursor_is_the_cursor_of_the_last_edge(
    client: httpx.AsyncClient, order: str
) -> None:
    for page in await walk(client, PAGE, ["talks"], 7, order=order):
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]


@pytest.mark.usefixtures("many")
async def test_talks_are_newest_first_by_default(client: httpx.AsyncClient) -> None:
    body = await gql(client, "{ talks(first: 100) { edges { node { id: databaseId } } } }")
    assert node_ids(body["data"]["talks"]) == expected("CREATED_AT_DESC")


@pytest.mark.usefixtures("many")
async def test_twenty_talks_make_a_page_by_default(client: httpx.AsyncClient) -> None:
    body = await gql(
        client, "{ talks { pageInfo { hasNextPage } edges { node { id: databaseId } } } }"
    )
    talks = body["data"]["talks"]
    assert node_ids(talks) == expected("CREATED_AT_DESC")[:20]
    assert talks["pageInfo"]["hasNextPage"] is True


@pytest.mark.usefixtures("many")
async def test_a_page_that_reaches_the_last_talk_exactly_has_no_next_page(
    client: httpx.AsyncClient,
) -> None:
    body = await gql(client, "{ talks(first: 40) { pageInfo { hasNextPage } edges { cursor } } }")
    talks = body["data"]["talks"]
    assert len(talks["edges"]) == TALKS
    assert talks["pageInfo"]["hasNextPage"] is False


@pytest.mark.usefixtures("many")
async def test_a_newer_talk_arriving_between_pages_shifts_nothing_on_later_pages(
    client: httpx.AsyncClient,
) -> None:
    variables = {"first": 7, "after": None, "order": "CREATED_AT_DESC"}
    first_page = (await gql(client, PAGE, variables))["data"]["talks"]
    await push(client, talk_of(FIRST_ID + 999, created_at="2026-01-01T00:00:00Z"))
    after = first_page["pageInfo"]["endCursor"]
    second_page = (await gql(client, PAGE, {**variables, "after": after}))["data"]["talks"]
    assert node_ids(second_page) == expected("CREATED_AT_DESC")[7:14]
    assert second_page["totalCount"] == TALKS + 1


@pytest.mark.usefixtures("many")
async def test_first_zero_gives_no_edges_but_the_total_and_a_next_page(
    client: httpx.AsyncClient,
) -> None:
    body = await gql(
        client,
        "{ talks(first: 0) { totalCount pageInfo { hasNextPage endCursor } edges { cursor } } }",
    )
    assert body["data"]["talks"] == {
        "totalCount": TALKS,
        "pageInfo": {"hasNextPage": True, "endCursor": None},
        "edges": [],
    }


@pytest.mark.usefixtures("many")
async def test_first_one_hundred_is_allowed(client: httpx.AsyncClient) -> None:
    body = await gql(client, "{ talks(first: 100) { edges { cursor } } }")
    assert "errors" not in body
    assert len(body["data"]["talks"]["edges"]) == TALKS


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize("first", [101, -1])
async def test_first_out_of_range_fails_that_field_only(
    client: httpx.AsyncClient, first: int
) -> None:
    body = await gql(
        client,
        f'{{ talks(first: {first}) {{ totalCount }} talk(id: "{FIRST_ID}") {{ id: databaseId }}'
        " agents(first: 1) { totalCount } }",
    )
    assert body["data"] == {
        "talks": None,
        "talk": {"id": str(FIRST_ID)},
        "agents": {"totalCount": 4},  # 31, 32 and 33 in charge, PipeBot (2) writing
    }
    error = error_at(body, "talks")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"].get("argument") == "first"
    assert codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize(
    "cursor",
    ["garbage", "", "WyJ0YWxrOklEX0FTQyJd", "bnVsbA", "WyJ0YWxrOklEX0FTQyIsImEiXQ"],
    ids=["not-base64-json", "empty", "no-key", "json-null", "key-not-an-integer"],
)
async def test_a_cursor_talkgate_did_not_issue_is_bad_user_input(
    client: httpx.AsyncClient, cursor: str
) -> None:
    body = await gql(client, PAGE, {"first": 7, "after": cursor, "order": "ID_ASC"})
    assert body["data"] == {"talks": None}
    assert error_at(body, "talks")["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize(
    ("issued_by", "used_with"),
    [
        ("ID_ASC", "CREATED_AT_DESC"),
        ("CREATED_AT_DESC", "ID_DESC"),
        ("CREATED_AT_ASC", "CREATED_AT_DESC"),
        ("ID_DESC", "ID_ASC"),
    ],
)
async def test_a_cursor_of_another_ordering_is_bad_user_input(
    client: httpx.AsyncClient, issued_by: str, used_with: str
) -> None:
    page = (await gql(client, PAGE, {"first": 7, "order": issued_by}))["data"]["talks"]
    cursor = page["pageInfo"]["endCursor"]
    body = await gql(client, PAGE, {"first": 7, "after": cursor, "order": used_with})
    assert body["data"] == {"talks": None}
    assert error_at(body, "talks")["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.usefixtures("many")
async def test_a_message_cursor_is_not_a_talk_cursor(client: httpx.AsyncClient) -> None:
    body = await gql(
        client,
        f'{{ talk(id: "{FIRST_ID}") {{ histories(first: 1) {{ pageInfo {{ endCursor }} }} }} }}',
    )
    cursor = body["data"]["talk"]["histories"]["pageInfo"]["endCursor"]
    body = await gql(client, PAGE, {"first": 7, "after": cursor, "order": "ID_ASC"})
    assert error_at(body, "talks")["extensions"]["code"] == "BAD_USER_INPUT"


# -- nested connections ---------------------------------------------------------------------

HISTORIES = """
query ($id: ID, $first: Int!, $after: String) {
  talk(id: $id) {
    histories(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id: databaseId message } }
    }
  }
}
"""


async def test_a_talks_messages_page_one_at_a_time_oldest_first(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7, messages=["um", "dois", "três", "quatro"]))
    pages = await walk(client, HISTORIES, ["talk", "histories"], 1, id="7")
    assert [[e["node"]["message"] for e in page["edges"]] for page in pages] == [
        ["um"],
        ["dois"],
        ["três"],
        ["quatro"],
    ]
    assert {page["totalCount"] for page in pages} == {4}


async def test_messages_after_the_last_cursor_are_an_empty_last_page(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7, messages=["um", "dois"]))
    first = (await gql(client, HISTORIES, {"id": "7", "first": 2}))["data"]["talk"]["histories"]
    assert first["pageInfo"]["hasNextPage"] is False
    after = first["pageInfo"]["endCursor"]
    body = await gql(client, HISTORIES, {"id": "7", "first": 2, "after": after})
    histories = body["data"]["talk"]["histories"]
    assert histories["edges"] == []
    assert histories["pageInfo"] == {"hasNextPage": False, "endCursor": None}


async def test_a_talk_cursor_is_not_a_message_cursor(client: httpx.AsyncClient) -> None:
    await push(client, talk_of(7, messages=["um", "dois"]))
    talks = await gql(client, "{ talks(first: 1) { pageInfo { endCursor } } }")
    cursor = talks["data"]["talks"]["pageInfo"]["endCursor"]
    body = await gql(client, HISTORIES, {"id": "7", "first": 1, "after": cursor})
    assert error_at(body, "talk", "histories")["extensions"]["code"] == "BAD_USER_INPUT"


async def test_histories_first_over_one_hundred_is_bad_user_input(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7))
    body = await gql(client, HISTORIES, {"id": "7", "first": 101})
    assert error_at(body, "talk", "histories")["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.usefixtures("many")
async def test_a_customers_talks_page_newest_first(client: httpx.AsyncClient) -> None:
    customer_id = customer_of(0)
    query = """
    query ($id: ID!, $first: Int!, $after: String) {
      customer(id: $id) {
        talks(first: $first, after: $after) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id: databaseId customerId } }
        }
      }
    }
    """
    pages = await walk(client, query, ["customer", "talks"], 2, id=str(customer_id))
    mine = range(0, TALKS, len(CUSTOMERS))  # talks 0, 3, 6, ...
    assert [talk_id for page in pages for talk_id in node_ids(page)] == expected(
        "CREATED_AT_DESC", mine
    )
    assert {page["totalCount"] for page in pages} == {len(mine)}
    assert all(len(page["edges"]) <= 2 for page in pages)


@pytest.mark.usefixtures("many")
async def test_each_customer_in_a_list_gets_its_own_page_of_talks(
    client: httpx.AsyncClient,
) -> None:
    body = await gql(
        client,
        "{ customers { edges { node { id: databaseId talks(first: 2) {"
        " totalCount pageInfo { hasNextPage } edges { node { id: databaseId } } } } } } }",
    )
    for n, (customer_id, edge) in enumerate(
        zip(CUSTOMERS, body["data"]["customers"]["edges"], strict=True)
    ):
        assert edge["node"]["id"] == str(customer_id)
        mine = range(n, TALKS, len(CUSTOMERS))
        assert edge["node"]["talks"] == {
            "totalCount": len(mine),
            "pageInfo": {"hasNextPage": True},
            "edges": [{"node": {"id": i}} for i in expected("CREATED_AT_DESC", mine)[:2]],
        }


@pytest.mark.usefixtures("many")
async def test_an_agents_talks_page_newest_first(client: httpx.AsyncClient) -> None:
    query = """
    query ($id: ID, $first: Int!, $after: String) {
      agent(id: $id) {
        talks(first: $first, after: $after) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id: databaseId agentId } }
        }
      }
    }
    """
    pages = await walk(client, query, ["agent", "talks"], 4, id="32")
    mine = range(1, TALKS, len(AGENTS))  # agent 32 has talks 1, 4, 7, ...
    assert [talk_id for page in pages for talk_id in node_ids(page)] == expected(
        "CREATED_AT_DESC", mine
    )
    assert {e["node"]["agentId"] for page in pages for e in page["edges"]} == {"32"}
    assert {page["totalCount"] for page in pages} == {len(mine)}


# -- customers and agents -------------------------------------------------------------------

CUSTOMERS_PAGE = """
query ($search: String, $first: Int!, $after: String) {
  customers(search: $search, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id: databaseId name } }
  }
}
"""


@pytest.mark.usefixtures("many")
async def test_customers_page_by_id(client: httpx.AsyncClient) -> None:
    pages = await walk(client, CUSTOMERS_PAGE, ["customers"], 1)
    assert [node_ids(page) for page in pages] == [[str(i)] for i in sorted(CUSTOMERS)]
    assert {page["totalCount"] for page in pages} == {len(CUSTOMERS)}


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize(
    ("search", "names"),
    [
        ("maria", ["MARIA SILVA", "Mariana Souza"]),
        ("SOUZA", ["Mariana Souza"]),
        ("ana", ["ANA COSTA", "Mariana Souza"]),
        ("nobody", []),
        ("95238935", ["ANA COSTA", "MARIA SILVA", "Mariana Souza"]),  # the exact external id
        ("9523893", []),  # part of an external id is not a match
    ],
)
async def test_customers_search_matches_part_of_the_name_or_the_exact_external_id(
    client: httpx.AsyncClient, search: str, names: list[str]
) -> None:
    body = await gql(client, CUSTOMERS_PAGE, {"search": search, "first": 10})
    customers = body["data"]["customers"]
    assert [e["node"]["name"] for e in customers["edges"]] == names
    assert customers["totalCount"] == len(names)


@pytest.mark.usefixtures("many")
async def test_searched_customers_page_with_the_search_kept(client: httpx.AsyncClient) -> None:
    pages = await walk(client, CUSTOMERS_PAGE, ["customers"], 1, search="maria")
    assert [[e["node"]["name"] for e in page["edges"]] for page in pages] == [
        ["MARIA SILVA"],
        ["Mariana Souza"],
    ]
    assert {page["totalCount"] for page in pages} == {2}


@pytest.mark.usefixtures("many")
async def test_agents_page_by_id(client: httpx.AsyncClient) -> None:
    query = """
    query ($first: Int!, $after: String) {
      agents(first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id: databaseId name } }
      }
    }
    """
    pages = await walk(client, query, ["agents"], 3)
    assert [node_ids(page) for page in pages] == [["2", "31", "32"], ["33"]]
    assert {page["totalCount"] for page in pages} == {4}
    assert pages[0]["edges"][0]["node"] == {"id": "2", "name": "PipeBot"}


@pytest.mark.usefixtures("many")
async def test_a_customer_cursor_is_not_an_agent_cursor(client: httpx.AsyncClient) -> None:
    body = await gql(client, CUSTOMERS_PAGE, {"first": 1})
    cursor = body["data"]["customers"]["pageInfo"]["endCursor"]
    body = await gql(
        client,
        "query ($after: String) { agents(after: $after) { totalCount } }",
        {"after": cursor},
    )
    assert error_at(body, "agents")["extensions"]["code"] == "BAD_USER_INPUT"


# -- arguments given as variables -----------------------------------------------------------


@pytest.mark.usefixtures("many")
@pytest.mark.parametrize(
    "variables",
    [{"first": "abc", "order": "ID_ASC"}, {"order": "ID_ASC"}, {"first": 7, "order": "NEWEST"}],
    ids=["first-not-an-int", "first-missing", "unknown-order"],
)
async def test_a_page_variable_of_the_wrong_type_is_bad_user_input(
    client: httpx.AsyncClient, variables: dict[str, Any]
) -> None:
    body = await gql(client, PAGE, variables)
    assert body.get("data") is None
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] != "Internal server error"


@pytest.mark.parametrize(
    "search",
    ["JOÃO", "joão", "João Pereira", "pereira"],
    ids=["upper", "lower-accented", "mixed-accented", "lower-ascii"],
)
async def test_customers_search_ignores_the_case_of_accented_letters_too(
    client: httpx.AsyncClient, search: str
) -> None:
    await push(client, talk_of(7, customer_id=920_001, customer_name="JOÃO PEREIRA"))
    await push(client, talk_of(8, customer_id=920_002, customer_name="Ana Conceição"))
    body = await gql(client, CUSTOMERS_PAGE, {"search": search, "first": 10})
    assert [e["node"]["name"] for e in body["data"]["customers"]["edges"]] == ["JOÃO PEREIRA"]


# -- the look-ahead of a connection's selection (resolvers.pagination.selects) --------------

LOOKED: list[bool] = []


@strawberry.type
class _Customer:
    id: int = 1


@strawberry.type
class _Node:
    customer: _Customer = strawberry.field(default_factory=_Customer)
    id: int = 1


@strawberry.type
class _Edge:
    node: _Node = strawberry.field(default_factory=_Node)


@strawberry.type
class _Page:
    edges: list[_Edge] = strawberry.field(default_factory=lambda: [_Edge()])


@strawberry.type
class _Query:
    @strawberry.field
    def page(self, info: strawberry.Info) -> _Page:
        LOOKED.append(selects(info, "edges", "node", "customer"))
        return _Page()


_LOOK_AHEAD = strawberry.Schema(query=_Query)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{ page { edges { node { customer { id } } } } }", True),
        ("{ page { edges { node { id } } } }", False),
        ("{ page { edges { node { c: customer { id } } } } }", True),  # an alias
        ("{ page { edges { ... on Edge { node { customer { id } } } } } }", True),
        (
            "{ page { ...P } } fragment P on Page { edges { node { ...N } } }"
            " fragment N on Node { customer { id } }",
            True,
        ),
        ("{ page { ...P } } fragment P on Page { edges { node { id } } }", False),
        ("{ page { edges { node { customer @skip(if: true) { id } } } } }", True),
        (
            "{ a: page { edges { node { id } } } b: page { edges { node { customer { id } } } } }",
            None,
        ),
    ],
)
async def test_a_connection_sees_whether_its_nodes_customers_are_selected(
    document: str, expected: bool | None
) -> None:
    LOOKED.clear()
    result = await _LOOK_AHEAD.execute(document)
    assert result.errors is None
    if expected is None:  # each aliased field looks at its own selection
        assert LOOKED == [False, True]
    else:
        assert [expected] == LOOKED


def test_the_look_ahead_is_worked_out_once_for_the_nodes_of_a_parsed_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "{ a: page { edges { node { id } } } b: page { edges { node { customer { id } } } } }"
    walked: list[tuple[str, ...]] = []
    walk = pagination._selects

    def counted(raw: GraphQLResolveInfo[Any], path: tuple[str, ...]) -> bool:
        walked.append(path)
        return walk(raw, path)

    monkeypatch.setattr(pagination, "_selects", counted)
    document = parse(text)  # as the parse cache hands the same document out again
    for _ in range(3):
        LOOKED.clear()
        result = execute_sync(_LOOK_AHEAD._schema, document)
        assert result.errors is None
        assert LOOKED == [False, True]  # each aliased field keeps its own answer
    assert len(walked) == 2

    LOOKED.clear()
    assert execute_sync(_LOOK_AHEAD._schema, parse(text)).errors is None  # other nodes
    assert LOOKED == [False, True]
    assert len(walked) == 4
