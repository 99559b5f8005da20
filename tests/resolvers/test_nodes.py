"""Relay's Node: global ids on every entity, `node(id:)` and `nodes(ids:)`, and id arguments
that take either a global id or PipeRun's numeric `databaseId`."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demo import example_talk
from gateway.errors import BadUserInput
from schema.node import NODE_TYPES, database_id, decode, encode
from tests.resolvers.helpers import codes, error_at
from tests.support import ALL_KEY, NO_SCOPE_KEY, gql, push

TALK_ID = 114603
MESSAGE_ID = 2077775  # the example's first message; its event is given the same id below
CUSTOMER_ID = 144527


def raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.fixture
async def example(client: httpx.AsyncClient) -> dict[str, Any]:
    """The documented example talk, its tabulation record sharing its first message's id (as
    46 of the demo's do): a store keyed by `id` alone would mix them up."""
    payload = example_talk()
    payload["talk_events"][0]["id"] = MESSAGE_ID
    response = await push(client, payload)
    assert response.status_code == 202, response.text
    return payload


EVERY_NODE = """
query { talk(id: "114603") {
  id databaseId
  customer { id databaseId }
  agent { id databaseId }
  channel { id databaseId }
  histories(first: 1) { edges { node { id databaseId } } }
  events { id databaseId }
} }
"""


