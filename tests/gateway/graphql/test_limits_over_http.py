"""Query limits over HTTP: depth, aliases, tokens, cost, body size and batching.

Each limit is checked at its bound (answered) and one past it (refused with QUERY_TOO_COMPLEX,
its reason, the computed value and the limit), and a refused document reads nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from graphql import Lexer, Source, TokenKind
from starlette.applications import Starlette

from gateway.http.app import create_app
from tests.resolvers.helpers import Served, codes, serving, talk_of
from tests.support import READ_KEY, make_settings, push

BEARER = {"Authorization": f"Bearer {READ_KEY}"}
MIB = 1024 * 1024

COST_BOMB = """
{
  talks(first: 100) { edges { node {
    customer { talks(first: 100) { edges { node {
      histories(first: 100) { edges { node { id: databaseId } } }
    } } } }
  } } }
}"""
COST_BOMB_VALUE = 2_030_401


# -- documents of a known size --------------------------------------------------------------


def nested(levels: int) -> str:
    """A valid query `levels` deep: talks { edges { node { customer { talks ... } } } } + a leaf."""
    chain = ["talks(first: 1)", "edges", "node", "customer"]
    leaf_of = {"talks(first: 1)": "totalCount", "edges": "cursor", "node": "id", "customer": "id"}
    names = [chain[i % len(chain)] for i in range(levels - 1)]
    return "{ " + " { ".join(names) + " { " + leaf_of[names[-1]] + " }" * len(names) + " }"


def aliased(count: int, prefix: str = "a") -> str:
    """`count` aliased root fields, each a cheap talks count."""
    return " ".join(f"{prefix}{i}: talks(first: 0) {{ totalCount }}" for i in range(count))


def token_count(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


TALK_FIELDS = (
    "id customerId agentId queueId channelId priorityId finishedAt wasSuccess createdAt"
    " hasSchedule isCritical score ratingSurveyId startedAt isWaiting wasExpired deliveredAt"
    " isShopping isAds surveyId talkCategoryId talkServiceId initiationType trackingNumber"
    " status"
)
CHANNEL_FIELDS = (
    "id description iconClass priority primaryColor secondaryColor isActive incomingType"
    " enableEmoji enableAudio enableAttachment allowCampaign providerId unitaryPrice"
    " templatePrice outgoingType allowBot additionalPrice messagesAllowance"
)
HISTORY_FIELDS = (
    "id talkId userId queueId channelId hasAttachment attachmentTypeId sentAt deliveredAt"
    " readAt createdAt wasRead hasHighlight type leftAt hasError campaignId wasBlocked"
    " isTemplate fare templateId exceededAllowance isIntervention isForwarded"
    " isFrequentlyForwarded isAds sendAfter isRevertedTemplate status isHidden attachmentType"
)
# One aliased page of no talks selecting ~100 distinct fields: wide, but nothing merges.
BRANCH = (
    "talks(first: 0) { edges { node { " + TALK_FIELDS + " channel { " + CHANNEL_FIELDS + " }"
    " histories(first: 0) { edges { node { " + HISTORY_FIELDS + " } } } } } }"
)
SMALL_BRANCH = "talks(first: 0) { edges { node { " + TALK_FIELDS + " } } }"


def of_tokens(count: int) -> str:
    """A valid query of exactly `count` lexical tokens (punctuators and names), under the
    other limits: aliased BRANCHes (no field name repeated in a selection set), and bare
    `__typename` for the rest.
    """
    body: list[str] = []
    left = count - 2  # the outer braces
    for shape in (BRANCH, SMALL_BRANCH):
        size = token_count("{ b0: " + shape + " }") - 2
        while left >= size and len(body) < 29:
            body.append(f"b{len(body)}: {shape}")
            left -= size
    document = "{ " + " ".join([*body, *["__typename"] * left]) + " }"
    assert token_count(document) == count
    return document


def body_of_size(size: int, query: str = "{ talks { totalCount } }") -> bytes:
    """A JSON GraphQL request of exactly `size` bytes: `query` after a comment padding it."""
    empty = orjson.dumps({"query": "#\n" + query})
    padding = size - len(empty)
    assert padding >= 0
    body = orjson.dumps({"query": "#" + "x" * padding + "\n" + query})
    assert len(body) == size
    return body


# -- helpers --------------------------------------------------------------------------------


async def post(served: Served, document: str, variables: dict[str, Any] | None = None) -> Any:
    response = await served.client.post(
        "/graphql", json={"query": document, "variables": variables or {}}, headers=BEARER
    )
    assert response.status_code == 200, response.text
    return response.json()


def refusal(body: dict[str, Any]) -> dict[str, Any]:
    """The extensions of the one error of a refused document (which has no data)."""
    assert body.get("data") is None, body
    assert codes(body) == ["QUERY_TOO_COMPLEX"], body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


@asynccontextmanager
async def serve(tmp_path: Path, **overrides: Any) -> AsyncIterator[Served]:
    """An app with these settings, one talk stored, and a spy on the store's reads."""
    app = create_app(make_settings(tmp_path, **overrides))
    async with serving(app) as served:
        assert (await push(served.client, talk_of(7))).status_code == 202
        served.spy.reset()
        yield served


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[Served]:
    """The app with default limits, one talk stored, and a spy on the store's reads."""
    async with serving(app) as served:
        assert (await push(served.client, talk_of(7))).status_code == 202
        served.spy.reset()
        yield served


