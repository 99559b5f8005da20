"""Reading talks: the documented example goes in by webhook and comes back whole over GraphQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.demo import example_talk
from tests.resolvers.helpers import codes, error_at, talk_of
from tests.support import ALL_KEY, gql, push

TRACKING = "20250908114603"

TALK_FIELDS = """
    id: databaseId customerId agentId queueId channelId priorityId finishedAt wasSuccess createdAt
    hasSchedule isCritical score ratingSurveyId startedAt latitude longitude
    initialSenderChannel isWaiting wasExpired deliveredAt lastWaitingMessageAt isShopping
    isAds scaledToId clientIp clientUserAgent surveyId talkCategoryId talkServiceId
    initiationType deliveredToId externalProtocol trackingNumber urlViewer status
"""

AGENT_FIELDS = "id: databaseId name login email isBot isActive levelId branchId languageId"

CHANNEL_FIELDS = """
    id: databaseId description iconClass priority primaryColor secondaryColor isActive incomingType
    enableEmoji enableAudio enableAttachment allowCampaign providerId unitaryPrice
    templatePrice outgoingType allowBot additionalPrice messagesAllowance
"""

HISTORY_FIELDS = f"""
    id: databaseId talkId userId queueId channelId message hasAttachment attachmentUrl
    attachmentTypeId
    sentAt deliveredAt readAt createdAt wasRead hasHighlight from type to externalId leftAt
    hasError campaignId wasBlocked isTemplate responseFrom fare errorReason templateId
    originalMessage subject exceededAllowance isIntervention isForwarded
    isFrequentlyForwarded isAds sendAfter isRevertedTemplate reaction customerReaction status
    isHidden fileName attachmentType
    user {{ {AGENT_FIELDS} }}
    channel {{ id: databaseId description }}
"""

CUSTOMER_FIELDS = """
    id: databaseId name externalId documentNumber wildcard01 wildcard02 wildcard03
    wildcard04 wildcard05
    wildcard06 wildcard07 wildcard08 wildcard09 wildcard10 createdAt mainSms mainWhatsapp
    mainEmail agentId queueId customerGroupId profilePictureUrl isPriority lastBaseApi
    customerOrganizationId crmvUserId crmvPersonId isActive cxmUserId
    profileInfo {
        id name username profilePic isVerifiedUser followerCount isUserFollowBusiness
        isBusinessFollowUser
    }
    customFields { name value }
    telephones {
        id customerId areaCode number type levelId hasSms hasWhatsapp hasWhatsappApi
        waIsBusiness waIsEnterprise waContactName waPushname waVerifiedLevel waVerifiedName
        waProfilePicture sessionExpiresAt insertOrigin insertedBy countryCode countryIso2
        fullNumber fullNumberCc
    }
    emails { id customerId email levelId insertOrigin insertedBy unsubscribedAt }
"""

WHOLE_TALK = f"""
    {TALK_FIELDS}
    customer {{ {CUSTOMER_FIELDS} talks {{ totalCount edges {{ node {{ id: databaseId }} }} }} }}
    agent {{ {AGENT_FIELDS} talks {{ totalCount edges {{ node {{ id: databaseId }} }} }} }}
    deliveredTo {{ id: databaseId }}
    scaledTo {{ id: databaseId }}
    channel {{ {CHANNEL_FIELDS} }}
    histories {{
        totalCount
        pageInfo {{ hasNextPage endCursor }}
        edges {{ cursor node {{ {HISTORY_FIELDS} }} }}
    }}
    events {{
        id: databaseId talkId eventId queueId isSuccess createdAt agentId channelId reactionType
        reactionTypeDescription
        event {{ id description externalId }}
        agent {{ id: databaseId name }}
    }}
    botVariables {{ varName value }}
    bot {{ id description }}
    serviceCatalog {{ id description externalId }}