async def every_node(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """Each Node type's object of the example talk: {type: {"id", "databaseId"}}."""
    body = await gql(client, EVERY_NODE)
    assert "errors" not in body, body
    talk = body["data"]["talk"]
    return {
        "Talk": {"id": talk["id"], "databaseId": talk["databaseId"]},
        "Customer": talk["customer"],
        "Agent": talk["agent"],
        "Channel": talk["channel"],
        "TalkHistory": talk["histories"]["edges"][0]["node"],
        "TalkEvent": talk["events"][0],
    }


@pytest.mark.usefixtures("example")
async def test_every_node_type_answers_an_opaque_global_id_and_its_database_id(
    client: httpx.AsyncClient,
) -> None:
    found = await every_node(client)
    assert set(found) == NODE_TYPES
    for type_name, ids in found.items():
        assert ids["id"] == encode(type_name, ids["databaseId"])
        assert re.fullmatch(r"[A-Za-z0-9_-]+", ids["id"])  # URL-safe as it is
        assert ids["databaseId"] not in ids["id"]  # opaque: not the number itself
    assert found["Talk"]["databaseId"] == str(TALK_ID)
    assert found["Customer"]["databaseId"] == str(CUSTOMER_ID)


@pytest.mark.usefixtures("example")
async def test_a_message_and_an_event_sharing_a_database_id_have_different_global_ids(
    client: httpx.AsyncClient,
) -> None:
    found = await every_node(client)
    assert found["TalkHistory"]["databaseId"] == found["TalkEvent"]["databaseId"]
    assert found["TalkHistory"]["id"] != found["TalkEvent"]["id"]


@pytest.mark.usefixtures("example")
async def test_node_gives_back_each_object_by_its_global_id_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    for type_name, ids in (await every_node(client)).items():
        body = await gql(
            client, "query($id: ID!) { node(id: $id) { __typename id } }", {"id": ids["id"]}
        )
        assert body == {"data": {"node": {"__typename": type_name, "id": ids["id"]}}}


@pytest.mark.usefixtures("example")
async def test_node_reads_a_types_own_fields_through_a_fragment(
    client: httpx.AsyncClient,
) -> None:
    body = await gql(
        client,
        "query($id: ID!) { node(id: $id) { ... on TalkHistory { databaseId message talkId } } }",
        {"id": encode("TalkHistory", MESSAGE_ID)},
    )
    assert body == {
        "data": {
            "node": {"databaseId": str(MESSAGE_ID), "message": "Teste Jonas", "talkId": "114603"}
        }
    }


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize("type_name", sorted(NODE_TYPES))
async def test_a_well_formed_id_of_nothing_is_null_without_error(
    client: httpx.AsyncClient, type_name: str
) -> None:
    body = await gql(
        client, "query($id: ID!) { node(id: $id) { id } }", {"id": encode(type_name, 999_999_999)}
    )
    assert body == {"data": {"node": None}}


# Ids talkgate never hands out: each is refused, and its text never comes back.
FOREIGN = {
    "a numeric id": "114603",
    "not base64": "not an id!",
    "empty": "",
    "no type": raw("114603"),
    "a type that is no Node": raw("Bot:1"),
    "an unknown type": raw("Hunter2:1"),
    "leading zeros": raw("Talk:0114603"),
    "a space": raw("Talk: 114603"),
    "not a number": raw("Talk:abc"),
    "padded": encode("Talk", TALK_ID) + "=",
    "standard base64": base64.b64encode(b"Talk:114603>?").decode(),
    "out of range": raw(f"Talk:{2**63}"),
    "too long": encode("Talk", TALK_ID) * 3,
}


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize("value", list(FOREIGN.values()), ids=list(FOREIGN))
async def test_a_malformed_or_foreign_id_is_bad_user_input_never_quoted(
    client: httpx.AsyncClient, value: str
) -> None:
    asked: list[tuple[str, str, dict[str, Any]]] = [
        ("node", "query($id: ID!) { node(id: $id) { id } }", {"id": value}),
        ("nodes", "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [value]}),
    ]
    for field, query, variables in asked:
        body = await gql(client, query, variables)
        assert codes(body) == ["BAD_USER_INPUT"], body
        assert body["data"] == {field: None}
        if value:
            assert value not in str(body)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_decoding_accepts_exactly_the_ids_encoding_makes(value: str) -> None:
    if value in {encode(t, n) for t, n in [_spelled(value)] if t}:
        assert decode(value, "id") == _spelled(value)
    else:
        with pytest.raises(BadUserInput, match=r"^id is not a valid id$"):  # whatever the value
            decode(value, "id")


def _spelled(value: str) -> tuple[str, int]:
    """The type and number `value` would stand for, read naively ("", 0 for none)."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        type_name, _, digits = text.partition(":")
        return (type_name, int(digits)) if type_name in NODE_TYPES else ("", 0)
    except ValueError:
        return ("", 0)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.integers().map(str), st.from_regex(r"-?[0-9]{1,25}")))
def test_an_id_argument_is_a_number_a_global_id_of_its_type_or_bad_user_input(value: str) -> None:
    # Whatever the text: PipeRun's number, the type's global id, or BAD_USER_INPUT unquoted.
    refused: str | None = None
    try:
        number = database_id(value, "id", "Talk")
    except BadUserInput as error:
        refused = str(error)
    else:  # a number as PipeRun's ids always were (leading zeros and all), or the global id
        assert value == encode("Talk", number) or int(value) == number
    assert refused in {None, *REFUSALS}


# Every message an id argument is refused with: none quotes the value.
REFUSALS = {"id is not a valid id", "id is out of range", "id is not the id of a Talk"}


@given(st.sampled_from(sorted(NODE_TYPES)), st.integers(-(2**63), 2**63 - 1))
def test_every_global_id_decodes_to_its_type_and_database_id(type_name: str, number: int) -> None:
    assert decode(encode(type_name, number), "id") == (type_name, number)


@pytest.mark.usefixtures("example")
async def test_nodes_answers_in_order_with_null_where_absent(client: httpx.AsyncClient) -> None:
    ids = [
        encode("Customer", CUSTOMER_ID),
        encode("Talk", 1),
        encode("Talk", TALK_ID),
        encode("Customer", CUSTOMER_ID),
    ]
    body = await gql(client, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert body == {"data": {"nodes": [{"id": ids[0]}, None, {"id": ids[2]}, {"id": ids[3]}]}}


@pytest.mark.usefixtures("example")
async def test_nodes_takes_at_most_a_hundred_ids(client: httpx.AsyncClient) -> None:
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    hundred = [encode("Talk", TALK_ID)] * 100
    assert len((await gql(client, query, {"ids": hundred}))["data"]["nodes"]) == 100
    body = await gql(client, query, {"ids": [*hundred, hundred[0]]})
    assert body["data"] == {"nodes": None}
    assert codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.usefixtures("example")
async def test_node_and_nodes_need_talks_read(client: httpx.AsyncClient) -> None:
    talk = encode("Talk", TALK_ID)
    body = await gql(
        client,
        "query($id: ID!) { node(id: $id) { id } nodes(ids: [$id]) { id } }",
        {"id": talk},
        key=NO_SCOPE_KEY,
    )
    assert body["data"] == {"node": None, "nodes": None}
    assert codes(body) == ["FORBIDDEN", "FORBIDDEN"]


PII_THROUGH_NODE = """
query($talk: ID!, $customer: ID!, $message: ID!) {
  talk: node(id: $talk) { ... on Talk { clientIp customer { documentNumber } } }
  customer: node(id: $customer) { ... on Customer { name documentNumber telephones { number } } }
  message: node(id: $message) { ... on TalkHistory { message from } }
}
"""


@pytest.mark.usefixtures("example")
async def test_personal_fields_through_node_are_masked_without_customers_pii(
    client: httpx.AsyncClient,
) -> None:
    variables = {
        "talk": encode("Talk", TALK_ID),
        "customer": encode("Customer", CUSTOMER_ID),
        "message": encode("TalkHistory", MESSAGE_ID),
    }
    body = await gql(client, PII_THROUGH_NODE, variables)
    assert body["data"] == {
        "talk": {"clientIp": None, "customer": {"documentNumber": None}},
        "customer": {"name": "JONAS", "documentNumber": None, "telephones": None},
        "message": {"message": "Teste Jonas", "from": None},
    }
    masked = {tuple(e["path"]) for e in body["errors"]}
    assert masked == {
        ("talk", "clientIp"),
        ("talk", "customer", "documentNumber"),
        ("customer", "documentNumber"),
        ("customer", "telephones"),
        ("message", "from"),
    }
    assert set(codes(body)) == {"FORBIDDEN"}
    granted = await gql(client, PII_THROUGH_NODE, variables, key=ALL_KEY)
    assert "errors" not in granted
    assert granted["data"]["message"]["from"] == "51999998888"


# -- id arguments take either form ----------------------------------------------------------


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize(
    ("field", "type_name", "number"),
    [("talk", "Talk", TALK_ID), ("customer", "Customer", CUSTOMER_ID), ("agent", "Agent", 2)],
)
async def test_a_root_fields_id_is_its_global_id_or_its_database_id(
    client: httpx.AsyncClient, field: str, type_name: str, number: int
) -> None:
    query = f"query($id: ID!) {{ {field}(id: $id) {{ id databaseId }} }}"
    expected = {field: {"id": encode(type_name, number), "databaseId": str(number)}}
    for value in (str(number), encode(type_name, number)):
        assert await gql(client, query, {"id": value}) == {"data": expected}
    for malformed in ("--5", "5-", "", " 5", "x"):
        body = await gql(client, query, {"id": malformed})
        assert codes(body) == ["BAD_USER_INPUT"], malformed
    other = "Channel" if type_name != "Channel" else "Talk"
    body = await gql(client, query, {"id": encode(other, number)})
    assert body["data"] == {field: None}
    assert codes(body) == ["BAD_USER_INPUT"]
    assert error_at(body, field)["message"] == f"id is not the id of a {type_name}"


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize(
    ("argument", "type_name", "number"),
    [("customerId", "Customer", CUSTOMER_ID), ("agentId", "Agent", 2), ("channelId", "Channel", 1)],
)
async def test_a_filters_id_is_a_global_id_or_a_database_id(
    client: httpx.AsyncClient, argument: str, type_name: str, number: int
) -> None:
    query = f"query($id: ID!) {{ talks(filter: {{ {argument}: $id }}) {{ totalCount }} }}"
    for value in (str(number), encode(type_name, number)):
        assert await gql(client, query, {"id": value}) == {"data": {"talks": {"totalCount": 1}}}
    body = await gql(client, query, {"id": encode("Talk", number)})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert encode("Talk", number) not in str(body)
