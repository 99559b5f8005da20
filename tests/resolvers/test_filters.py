"""TalkFilter: every field narrows the list, fields combine, and totalCount follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.resolvers.helpers import error_at, node_ids, talk_of
from tests.support import ALL_KEY, gql, push


@dataclass(frozen=True)
class Row:
    """One talk of the seeded set: what the filters look at."""

    id: int
    customer: int = 1
    agent: int | None = 31
    queue: int | None = 17
    channel: int = 1
    protocol: str | None = None
    created: str = "2025-09-08T12:00:00Z"
    finished: bool = True
    waiting: bool = False
    success: bool = False
    critical: bool = False
    messages: tuple[str, ...] = field(default=("Olá",))

    def payload(self) -> dict[str, Any]:
        return talk_of(
            self.id,
            customer_id=self.customer,
            customer_name=f"Customer {self.customer}",
            messages=list(self.messages),
            agent_id=self.agent,
            queue_id=self.queue,
            channel_id=self.channel,
            external_protocol=self.protocol,
            created_at=self.created,
            finished_at="2025-09-08 18:00:00" if self.finished else None,
            is_waiting=self.waiting,
            was_success=self.success,
            is_critical=self.critical,
        )


ROWS = (
    Row(1, customer=1, agent=31, queue=17, channel=1, created="2025-09-01T09:00:00Z",
        success=True, messages=("Olá, preciso da segunda via", "do BOLETO de setembro")),
    Row(2, customer=1, agent=32, queue=18, channel=2, protocol="PRT-2",
        created="2025-09-02T09:00:00Z", finished=False, waiting=True,
        messages=("Minha internet está lenta",)),
    Row(3, customer=2, agent=31, queue=17, channel=1, protocol="PRT-3",
        created="2025-09-03T09:00:00Z", finished=False, critical=True,
        messages=("ATENÇÃO: a fatura veio errada", "boleto duplicado")),
    Row(4, customer=2, agent=None, queue=None, channel=3, created="2025-09-04T09:00:00Z",
        success=True, critical=True, messages=("Quero mudar meu plano",)),
    Row(5, customer=3, agent=33, queue=19, channel=1, protocol="PRT-5",
        created="2025-09-05 06:00:00",  # naive local time: 09:00 UTC
        finished=False, messages=("Atencao, sem sinal", "faturamento")),
    Row(6, customer=3, agent=31, queue=18, channel=2, created="2025-09-06T09:00:00Z",
        critical=True, messages=("Obrigado pelo atendimento!",)),
)  # fmt: skip

ALL = [r.id for r in ROWS]

QUERY = """
query ($filter: TalkFilter) {
  talks(filter: $filter, first: 100, orderBy: ID_ASC) {
    totalCount
    edges { node { id: databaseId } }
  }
}
"""


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> None:
    response = await push(client, [row.payload() for row in ROWS])
    assert response.status_code == 202, response.text


async def matching(client: httpx.AsyncClient, **conditions: Any) -> list[int]:
    """Ids of the talks the filter keeps; asserts that totalCount agrees with them."""
    body = await gql(client, QUERY, {"filter": conditions})
    assert "errors" not in body, body["errors"]
    talks = body["data"]["talks"]
    ids = [int(i) for i in node_ids(talks)]
    assert talks["totalCount"] == len(ids)
    return ids


async def filter_error(client: httpx.AsyncClient, **conditions: Any) -> dict[str, Any]:
    body = await gql(client, QUERY, {"filter": conditions})
    assert body.get("data") in (None, {"talks": None})
    errors: list[dict[str, Any]] = body["errors"]
    assert len(errors) == 1, errors
    return errors[0]


# -- one field at a time --------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_no_filter_and_an_empty_filter_keep_every_talk(client: httpx.AsyncClient) -> None:
    assert await matching(client) == ALL
    body = await gql(client, QUERY)
    assert node_ids(body["data"]["talks"]) == [str(i) for i in ALL]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("condition", "value", "ids"),
    [
        ("customerId", "1", [1, 2]),
        ("customerId", "3", [5, 6]),
        ("customerId", "99", []),
        ("agentId", "31", [1, 3, 6]),
        ("agentId", "33", [5]),
        ("queueId", "17", [1, 3]),
        ("queueId", "18", [2, 6]),
        ("channelId", "1", [1, 3, 5]),
        ("channelId", "3", [4]),
        ("trackingNumber", "TN4", [4]),
        ("trackingNumber", "TN", []),
        ("externalProtocol", "PRT-3", [3]),
        ("externalProtocol", "PRT", []),
    ],
)
async def test_an_id_or_number_filter_keeps_only_the_talks_that_equal_it(
    client: httpx.AsyncClient, condition: str, value: str, ids: list[int]
) -> None:
    assert await matching(client, **{condition: value}) == ids


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("status", "ids"), [("FINISHED", [1, 4, 6]), ("WAITING", [2]), ("IN_PROGRESS", [3, 5])]
)
async def test_status_keeps_the_talks_in_that_status(
    client: httpx.AsyncClient, status: str, ids: list[int]
) -> None:
    assert await matching(client, status=status) == ids


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("value", "ids"), [(True, [1, 4]), (False, [2, 3, 5, 6])])
async def test_was_success_keeps_the_talks_closed_with_or_without_success(
    client: httpx.AsyncClient, value: bool, ids: list[int]
) -> None:
    assert await matching(client, wasSuccess=value) == ids


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("value", "ids"), [(True, [3, 4, 6]), (False, [1, 2, 5])])
async def test_is_critical_keeps_the_critical_or_the_other_talks(
    client: httpx.AsyncClient, value: bool, ids: list[int]
) -> None:
    assert await matching(client, isCritical=value) == ids


# -- creation window ------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_created_from_is_inclusive(client: httpx.AsyncClient) -> None:
    assert await matching(client, createdFrom="2025-09-03T09:00:00Z") == [3, 4, 5, 6]


@pytest.mark.usefixtures("seeded")
async def test_created_to_is_exclusive(client: httpx.AsyncClient) -> None:
    assert await matching(client, createdTo="2025-09-03T09:00:00Z") == [1, 2]


@pytest.mark.usefixtures("seeded")
async def test_created_from_and_to_make_a_half_open_window(client: httpx.AsyncClient) -> None:
    window = {"createdFrom": "2025-09-02T09:00:00Z", "createdTo": "2025-09-05T09:00:00Z"}
    assert await matching(client, **window) == [2, 3, 4]


@pytest.mark.usefixtures("seeded")
async def test_a_window_one_microsecond_wide_holds_the_talk_created_at_its_start(
    client: httpx.AsyncClient,
) -> None:
    window = {"createdFrom": "2025-09-04T09:00:00Z", "createdTo": "2025-09-04T09:00:00.000001Z"}
    assert await matching(client, **window) == [4]


@pytest.mark.usefixtures("seeded")
async def test_a_talk_sent_with_a_naive_local_time_is_windowed_by_its_utc_moment(
    client: httpx.AsyncClient,
) -> None:
    # Talk 5 was sent as "2025-09-05 06:00:00" in America/Sao_Paulo: 09:00 UTC.
    assert await matching(client, createdFrom="2025-09-05T09:00:00Z") == [5, 6]
    assert await matching(client, createdTo="2025-09-05T09:00:00Z") == [1, 2, 3, 4]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "moment", ["2025-09-03T06:00:00-03:00", "2025-09-03T09:00:00+00:00", "2025-09-03T09:00:00"]
)
async def test_a_window_bound_with_an_offset_or_none_is_the_same_moment(
    client: httpx.AsyncClient, moment: str
) -> None:
    assert await matching(client, createdFrom=moment) == [3, 4, 5, 6]
    assert await matching(client, createdTo=moment) == [1, 2]


@pytest.mark.usefixtures("seeded")
async def test_an_empty_window_keeps_nothing(client: httpx.AsyncClient) -> None:
    window = {"createdFrom": "2025-09-04T09:00:00Z", "createdTo": "2025-09-04T09:00:00Z"}
    assert await matching(client, **window) == []


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("moment", ["yesterday", "2025-13-01T00:00:00Z", "1725786000"])
async def test_a_window_bound_variable_that_is_not_iso_8601_is_bad_user_input(
    client: httpx.AsyncClient, moment: str
) -> None:
    error = await filter_error(client, createdFrom=moment)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ISO 8601" in error["message"]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("moment", ['"yesterday"', '"2025-13-01T00:00:00Z"', "1725786000"])
async def test_a_window_bound_literal_that_is_not_iso_8601_is_bad_user_input(
    client: httpx.AsyncClient, moment: str
) -> None:
    body = await gql(client, f"{{ talks(filter: {{createdTo: {moment}}}) {{ totalCount }} }}")
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


# -- words in messages ----------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("boleto", [1, 3]),
        ("BOLETO", [1, 3]),
        ("Boleto", [1, 3]),
        ("internet", [2]),
        ("plano", [4]),
    ],
)
async def test_text_finds_a_word_whatever_its_case(
    client: httpx.AsyncClient, text: str, ids: list[int]
) -> None:
    assert await matching(client, text=text) == ids


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("text", "ids"),
    [("atenção", [3, 5]), ("atencao", [3, 5]), ("ATENCAO", [3, 5]), ("está", [2]), ("esta", [2])],
)
async def test_text_ignores_accents_on_both_sides(
    client: httpx.AsyncClient, text: str, ids: list[int]
) -> None:
    assert await matching(client, text=text) == ids


@pytest.mark.usefixtures("seeded")
async def test_text_needs_every_word_even_when_they_are_in_different_messages(
    client: httpx.AsyncClient,
) -> None:
    # Talk 1: "... segunda via" then "do BOLETO de setembro"; talk 3 has "boleto" only.
    assert await matching(client, text="via boleto") == [1]
    assert await matching(client, text="boleto fatura") == [3]
    assert await matching(client, text="boleto internet") == []


@pytest.mark.usefixtures("seeded")
async def test_text_word_order_and_punctuation_do_not_matter(client: httpx.AsyncClient) -> None:
    assert await matching(client, text="setembro, via... BOLETO!") == [1]


@pytest.mark.usefixtures("seeded")
async def test_text_matches_whole_words_only(client: httpx.AsyncClient) -> None:
    assert await matching(client, text="fatura") == [3]  # not talk 5's "faturamento"
    assert await matching(client, text="bol") == []


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("text", ['"boleto', "boleto OR internet", "NOT boleto", "bol*", "a:b"])
async def test_text_is_words_not_a_search_language(client: httpx.AsyncClient, text: str) -> None:
    body = await gql(client, QUERY, {"filter": {"text": text}})
    assert body["data"]["talks"] is not None, body.get("errors")
    expected = {
        '"boleto': [1, 3],
        "boleto OR internet": [],
        "NOT boleto": [],
        "bol*": [],
        "a:b": [],
    }[text]
    assert [int(i) for i in node_ids(body["data"]["talks"])] == expected


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("text", ["", "   ", "!!! ?"])
async def test_a_text_without_any_word_is_bad_user_input(
    client: httpx.AsyncClient, text: str
) -> None:
    body = await gql(client, QUERY, {"filter": {"text": text}})
    assert body["data"] == {"talks": None}
    assert error_at(body, "talks")["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" ".join(["boleto"] * 33), "the text filter holds more than 32 words"),
        (" ".join(f"w{i}" for i in range(5000)), "the text filter is longer than 1000 characters"),
        ("boleto " + "x" * 1000, "the text filter is longer than 1000 characters"),
    ],
    ids=["33-words", "5000-words", "1008-chars"],
)
async def test_a_text_past_its_bounds_is_bad_user_input_not_an_outage(
    client: httpx.AsyncClient, text: str, message: str
) -> None:
    # Thousands of words were as many conditions: SQLite's "expression tree too large",
    # reported as SERVICE_UNAVAILABLE (a client retrying what cannot work).
    body = await gql(client, QUERY, {"filter": {"text": text}})
    assert body["data"] == {"talks": None}
    error = error_at(body, "talks")
    assert (error["extensions"]["code"], error["message"]) == ("BAD_USER_INPUT", message)


@pytest.mark.usefixtures("seeded")
async def test_a_text_at_its_bounds_is_searched(client: httpx.AsyncClient) -> None:
    assert await matching(client, text=" ".join(["boleto"] * 32)) == [1, 3]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("size", [1001, 60_000])
async def test_a_customer_search_past_1000_characters_is_bad_user_input(
    client: httpx.AsyncClient, size: int
) -> None:
    # 60,000 characters were past SQLite's LIKE pattern limit: SERVICE_UNAVAILABLE.
    body = await gql(
        client,
        "query($s: String) { customers(search: $s) { totalCount } }",
        {"s": "a" * size},
        key=ALL_KEY,
    )
    error = error_at(body, "customers")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "the search is longer than 1000 characters"


async def test_text_finds_words_of_messages_that_arrived_in_a_later_delivery(
    client: httpx.AsyncClient,
) -> None:
    first = talk_of(7, messages=["primeira mensagem"], finished_at=None)
    later = talk_of(7, messages=["primeira mensagem", "cancelamento urgente"], finished_at=None)
    await push(client, first)
    await push(client, later)
    assert await matching(client, text="cancelamento primeira") == [7]


# -- combinations ---------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("conditions", "ids"),
    [
        ({"customerId": "1", "status": "WAITING"}, [2]),
        ({"customerId": "2", "isCritical": True}, [3, 4]),
        ({"customerId": "2", "isCritical": True, "wasSuccess": True}, [4]),
        ({"agentId": "31", "channelId": "1"}, [1, 3]),
        ({"agentId": "31", "queueId": "18", "isCritical": True}, [6]),
        ({"agentId": "31", "text": "boleto"}, [1, 3]),
        ({"customerId": "2", "text": "boleto"}, [3]),
        ({"status": "IN_PROGRESS", "text": "atencao"}, [3, 5]),
        ({"isCritical": True, "createdFrom": "2025-09-04T00:00:00Z"}, [4, 6]),
        (
            {
                "createdFrom": "2025-09-01T00:00:00Z",
                "createdTo": "2025-09-06T00:00:00Z",
                "channelId": "1",
                "status": "IN_PROGRESS",
            },
            [3, 5],
        ),
        ({"externalProtocol": "PRT-5", "customerId": "3", "agentId": "33"}, [5]),
        ({"externalProtocol": "PRT-5", "customerId": "1"}, []),
        ({"trackingNumber": "TN1", "wasSuccess": False}, []),
    ],
)
async def test_filter_fields_combine_with_and(
    client: httpx.AsyncClient, conditions: dict[str, Any], ids: list[int]
) -> None:
    assert await matching(client, **conditions) == ids


@pytest.mark.usefixtures("seeded")
async def test_a_filtered_list_pages_within_the_filter(client: httpx.AsyncClient) -> None:
    query = """
    query ($after: String) {
      talks(filter: {agentId: "31"}, first: 2, after: $after, orderBy: ID_ASC) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id: databaseId } }
      }
    }
    """
    first = (await gql(client, query))["data"]["talks"]
    after = first["pageInfo"]["endCursor"]
    second = (await gql(client, query, {"after": after}))["data"]["talks"]
    assert (node_ids(first), first["totalCount"], first["pageInfo"]["hasNextPage"]) == (
        ["1", "3"],
        3,
        True,
    )
    assert (node_ids(second), second["totalCount"], second["pageInfo"]["hasNextPage"]) == (
        ["6"],
        3,
        False,
    )


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "conditions",
    [{"status": "DONE"}, {"isCritical": "yes"}, {"customer": "1"}],
    ids=["unknown-status", "flag-not-a-boolean", "unknown-field"],
)
async def test_a_filter_variable_that_does_not_fit_talk_filter_is_bad_user_input(
    client: httpx.AsyncClient, conditions: dict[str, Any]
) -> None:
    error = await filter_error(client, **conditions)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] != "Internal server error"


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("condition", ["customerId", "agentId", "queueId", "channelId"])
async def test_an_id_filter_that_is_not_a_number_is_bad_user_input(
    client: httpx.AsyncClient, condition: str
) -> None:
    body = await gql(client, QUERY, {"filter": {condition: "abc"}})
    assert body["data"] == {"talks": None}
    error = error_at(body, "talks")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert condition in error["message"]