"""

BY_ID = f"query ($id: ID) {{ talk(id: $id) {{ {WHOLE_TALK} }} }}"
BY_TRACKING = f"query ($tn: String) {{ talk(trackingNumber: $tn) {{ {WHOLE_TALK} }} }}"

PIPEBOT = {
    "id": "2",
    "name": "PipeBot",
    "login": "bot",
    "email": "",
    "isBot": True,
    "isActive": True,
    "levelId": 4,
    "branchId": 1,
    "languageId": 1,
}

WHATSAPP = {"id": "1", "description": "WhatsApp"}

URL_VIEWER = "https://crmpiperun.cxm.pipe.run/viewer/cFl5YXAyYnVnRkNjM2Y1L0d0QTczdz09"

TALK_SCALARS = {
    "id": "114603",
    "customerId": "144527",
    "agentId": "2",
    "queueId": "17",
    "channelId": "1",
    "priorityId": "2",
    "finishedAt": "2025-09-08T14:01:19Z",  # sent as naive local time 2025-09-08 11:01:19
    "wasSuccess": False,
    "createdAt": "2025-09-08T14:01:17Z",
    "hasSchedule": False,
    "isCritical": False,
    "score": None,
    "ratingSurveyId": None,
    "startedAt": None,
    "latitude": None,
    "longitude": None,
    "initialSenderChannel": "1",  # sent as the string "1"
    "isWaiting": False,
    "wasExpired": False,
    "deliveredAt": None,
    "lastWaitingMessageAt": None,
    "isShopping": False,
    "isAds": False,
    "scaledToId": None,
    "clientIp": None,
    "clientUserAgent": None,
    "surveyId": None,
    "talkCategoryId": None,
    "talkServiceId": None,
    "initiationType": "NORMAL",
    "deliveredToId": None,
    "externalProtocol": None,
    "trackingNumber": TRACKING,
    "urlViewer": URL_VIEWER,
    "status": "FINISHED",
}

MESSAGE_DEFAULTS: dict[str, Any] = {
    "talkId": "114603",
    "userId": "2",
    "queueId": "17",
    "channelId": "1",
    "hasAttachment": False,
    "attachmentUrl": None,
    "attachmentTypeId": None,
    "deliveredAt": None,
    "readAt": None,
    "wasRead": False,
    "hasHighlight": False,
    "from": None,
    "to": None,
    "externalId": None,
    "leftAt": None,
    "hasError": False,
    "campaignId": None,
    "wasBlocked": False,
    "isTemplate": False,
    "responseFrom": None,
    "fare": "0",
    "errorReason": None,
    "templateId": None,
    "originalMessage": None,
    "subject": None,
    "exceededAllowance": False,
    "isIntervention": False,
    "isForwarded": False,
    "isFrequentlyForwarded": False,
    "isAds": False,
    "sendAfter": None,
    "isRevertedTemplate": False,
    "reaction": None,
    "customerReaction": None,
    "status": 0,
    "isHidden": False,
    "fileName": "",
    "attachmentType": [],
    "user": PIPEBOT,
    "channel": WHATSAPP,
}

MESSAGES = [
    {
        **MESSAGE_DEFAULTS,
        "id": "2077775",
        "queueId": None,
        "message": "Teste Jonas",
        "sentAt": "2025-09-08T14:01:17Z",
        "createdAt": "2025-09-08T14:01:17Z",
        "from": "51999998888",
        "type": "IN",
        "to": "1",
        "externalId": (
            "wamid.HBgMNTU1MTk1OTg4OTg4FQIAEhggNEI5RDhFRDQ2MEFFMkE2MUJDQ0JCREI4OUQ3NDNDN0MA"
        ),
        "subject": "",
    },
    {
        **MESSAGE_DEFAULTS,
        "id": "2077776",
        "message": (
            "Fila inicial definida como [PipeRun -> Ambos -> Atendimento BOT] pela "
            "configuração do Bot."
        ),
        "sentAt": "2025-09-08T14:01:17Z",
        "createdAt": "2025-09-08T14:01:17Z",
        "type": "SYSTEM",
    },
    {
        **MESSAGE_DEFAULTS,
        "id": "2077777",
        "message": (
            "📣 Atenção! Nosso número de atendimento mudou. Agora você pode nos contatar "
            "pelo WhatsApp no link: 📲 https://bitly.run/WhatsPipeRun"
        ),
        # sent as `2025-09-08 11: 01: 18`, naive local time with stray spaces
        "sentAt": "2025-09-08T14:01:18Z",
        "readAt": "2025-09-08T14:01:20Z",
        "createdAt": "2025-09-08T14:01:18Z",
        "wasRead": True,
        "type": "OUT",
        "to": "555195988988",
        "externalId": "wamid.HBgMNTU1MTk1OTg4OTg4FQIAERgSQThDMUUxOTg0RUEzODg2QTY1AA==",
        "leftAt": "2025-09-08T14:01:18Z",
        "status": 3,
    },
]

CUSTOMER_SCALARS = {
    "id": "144527",
    "name": "JONAS",
    "externalId": "95238935",
    "documentNumber": "",
    **{f"wildcard{n:02d}": "" for n in range(1, 11)},
    "createdAt": "2023-09-21T12:28:45Z",
    "mainSms": 44290,
    "mainWhatsapp": 44290,
    "mainEmail": 25396,
    "agentId": None,
    "queueId": None,
    "customerGroupId": None,
    "profilePictureUrl": None,
    "isPriority": False,
    "lastBaseApi": None,
    "customerOrganizationId": "15662",
    "crmvUserId": "65886",
    "crmvPersonId": "9523893",
    "isActive": True,
    "cxmUserId": None,
}

TELEPHONE = {
    "id": "70994",
    "customerId": "144527",
    "areaCode": "51",
    "number": "999887766",
    "type": "m",
    "levelId": "N",
    "hasSms": False,
    "hasWhatsapp": False,
    "hasWhatsappApi": False,
    "waIsBusiness": False,
    "waIsEnterprise": False,
    "waContactName": None,
    "waPushname": None,
    "waVerifiedLevel": None,
    "waVerifiedName": None,
    "waProfilePicture": None,
    "sessionExpiresAt": None,
    "insertOrigin": "MAILING",
    "insertedBy": 127,
    "countryCode": "55",
    "countryIso2": "br",
    "fullNumber": "51999887766",
    "fullNumberCc": "+55 51999887766",
}

EMAIL = {
    "id": "49543",
    "customerId": "144527",
    "email": "[email protected]",
    "levelId": "N",
    "insertOrigin": "AUTO",
    "insertedBy": 2,
    "unsubscribedAt": None,
}

EVENT = {
    "id": "80991",
    "talkId": "114603",
    "eventId": "87",
    "queueId": "17",
    "isSuccess": False,
    "createdAt": "2025-09-08T14:01:19Z",
    "agentId": "2",
    "channelId": "1",
    "reactionType": "f",
    "reactionTypeDescription": "Finalizar",
    "event": {"id": "87", "description": "Finalizado pelo BOT", "externalId": "12"},
    "agent": {"id": "2", "name": "PipeBot"},
}


@pytest.fixture
async def example(client: httpx.AsyncClient) -> dict[str, Any]:
    """The documented example talk, posted to the webhook as PipeRun sends it."""
    payload = example_talk()
    response = await push(client, payload)
    assert response.status_code == 202, response.text
    return payload


async def whole_talk(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    body = await gql(client, query, variables, key=ALL_KEY)
    assert "errors" not in body, body["errors"]
    talk: dict[str, Any] = body["data"]["talk"]
    assert talk is not None
    return talk


# -- the talk itself ------------------------------------------------------------------------


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize(
    ("query", "variables"),
    [(BY_ID, {"id": "114603"}), (BY_TRACKING, {"tn": TRACKING})],
    ids=["by-id", "by-tracking-number"],
)
async def test_every_scalar_field_of_the_example_talk_comes_back_as_posted(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any]
) -> None:
    talk = await whole_talk(client, query, **variables)
    assert {k: talk[k] for k in TALK_SCALARS} == TALK_SCALARS


@pytest.mark.usefixtures("example")
async def test_a_talk_found_by_tracking_number_is_the_talk_found_by_id(
    client: httpx.AsyncClient,
) -> None:
    by_id = await whole_talk(client, BY_ID, id="114603")
    by_tracking = await whole_talk(client, BY_TRACKING, tn=TRACKING)
    assert by_tracking == by_id


@pytest.mark.usefixtures("example")
async def test_naive_local_datetimes_leave_as_utc_iso_8601(client: httpx.AsyncClient) -> None:
    body = await gql(
        client,
        "{ talk(id: 114603) { finishedAt histories { edges { node { id: databaseId sentAt"
        " leftAt } } } } }",
    )
    talk = body["data"]["talk"]
    assert talk["finishedAt"] == "2025-09-08T14:01:19Z"  # from "2025-09-08 11:01:19"
    third = talk["histories"]["edges"][2]["node"]
    assert third == {
        "id": "2077777",
        "sentAt": "2025-09-08T14:01:18Z",  # from "2025-09-08 11: 01: 18"
        "leftAt": "2025-09-08T14:01:18Z",
    }


@pytest.mark.usefixtures("example")
async def test_initiation_type_and_status_are_enums(client: httpx.AsyncClient) -> None:
    body = await gql(client, "{ talk(id: 114603) { initiationType status } }")
    assert body["data"]["talk"] == {"initiationType": "NORMAL", "status": "FINISHED"}


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"finished_at": None, "is_waiting": True}, "WAITING"),
        ({"finished_at": None, "is_waiting": False}, "IN_PROGRESS"),
        ({"finished_at": "2025-09-08 11:30:00", "is_waiting": True}, "FINISHED"),
    ],
)
async def test_status_is_derived_from_finished_at_then_is_waiting(
    client: httpx.AsyncClient, fields: dict[str, Any], status: str
) -> None:
    await push(client, talk_of(7, **fields))
    body = await gql(client, "{ talk(id: 7) { status } }")
    assert body["data"]["talk"] == {"status": status}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("c", "COMMENT"), ("m", "MENTION"), ("n", "NORMAL"), ("r", "REACTION")],
)
async def test_every_initiation_type_code_maps_to_its_enum_value(
    client: httpx.AsyncClient, sent: str, expected: str
) -> None:
    await push(client, talk_of(7, initiation_type=sent))
    body = await gql(client, "{ talk(id: 7) { initiationType } }")
    assert body["data"]["talk"] == {"initiationType": expected}


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize("field", ["isSimulation", "simulationBotId", "lastWebchatRequestAt"])
async def test_internal_only_fields_are_not_in_the_schema(
    client: httpx.AsyncClient, field: str
) -> None:
    body = await gql(client, f"{{ talk(id: 114603) {{ id: databaseId {field} }} }}", key=ALL_KEY)
    assert body.get("data") is None
    assert codes(body) == ["BAD_USER_INPUT"]
    assert field in body["errors"][0]["message"]


# -- its neighbours -------------------------------------------------------------------------


@pytest.mark.usefixtures("example")
async def test_the_customer_comes_back_with_identity_phones_emails_profile_and_fields(
    client: httpx.AsyncClient,
) -> None:
    customer = (await whole_talk(client, BY_ID, id="114603"))["customer"]
    assert {k: customer[k] for k in CUSTOMER_SCALARS} == CUSTOMER_SCALARS
    assert customer["telephones"] == [TELEPHONE]
    assert customer["emails"] == [EMAIL]
    profile = customer["profileInfo"]
    assert {k: v for k, v in profile.items() if k != "profilePic"} == {
        "id": "8215422678527800",
        "name": "Jonas Schen",
        "username": "j.schen",
        "isVerifiedUser": False,
        "followerCount": 219,
        "isUserFollowBusiness": True,
        "isBusinessFollowUser": False,
    }
    # Sent as "https: //scontent-..." (a broken URL), repaired on the way in.
    assert profile["profilePic"].startswith("https://scontent-gru1-2.cdninstagram.com/v/t51.")


@pytest.mark.usefixtures("example")
async def test_custom_fields_come_back_as_a_name_value_list_in_payload_order(
    client: httpx.AsyncClient,
) -> None:
    customer = (await whole_talk(client, BY_ID, id="114603"))["customer"]
    assert customer["customFields"] == [
        {"name": "Empresa", "value": "Piperun"},
        {"name": "Web Whatsapp - Pessoa", "value": "(51) 99999-8888"},
        {"name": "Nacionalidade", "value": "Brasileira"},
    ]


@pytest.mark.usefixtures("example")
async def test_the_customer_and_the_agent_list_the_talk_among_their_talks(
    client: httpx.AsyncClient,
) -> None:
    talk = await whole_talk(client, BY_ID, id="114603")
    expected = {"totalCount": 1, "edges": [{"node": {"id": "114603"}}]}
    assert talk["customer"]["talks"] == expected
    assert talk["agent"]["talks"] == expected


@pytest.mark.usefixtures("example")
async def test_the_agent_is_built_from_the_user_objects_of_the_messages(
    client: httpx.AsyncClient,
) -> None:
    talk = await whole_talk(client, BY_ID, id="114603")
    assert {k: v for k, v in talk["agent"].items() if k != "talks"} == PIPEBOT


@pytest.mark.usefixtures("example")
async def test_delivered_to_and_scaled_to_are_null_when_the_payload_has_none(
    client: httpx.AsyncClient,
) -> None:
    talk = await whole_talk(client, BY_ID, id="114603")
    assert (talk["deliveredTo"], talk["scaledTo"]) == (None, None)


async def test_delivered_to_and_scaled_to_resolve_to_agents_known_only_by_id(
    client: httpx.AsyncClient,
) -> None:
    await push(client, talk_of(7, delivered_to=41, scaled_to="42"))
    body = await gql(
        client,
        "{ talk(id: 7) { deliveredToId scaledToId deliveredTo { id: databaseId name login }"
        " scaledTo { id: databaseId name login } } }",
    )
    assert body["data"]["talk"] == {
        "deliveredToId": "41",
        "scaledToId": "42",
        "deliveredTo": {"id": "41", "name": None, "login": None},
        "scaledTo": {"id": "42", "name": None, "login": None},
    }


@pytest.mark.usefixtures("example")
async def test_the_channel_comes_back_with_every_field(client: httpx.AsyncClient) -> None:
    talk = await whole_talk(client, BY_ID, id="114603")
    assert talk["channel"] == {
        "id": "1",
        "description": "WhatsApp",
        "iconClass": "fab fa-whatsapp",
        "priority": 1,
        "primaryColor": "#4caf50",
        "secondaryColor": "#9dd5a8",
        "isActive": True,
        "incomingType": "w",
        "enableEmoji": True,
        "enableAudio": True,
        "enableAttachment": True,
        "allowCampaign": True,
        "providerId": 7,
        "unitaryPrice": "0",
        "templatePrice": "0",
        "outgoingType": "s",
        "allowBot": True,
        "additionalPrice": "0",
        "messagesAllowance": 0,
    }


@pytest.mark.usefixtures("example")
async def test_histories_come_back_oldest_first_with_every_field_user_and_channel(
    client: httpx.AsyncClient,
) -> None:
    histories = (await whole_talk(client, BY_ID, id="114603"))["histories"]
    assert histories["totalCount"] == 3
    assert histories["pageInfo"]["hasNextPage"] is False
    assert histories["pageInfo"]["endCursor"] == histories["edges"][-1]["cursor"]
    assert [edge["node"] for edge in histories["edges"]] == MESSAGES


@pytest.mark.usefixtures("example")
async def test_message_types_are_the_enum_values_in_out_and_system(
    client: httpx.AsyncClient,
) -> None:
    body = await gql(client, "{ talk(id: 114603) { histories { edges { node { type } } } } }")
    types = [e["node"]["type"] for e in body["data"]["talk"]["histories"]["edges"]]
    assert types == ["IN", "SYSTEM", "OUT"]


async def test_histories_are_oldest_first_whatever_order_they_were_posted_in(
    client: httpx.AsyncClient,
) -> None:
    payload = talk_of(7, messages=["first", "second", "third"])
    payload["talk_histories"].reverse()
    await push(client, payload)
    body = await gql(client, "{ talk(id: 7) { histories { edges { node { message } } } } }")
    edges = body["data"]["talk"]["histories"]["edges"]
    assert [e["node"]["message"] for e in edges] == ["first", "second", "third"]


@pytest.mark.usefixtures("example")
async def test_events_come_back_with_their_disposition_and_agent(
    client: httpx.AsyncClient,
) -> None:
    talk = await whole_talk(client, BY_ID, id="114603")
    assert talk["events"] == [EVENT]


@pytest.mark.usefixtures("example")
async def test_bot_variables_bot_and_service_catalog_come_back_as_posted(
    client: httpx.AsyncClient,
) -> None:
    talk = await whole_talk(client, BY_ID, id="114603")
    assert talk["botVariables"] == [
        {"varName": "@botCustomerContext_id", "value": "40109"},
        {"varName": "@bot_score", "value": "90"},
    ]
    assert talk["bot"] == {"id": "105", "description": "Informativo - TROCA DE CANAL - 2025"}
    assert talk["serviceCatalog"] == {
        "id": "71",
        "description": "Teste ativo com id",
        "externalId": "111",  # a JSON string in the payload; external ids are strings
    }


async def test_missing_optional_objects_come_back_as_null_or_empty(
    client: httpx.AsyncClient,
) -> None:
    payload = talk_of(7)
    for key in ("bot", "service_catalog", "bot_variables", "talk_events", "talk_histories"):
        del payload[key]
    payload["customer"]["profile_info"] = None
    payload["customer"]["custom_fields"] = None
    await push(client, payload)
    body = await gql(
        client,
        "{ talk(id: 7) { bot { id } serviceCatalog { id } botVariables { value }"
        " events { id: databaseId } histories { totalCount edges { cursor } }"
        " customer { profileInfo { id } customFields { name } } } }",
        key=ALL_KEY,
    )
    assert body["data"]["talk"] == {
        "bot": None,
        "serviceCatalog": None,
        "botVariables": [],
        "events": [],
        "histories": {"totalCount": 0, "edges": []},
        "customer": {"profileInfo": None, "customFields": []},
    }


@pytest.mark.usefixtures("example")
async def test_the_customer_and_agent_are_also_reachable_from_the_root(
    client: httpx.AsyncClient,
) -> None:
    body = await gql(
        client,
        '{ customer(id: "144527") { name talks { edges { node { id: databaseId } } } }'
        ' byId: agent(id: "2") { name } byLogin: agent(login: "bot") { id: databaseId } }',
    )
    assert body["data"] == {
        "customer": {"name": "JONAS", "talks": {"edges": [{"node": {"id": "114603"}}]}},
        "byId": {"name": "PipeBot"},
        "byLogin": {"id": "2"},
    }


# -- asking for a talk ----------------------------------------------------------------------


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize(
    "arguments",
    ['(id: "114603", trackingNumber: "20250908114603")', ""],
    ids=["both", "neither"],
)
async def test_talk_needs_exactly_one_of_id_and_tracking_number(
    client: httpx.AsyncClient, arguments: str
) -> None:
    body = await gql(client, f"{{ talk{arguments} {{ id }} }}")
    assert body["data"] == {"talk": None}
    assert error_at(body, "talk")["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize(
    "arguments", ['(id: "999999")', '(trackingNumber: "nope")'], ids=["id", "tracking-number"]
)
async def test_an_unknown_talk_is_null_without_error(
    client: httpx.AsyncClient, arguments: str
) -> None:
    body = await gql(client, f"{{ talk{arguments} {{ id }} }}")
    assert body == {"data": {"talk": None}}


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize("talk_id", ["abc", "114603abc", "1.5", "99999999999999999999999"])
async def test_a_talk_id_that_is_not_a_64_bit_integer_is_bad_user_input(
    client: httpx.AsyncClient, talk_id: str
) -> None:
    body = await gql(
        client, "query ($id: ID) { talk(id: $id) { id: databaseId } }", {"id": talk_id}
    )
    assert body["data"] == {"talk": None}
    error = error_at(body, "talk")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"].get("argument") == "id"