# -- depth ----------------------------------------------------------------------------------


async def test_a_query_twelve_deep_is_answered(served: Served) -> None:
    body = await post(served, nested(12))
    assert "errors" not in body, body
    assert body["data"]["talks"]["edges"][0]["node"]["customer"]["talks"] is not None


async def test_a_query_thirteen_deep_is_refused_before_anything_is_read(served: Served) -> None:
    body = await post(served, nested(13))
    assert refusal(body) == {
        "code": "QUERY_TOO_COMPLEX",
        "reason": "depth",
        "value": 13,
        "limit": 12,
    }
    assert served.spy.counts() == {}


# -- aliases --------------------------------------------------------------------------------


async def test_thirty_aliases_are_answered(served: Served) -> None:
    body = await post(served, "{ " + aliased(30) + " }")
    assert "errors" not in body, body
    assert body["data"]["a29"] == {"totalCount": 1}


async def test_thirty_one_aliases_are_refused_before_anything_is_read(served: Served) -> None:
    body = await post(served, "{ " + aliased(31) + " }")
    assert refusal(body) == {
        "code": "QUERY_TOO_COMPLEX",
        "reason": "aliases",
        "value": 31,
        "limit": 30,
    }
    assert served.spy.counts() == {}


async def test_thirty_aliases_from_a_fragment_spread_three_times_are_answered(
    served: Served,
) -> None:
    document = "{ ...Ten ...Ten ...Ten } fragment Ten on Query { " + aliased(10) + " }"
    body = await post(served, document)
    assert "errors" not in body, body


async def test_aliases_hidden_in_a_fragment_spread_four_times_are_counted(
    served: Served,
) -> None:
    document = "{ ...Eight ...Eight ...Eight ...Eight } fragment Eight on Query { "
    document += aliased(8) + " }"
    body = await post(served, document)
    assert refusal(body)["reason"] == "aliases"
    assert refusal(body)["value"] == 32
    assert served.spy.counts() == {}


async def test_aliases_hidden_in_nested_fragments_are_counted_for_every_spread(
    served: Served,
) -> None:
    document = (
        "{ ...Outer ...Outer }"
        " fragment Outer on Query { ...Inner ...Inner ...Inner ...Inner }"
        f" fragment Inner on Query {{ {aliased(4)} }}"
    )
    body = await post(served, document)
    assert refusal(body)["reason"] == "aliases"
    assert refusal(body)["value"] == 2 * 4 * 4
    assert served.spy.counts() == {}


async def test_aliases_in_a_fragment_under_a_list_are_counted_for_every_spread(
    served: Served,
) -> None:
    aliases = " ".join(f"w{i}: trackingNumber" for i in range(10))
    document = (
        "{ talks { edges { node { ...Who } } } more: talks { edges { node { ...Who ...Who } } } }"
        f" fragment Who on Talk {{ {aliases} }}"
    )
    body = await post(served, document)
    assert refusal(body)["value"] == 1 + 3 * 10


# -- tokens ---------------------------------------------------------------------------------


async def test_a_document_of_three_thousand_tokens_is_answered(served: Served) -> None:
    body = await post(served, of_tokens(3000))
    assert "errors" not in body, body
    assert body["data"]["b0"] == {"edges": []}


async def test_a_document_of_three_thousand_and_one_tokens_is_too_complex(
    served: Served,
) -> None:
    body = await post(served, of_tokens(3001))
    extensions = refusal(body)
    assert extensions["reason"] == "tokens"
    assert extensions["limit"] == 3000
    assert extensions["value"] > 3000


# -- cost -----------------------------------------------------------------------------------


async def test_the_cost_bomb_is_refused_with_its_cost_before_anything_is_read(
    served: Served,
) -> None:
    body = await post(served, COST_BOMB)
    assert refusal(body) == {
        "code": "QUERY_TOO_COMPLEX",
        "reason": "cost",
        "value": COST_BOMB_VALUE,
        "limit": 10_000,
    }
    assert "2030401" in body["errors"][0]["message"]
    assert served.spy.counts() == {}


BOMB_BY_VARIABLES = """
query Bomb($a: Int!, $b: Int!, $c: Int!) {
  talks(first: $a) { edges { node {
    customer { talks(first: $b) { edges { node {
      histories(first: $c) { edges { node { id: databaseId } } }
    } } } }
  } } }
}"""


async def test_the_cost_bomb_with_first_from_variables_is_refused_with_its_cost(
    served: Served,
) -> None:
    body = await post(served, BOMB_BY_VARIABLES, {"a": 100, "b": 100, "c": 100})
    assert refusal(body)["reason"] == "cost"
    assert refusal(body)["value"] == COST_BOMB_VALUE
    assert served.spy.counts() == {}


async def test_the_same_document_is_measured_again_for_other_first_variables(
    served: Served,
) -> None:
    # The measures of a document are remembered, but only with the integers they depend on.
    small = await post(served, BOMB_BY_VARIABLES, {"a": 2, "b": 2, "c": 2})
    big = await post(served, BOMB_BY_VARIABLES, {"a": 100, "b": 100, "c": 100})
    small_again = await post(served, BOMB_BY_VARIABLES, {"a": 2, "b": 2, "c": 2})

    assert "errors" not in small
    assert "errors" not in small_again
    assert refusal(big)["value"] == COST_BOMB_VALUE


async def test_the_cost_bomb_with_first_from_variable_defaults_is_refused_with_its_cost(
    served: Served,
) -> None:
    document = BOMB_BY_VARIABLES.replace("Int!", "Int! = 100")
    body = await post(served, document)
    assert refusal(body)["reason"] == "cost"
    assert refusal(body)["value"] == COST_BOMB_VALUE


SEVEN = "{ talks(first: 3) { edges { node { id: databaseId } } } }"  # 1 + 3 * (edges 1 + node 1)


async def test_a_query_costing_exactly_the_configured_limit_is_answered(tmp_path: Path) -> None:
    async with serve(tmp_path, max_query_cost=7) as served:
        body = await post(served, SEVEN)
        assert body == {"data": {"talks": {"edges": [{"node": {"id": "7"}}]}}}


async def test_a_query_costing_one_over_the_configured_limit_is_refused_with_its_cost(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path, max_query_cost=6) as served:
        body = await post(served, SEVEN)
        assert refusal(body) == {
            "code": "QUERY_TOO_COMPLEX",
            "reason": "cost",
            "value": 7,
            "limit": 6,
        }
        assert served.spy.counts() == {}


# -- every limit is a setting ---------------------------------------------------------------

PAGE_OF_10 = "{ talks(first: 10) { edges { node { id: databaseId } } } }"  # 1 + 10 * 2 = 21
PAGE_OF_11 = "{ talks(first: 11) { edges { node { id: databaseId } } } }"  # 1 + 11 * 2 = 23
CONFIGURED = [
    ("max_query_depth", 4, "depth", nested(4), nested(5), 5),
    ("max_query_aliases", 2, "aliases", "{ " + aliased(2) + " }", "{ " + aliased(3) + " }", 3),
    ("max_query_cost", 21, "cost", PAGE_OF_10, PAGE_OF_11, 23),
]


@pytest.mark.parametrize(
    ("setting", "limit", "reason", "at_limit", "over_limit", "value"),
    CONFIGURED,
    ids=[c[0] for c in CONFIGURED],
)
async def test_a_configured_limit_lets_its_bound_through_and_refuses_past_it(
    tmp_path: Path,
    setting: str,
    limit: int,
    reason: str,
    at_limit: str,
    over_limit: str,
    value: int,
) -> None:
    async with serve(tmp_path, **{setting: limit}) as served:
        assert "errors" not in await post(served, at_limit)
        refused = refusal(await post(served, over_limit))
        assert (refused["reason"], refused["value"], refused["limit"]) == (reason, value, limit)


async def test_a_configured_token_limit_lets_its_bound_through_and_refuses_past_it(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path, max_query_tokens=20) as served:
        assert await post(served, of_tokens(20)) == {"data": {"__typename": "Query"}}
        refused = refusal(await post(served, of_tokens(21)))
        assert (refused["reason"], refused["limit"]) == ("tokens", 20)


async def test_a_raised_limit_lets_the_default_bound_through(tmp_path: Path) -> None:
    async with serve(tmp_path, max_query_depth=13, max_query_aliases=31) as served:
        assert "errors" not in await post(served, nested(13))
        assert "errors" not in await post(served, "{ " + aliased(31) + " }")


# -- request body ---------------------------------------------------------------------------


async def test_a_two_mib_body_is_413_bad_user_input_and_nothing_is_read(served: Served) -> None:
    response = await served.client.post(
        "/graphql",
        content=body_of_size(2 * MIB),
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert served.spy.counts() == {}


async def test_a_body_of_exactly_the_byte_limit_is_answered(served: Served) -> None:
    response = await served.client.post(
        "/graphql",
        content=body_of_size(MIB),
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"talks": {"totalCount": 1}}}


async def test_a_body_one_byte_over_the_limit_is_413(served: Served) -> None:
    response = await served.client.post(
        "/graphql",
        content=body_of_size(MIB + 1),
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert served.spy.counts() == {}


async def test_the_byte_limit_is_a_setting(tmp_path: Path) -> None:
    async with serve(tmp_path, graphql_max_bytes=200) as served:
        at_limit = await served.client.post(
            "/graphql",
            content=body_of_size(200),
            headers={**BEARER, "Content-Type": "application/json"},
        )
        over = await served.client.post(
            "/graphql",
            content=body_of_size(201),
            headers={**BEARER, "Content-Type": "application/json"},
        )
        assert (at_limit.status_code, over.status_code) == (200, 413)


# -- batching -------------------------------------------------------------------------------


async def test_a_batch_of_operations_is_refused_with_400_and_none_of_them_runs(
    served: Served,
) -> None:
    response = await served.client.post(
        "/graphql",
        json=[
            {"query": "{ talks { totalCount } }"},
            {"query": '{ talk(id: "7") { id: databaseId } }'},
        ],
        headers=BEARER,
    )
    assert response.status_code == 400
    assert "totalCount" not in response.text
    assert served.spy.counts() == {}


# -- fields ---------------------------------------------------------------------------------


def typenames(count: int, prefix: str = "") -> str:
    return " ".join(f"{prefix}{i}: __typename" if prefix else "__typename" for i in range(count))


async def test_a_selection_set_of_a_hundred_fields_is_answered(served: Served) -> None:
    body = await post(served, "{ " + typenames(100) + " }")
    assert body == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "document",
    [
        "{ " + typenames(101) + " }",
        '{ talk(id: "7") { ' + "customer { name } " * 101 + "} }",
        "{ " + "... on Query { __typename } " * 101 + "}",
        "{ " + "...F " * 51 + "} fragment F on Query { __typename talks { totalCount } }",
        # no selection set as written is wider than 11; merged `customer` is 121 wide
        '{ talk(id: "7") { ' + ("customer { " + "name " * 11 + "} ") * 11 + "} }",
    ],
    ids=["duplicates", "object-duplicates", "inline-fragments", "spreads", "cousins"],
)
async def test_a_selection_set_over_a_hundred_fields_is_refused_before_validation(
    served: Served, document: str
) -> None:
    extensions = refusal(await post(served, document))
    assert (extensions["reason"], extensions["limit"]) == ("fields", 100)
    assert extensions["value"] > 100
    assert served.spy.counts() == {}


async def test_the_fields_limit_is_a_setting(tmp_path: Path) -> None:
    async with serve(tmp_path, max_query_fields=5) as served:
        assert "errors" not in await post(served, "{ " + typenames(5) + " }")
        refused = refusal(await post(served, "{ " + typenames(6) + " }"))
        assert (refused["reason"], refused["value"], refused["limit"]) == ("fields", 6, 5)


async def test_typename_aliases_count_toward_the_alias_limit(served: Served) -> None:
    assert "errors" not in await post(served, "{ " + typenames(30, "t") + " }")
    refused = refusal(await post(served, "{ " + typenames(31, "t") + " }"))
    assert (refused["reason"], refused["value"]) == ("aliases", 31)


# -- the validation cache -------------------------------------------------------------------


async def test_comments_and_whitespace_do_not_defeat_the_validation_cache(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.graphql import parsing  # absent before the fix

    calls: list[object] = []
    real = parsing.validate

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(parsing, "validate", counted)
    base = '{ talk(id: "7") { id: databaseId customer { name } } }'
    for variant in [base, base + " # one", "# two\n" + base, base.replace(" ", "  \n ,")]:
        body = await post(served, variant)
        assert "errors" not in body, body
        assert body["data"]["talk"]["id"] == "7"
    assert len(calls) <= 1


async def test_a_cached_validation_error_is_reported_where_it_is_in_the_new_text(
    served: Served,
) -> None:
    document = '{ talk(id: "7") { databaseId nope } }'
    first = await post(served, document)
    again = await post(served, "# a comment\n\n   " + document)
    assert codes(first) == codes(again) == ["BAD_USER_INPUT"]
    assert first["errors"][0]["locations"] == [{"line": 1, "column": 30}]
    assert again["errors"][0]["locations"] == [{"line": 3, "column": 33}]
    assert again["errors"][0]["message"] == first["errors"][0]["message"]
