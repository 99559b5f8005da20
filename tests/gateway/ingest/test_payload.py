"""The PipeRun payload model: dirty JSON accepted, normalized to UTC ISO 8601 documents."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.demo import example_talk
from gateway.ingest.coercers import parse_datetime
from gateway.ingest.validation import PayloadRejected, validate_talks
from gateway.storage.documents import talk_status
from tests.factories import DecodedTalk, Payload, decoded, event, message, talk

SECRET = "SECRET-VALUE-4242"


def one(payload: object, **kwargs: Any) -> DecodedTalk:
    talks = validate_talks(payload, **kwargs)
    assert len(talks) == 1
    return decoded(talks[0])


def rejected(payload: object) -> PayloadRejected:
    with pytest.raises(PayloadRejected) as caught:
        validate_talks(payload)
    return caught.value


def locs(error: PayloadRejected) -> list[str]:
    return [e["loc"] for e in error.errors]


def assert_not_echoed(error: PayloadRejected, *values: str) -> None:
    text = error.reason + repr(error.errors)
    for value in values:
        assert value not in text


# -- the documented example -------------------------------------------------------------------


def test_the_documented_example_is_one_talk_with_its_messages_and_events() -> None:
    result = one(example_talk())

    assert result.id == 114603
    assert [m["id"] for m in result.messages] == [2077775, 2077776, 2077777]
    assert [e["id"] for e in result.events] == [80991]
    assert result.customer is not None
    assert result.customer["id"] == 144527


def test_the_example_datetimes_leave_in_utc_whatever_their_spelling() -> None:
    result = one(example_talk())

    assert result.doc["created_at"] == "2025-09-08T14:01:17Z"
    assert result.doc["finished_at"] == "2025-09-08T14:01:19Z"
    spaced = result.messages[2]
    assert spaced["sent_at"] == "2025-09-08T14:01:18Z"
    assert spaced["created_at"] == "2025-09-08T14:01:18Z"
    assert spaced["read_at"] == "2025-09-08T14:01:20Z"
    assert result.customer is not None
    assert result.customer["created_at"] == "2023-09-21T12:28:45Z"


def test_the_example_initial_sender_channel_string_becomes_an_int() -> None:
    assert one(example_talk()).doc["initial_sender_channel"] == 1


def test_the_example_broken_profile_picture_url_is_repaired() -> None:
    customer = one(example_talk()).customer
    assert customer is not None

    assert customer["profile_info"]["profile_pic"].startswith(
        "https://scontent-gru1-2.cdninstagram.com/"
    )


def test_the_example_disposition_external_id_number_becomes_a_string() -> None:
    assert one(example_talk()).events[0]["event"]["external_id"] == "12"


def test_the_example_user_fields_outside_the_documentation_are_kept() -> None:
    [user] = one(example_talk()).users

    assert user["can_export_report"] is True
    assert user["last_login_method"] == "local"
    assert user["preferences"]["map_mode"] == "satellite"


# -- datetimes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("2025-09-08T14:01:17.000000Z", "2025-09-08T14:01:17Z"),
        ("2025-09-08 11:01:19", "2025-09-08T14:01:19Z"),
        ("2025-09-08 11: 01: 18", "2025-09-08T14:01:18Z"),
        ("2025-09-08T14: 01: 18.000000Z", "2025-09-08T14:01:18Z"),
        ("2025-09-08T11:01:17-03:00", "2025-09-08T14:01:17Z"),
        ("2025-09-08T16:01:17+02:00", "2025-09-08T14:01:17Z"),
        ("2025-09-08T14:01:17+00:00", "2025-09-08T14:01:17Z"),
        (" 2025-09-08 11:01:19 ", "2025-09-08T14:01:19Z"),
    ],
)
def test_every_datetime_spelling_leaves_as_utc_iso_8601(spelling: str, expected: str) -> None:
    assert one(talk(started_at=spelling)).doc["started_at"] == expected


@pytest.mark.parametrize("blank", [None, "", "   ", "0000-00-00 00:00:00", "0000-00-00"])
def test_blank_and_zero_datetimes_become_null(blank: str | None) -> None:
    assert one(talk(started_at=blank)).doc["started_at"] is None


def test_naive_datetimes_inside_messages_are_read_in_the_source_zone() -> None:
    payload = talk()
    payload["talk_histories"][0]["sent_at"] = "2025-09-08 11:01:17"

    assert one(payload).messages[0]["sent_at"] == "2025-09-08T14:01:17Z"


def test_naive_datetimes_are_read_in_the_zone_given_to_validate_talks() -> None:
    payload = talk(finished_at="2025-09-08 11:01:19")
    payload["talk_histories"][0]["sent_at"] = "2025-09-08 11:01:17"

    result = one(payload, zone=ZoneInfo("Europe/Lisbon"))

    assert result.doc["finished_at"] == "2025-09-08T10:01:19Z"
    assert result.messages[0]["sent_at"] == "2025-09-08T10:01:17Z"


def test_the_zone_given_to_validate_talks_leaves_utc_datetimes_alone() -> None:
    result = one(talk(created_at="2025-09-08T14:01:17.000000Z"), zone=ZoneInfo("Asia/Tokyo"))

    assert result.doc["created_at"] == "2025-09-08T14:01:17Z"


def test_parse_datetime_reads_naive_text_as_sao_paulo_time_by_default() -> None:
    assert parse_datetime("2025-09-08 11:01:19") == datetime(2025, 9, 8, 14, 1, 19, tzinfo=UTC)


def test_parse_datetime_reads_epoch_seconds_as_utc() -> None:
    assert parse_datetime(1757340077) == datetime(2025, 9, 8, 14, 1, 17, tzinfo=UTC)


@pytest.mark.parametrize("garbage", ["yesterday", "2025-13-45 99:99:99", True, [2025]])
def test_parse_datetime_refuses_what_is_not_a_datetime(garbage: object) -> None:
    with pytest.raises(ValueError, match="datetime"):
        parse_datetime(garbage)


def test_a_zero_created_at_is_rejected_naming_created_at() -> None:
    error = rejected(talk(created_at="0000-00-00 00:00:00"))

    assert locs(error) == ["created_at"]


def test_an_unreadable_datetime_is_rejected_naming_the_field_without_echoing_it() -> None:
    error = rejected(talk(started_at=f"{SECRET} 11:01"))

    assert locs(error) == ["started_at"]
    assert_not_echoed(error, SECRET)


# -- numbers, flags and text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("initial_sender_channel", "1", 1),
        ("queue_id", " 17 ", 17),
        ("score", "5.0", 5),
        ("priority_id", 2.0, 2),
        ("agent_id", "", None),
        ("survey_id", "  ", None),
    ],
)
def test_integers_given_as_strings_or_whole_floats_become_integers(
    field: str, given: object, expected: int | None
) -> None:
    payload = talk()
    payload[field] = given

    assert one(payload).doc[field] == expected


def test_ids_given_as_strings_become_integers() -> None:
    payload = talk(id="114603", customer_id="144527", channel_id="1")
    payload["talk_histories"][0]["id"] = "2077775"
    payload["talk_histories"][0]["user"]["id"] = "2"
    payload["talk_events"][0]["id"] = "80991"
    payload["customer"]["id"] = "144527"

    result = one(payload)

    assert (result.id, result.doc["id"], result.doc["customer_id"]) == (114603, 114603, 144527)
    assert result.messages[0]["id"] == 2077775
    assert result.events[0]["id"] == 80991
    assert result.customer is not None
    assert result.customer["id"] == 144527
    assert [u["id"] for u in result.users] == [2]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
        ("Sim", True),
        ("não", False),
        ("S", True),
        ("N", False),
        ("yes", True),
        ("off", False),
        (1, True),
        (0, False),
        (None, False),
        ("", False),
    ],
)
def test_flags_accept_odd_spellings(given: object, expected: bool) -> None:
    assert one(talk(is_critical=given)).doc["is_critical"] is expected


def test_an_uninterpretable_flag_is_rejected_naming_it() -> None:
    error = rejected(talk(is_critical=SECRET))

    assert locs(error) == ["is_critical"]
    assert_not_echoed(error, SECRET)


def test_external_ids_given_as_numbers_become_strings() -> None:
    payload = talk(external_protocol=98765, tracking_number=20250908114603)
    payload["customer"]["external_id"] = 95238935
    payload["customer"]["profile_info"]["id"] = 8215422678527800
    payload["talk_histories"][0]["external_id"] = 123
    payload["service_catalog"]["external_id"] = 111

    result = one(payload)

    assert result.doc["external_protocol"] == "98765"
    assert result.doc["tracking_number"] == "20250908114603"
    assert result.customer is not None
    assert result.customer["external_id"] == "95238935"
    assert result.customer["profile_info"]["id"] == "8215422678527800"
    assert result.messages[0]["external_id"] == "123"
    assert result.doc["service_catalog"]["external_id"] == "111"


def test_a_blank_external_id_becomes_null() -> None:
    payload = talk()
    payload["customer"]["external_id"] = ""

    customer = one(payload).customer

    assert customer is not None
    assert customer["external_id"] is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https: //crmpiperun.cxm.pipe.run/viewer/x", "https://crmpiperun.cxm.pipe.run/viewer/x"),
        ("HTTPS:/ /crmpiperun.cxm.pipe.run/viewer/x", "https://crmpiperun.cxm.pipe.run/viewer/x"),
        ("http: // example.com/a?b=c", "http://example.com/a?b=c"),
        ("https://example.com/fine", "https://example.com/fine"),
        ("", None),
    ],
)
def test_broken_urls_are_repaired(given: str, expected: str | None) -> None:
    payload = talk(url_viewer=given)
    payload["talk_histories"][0]["attachment_url"] = given

    result = one(payload)

    assert result.doc["url_viewer"] == expected
    assert result.messages[0]["attachment_url"] == expected


# -- shape: extra fields, missing objects, null lists -------------------------------------------


def test_unknown_fields_are_kept_in_the_normalized_documents() -> None:
    payload = talk(brand_new_field={"nested": [1, 2]})
    payload["talk_histories"][0]["reaction_emoji"] = "👍"
    for history in payload["talk_histories"]:
        history["channel"]["new_flag"] = "x"
    payload["talk_events"][0]["new_event_field"] = 7
    payload["customer"]["loyalty_tier"] = "gold"
    payload["customer"]["telephones"][0]["carrier"] = "VIVO"

    result = one(payload)

    assert result.doc["brand_new_field"] == {"nested": [1, 2]}
    assert result.messages[0]["reaction_emoji"] == "👍"
    assert result.channels[0]["new_flag"] == "x"
    assert result.events[0]["new_event_field"] == 7
    assert result.customer is not None
    assert result.customer["loyalty_tier"] == "gold"
    assert result.customer["telephones"][0]["carrier"] == "VIVO"


@pytest.mark.parametrize("name", ["bot", "service_catalog", "talk_histories", "talk_events"])
def test_a_talk_without_an_optional_part_is_accepted(name: str) -> None:
    payload = talk()
    del payload[name]

    result = one(payload)

    assert result.id == 114603


def test_a_talk_without_customer_has_no_customer_document() -> None:
    payload = talk()
    del payload["customer"]

    result = one(payload)

    assert result.customer is None
    assert result.doc["customer_id"] == 144527


def test_missing_bot_and_service_catalog_are_null_in_the_document() -> None:
    payload = talk()
    del payload["bot"], payload["service_catalog"]

    result = one(payload)

    assert result.doc["bot"] is None
    assert result.doc["service_catalog"] is None


def test_messages_without_user_or_channel_objects_are_accepted() -> None:
    payload = talk()
    for history in payload["talk_histories"]:
        del history["user"], history["channel"]

    result = one(payload)

    assert len(result.messages) == 3
    assert (result.users, result.channels) == ([], [])


def test_null_lists_become_empty_lists() -> None:
    payload = talk(talk_histories=None, talk_events=None, bot_variables=None)
    payload["customer"].update(telephones=None, emails=None, custom_fields=None)

    result = one(payload)

    assert (result.messages, result.events, result.doc["bot_variables"]) == ([], [], [])
    assert result.customer is not None
    assert result.customer["telephones"] == []
    assert result.customer["emails"] == []
    assert result.customer["custom_fields"] == []


def test_custom_fields_given_as_an_object_become_name_value_pairs() -> None:
    customer = one(example_talk()).customer
    assert customer is not None

    assert customer["custom_fields"] == [
        {"name": "Empresa", "value": "Piperun"},
        {"name": "Web Whatsapp - Pessoa", "value": "(51) 99999-8888"},
        {"name": "Nacionalidade", "value": "Brasileira"},
    ]


def test_custom_fields_given_as_a_list_are_kept_as_name_value_pairs() -> None:
    payload = talk()
    payload["customer"]["custom_fields"] = [
        {"name": "Empresa", "value": "Piperun"},
        {"name": "Vazio", "value": None},
    ]

    customer = one(payload).customer

    assert customer is not None
    assert customer["custom_fields"] == [
        {"name": "Empresa", "value": "Piperun"},
        {"name": "Vazio", "value": None},
    ]


def test_custom_field_values_that_are_not_text_become_text() -> None:
    payload = talk()
    payload["customer"]["custom_fields"] = {"Idade": 42, "VIP": True, "Tags": ["a", "b"]}

    customer = one(payload).customer

    assert customer is not None
    assert customer["custom_fields"] == [
        {"name": "Idade", "value": "42"},
        {"name": "VIP", "value": "true"},
        {"name": "Tags", "value": '["a","b"]'},
    ]


def test_a_custom_value_orjson_cannot_write_becomes_text_too() -> None:
    # Found by the equivalence test's generator: a payload given as Python values may hold
    # an int past 64 bits inside a list (a body on the wire cannot: orjson reads it as a float).
    payload = talk()
    payload["customer"]["custom_fields"] = {"Grande": [-(2**63) - 1, "ã"]}

    customer = one(payload).customer

    assert customer is not None
    assert customer["custom_fields"] == [{"name": "Grande", "value": '[-9223372036854775809,"ã"]'}]


# -- enums --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("c", "c"),
        ("m", "m"),
        ("n", "n"),
        ("r", "r"),
        ("R", "r"),
        ("comment", "c"),
        ("Mention", "m"),
        ("NORMAL", "n"),
        (" reaction ", "r"),
    ],
)
def test_initiation_type_accepts_letters_and_words(given: str, expected: str) -> None:
    assert one(talk(initiation_type=given)).doc["initiation_type"] == expected


def test_a_talk_without_initiation_type_is_normal() -> None:
    payload = talk()
    del payload["initiation_type"]

    assert one(payload).doc["initiation_type"] == "n"


@pytest.mark.parametrize(
    ("given", "expected"), [("IN", "in"), ("Out", "out"), (" SYSTEM ", "system"), ("in", "in")]
)
def test_message_type_is_case_insensitive(given: str, expected: str) -> None:
    payload = talk()
    payload["talk_histories"][0]["type"] = given

    assert one(payload).messages[0]["type"] == expected


def test_internal_only_fields_are_still_parsed() -> None:
    payload = talk(
        is_simulation="1", simulation_bot_id="7", last_webchat_request_at="2025-09-08 11:01:19"
    )

    doc = one(payload).doc

    assert doc["is_simulation"] is True
    assert doc["simulation_bot_id"] == 7
    assert doc["last_webchat_request_at"] == "2025-09-08T14:01:19Z"


# -- rejections ---------------------------------------------------------------------------------


def test_a_talk_without_id_is_rejected_naming_id() -> None:
    payload = talk()
    del payload["id"]

    assert locs(rejected(payload)) == ["id"]


def test_a_talk_with_a_null_id_is_rejected_naming_id() -> None:
    assert locs(rejected(talk(id=None))) == ["id"]


def test_a_talk_whose_id_is_not_a_number_is_rejected_without_echoing_it() -> None:
    error = rejected(talk(id=SECRET))

    assert locs(error) == ["id"]
    assert_not_echoed(error, SECRET)


def test_a_talk_whose_id_has_a_fraction_is_rejected_naming_id() -> None:
    assert locs(rejected(talk(id=114603.5))) == ["id"]


def test_a_talk_whose_id_is_a_boolean_is_rejected_naming_id() -> None:
    assert locs(rejected(talk(id=True))) == ["id"]


def test_an_unknown_initiation_type_is_rejected_without_echoing_it() -> None:
    error = rejected(talk(initiation_type=SECRET))

    assert locs(error) == ["initiation_type"]
    assert_not_echoed(error, SECRET)


def test_a_message_without_id_is_rejected_naming_its_position() -> None:
    payload = talk()
    del payload["talk_histories"][1]["id"]

    assert locs(rejected(payload)) == ["talk_histories.1.id"]


def test_a_message_of_unknown_type_is_rejected_without_echoing_it() -> None:
    payload = talk()
    payload["talk_histories"][0]["type"] = SECRET

    error = rejected(payload)

    assert locs(error) == ["talk_histories.0.type"]
    assert_not_echoed(error, SECRET)


def test_errors_in_an_array_name_the_talk_by_its_position() -> None:
    bad = talk(114604)
    del bad["id"]

    assert locs(rejected([talk(), bad])) == ["1.id"]


@pytest.mark.parametrize("body", [SECRET, 4242424242, 12.5, None, True])
def test_a_body_that_is_not_an_object_or_array_is_rejected_at_the_root(body: object) -> None:
    error = rejected(body)

    assert locs(error) == [""]
    assert_not_echoed(error, SECRET, "4242424242", "12.5")


def test_an_array_item_that_is_not_an_object_is_rejected_without_echoing_it() -> None:
    error = rejected([talk(), SECRET])

    assert locs(error) == ["1"]
    assert_not_echoed(error, SECRET)


def test_an_empty_array_is_rejected_at_the_root() -> None:
    error = rejected([])

    assert error.reason
    assert locs(error) == [""]


# -- derived status -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finished_at", "is_waiting", "expected"),
    [
        ("2025-09-08 11:01:19", False, "FINISHED"),
        ("2025-09-08 11:01:19", True, "FINISHED"),
        (None, True, "WAITING"),
        (None, False, "IN_PROGRESS"),
        ("", False, "IN_PROGRESS"),
    ],
)
def test_talk_status_is_finished_then_waiting_then_in_progress(
    finished_at: str | None, is_waiting: bool, expected: str
) -> None:
    doc = one(talk(finished_at=finished_at, is_waiting=is_waiting)).doc

    assert talk_status(doc) == expected


# -- splitting into documents -------------------------------------------------------------------


def test_the_talk_document_holds_no_messages_events_or_customer() -> None:
    doc = one(example_talk()).doc

    assert not {"talk_histories", "talk_events", "customer"} & doc.keys()


def test_messages_lose_their_user_and_channel_objects() -> None:
    for history in one(example_talk()).messages:
        assert "user" not in history
        assert "channel" not in history
        assert history["user_id"] == 2
        assert history["channel_id"] == 1


def test_users_and_channels_are_collected_once_per_id() -> None:
    payload = talk()
    other = message(2077790, "oi", kind="out")
    other["user"] = {**other["user"], "id": 31, "login": "carla", "name": "Carla"}
    other["user_id"] = 31
    other["channel"] = {**other["channel"], "id": 6, "description": "Instagram"}
    other["channel_id"] = 6
    payload["talk_histories"].append(other)

    result = one(payload)

    assert sorted(u["id"] for u in result.users) == [2, 31]
    assert sorted(c["id"] for c in result.channels) == [1, 6]


def test_messages_and_events_carry_the_id_of_the_talk_they_came_in() -> None:
    payload = talk()
    payload["talk_histories"][0]["talk_id"] = 999
    del payload["talk_events"][0]["talk_id"]

    result = one(payload)

    assert result.messages[0]["talk_id"] == 114603
    assert result.events[0]["talk_id"] == 114603


def test_agent_ids_collect_every_agent_reference_without_a_user_object() -> None:
    payload = talk(agent_id=31, delivered_to=32, scaled_to=33)
    payload["talk_events"][0]["agent_id"] = 34
    payload["talk_histories"][0].update(user_id=35, user=None)

    result = one(payload)

    assert result.agent_ids == frozenset({31, 32, 33, 34, 35})


def test_agent_ids_exclude_agents_that_came_with_a_user_object() -> None:
    result = one(talk(agent_id=2, delivered_to=2))

    assert [u["id"] for u in result.users] == [2]
    assert result.agent_ids == frozenset()


def test_a_message_id_repeated_in_one_snapshot_keeps_the_last_version() -> None:
    payload = talk(
        talk_histories=[message(10, "first"), message(11, "other"), message(10, "second")]
    )

    messages = one(payload).messages

    assert sorted(m["id"] for m in messages) == [10, 11]
    assert next(m["message"] for m in messages if m["id"] == 10) == "second"


def test_an_event_id_repeated_in_one_snapshot_keeps_the_last_version() -> None:
    payload = talk(talk_events=[event(5, success=False), event(5, success=True)])

    assert [(e["id"], e["is_success"]) for e in one(payload).events] == [(5, True)]


def test_latest_message_id_is_the_greatest_message_id_or_zero() -> None:
    with_messages = talk(talk_histories=[message(30, "a"), message(12, "b"), message(21, "c")])

    assert validate_talks(with_messages)[0].latest_message_id == 30
    assert validate_talks(talk(talk_histories=[]))[0].latest_message_id == 0


def test_a_talk_is_finished_once_it_has_finished_at() -> None:
    assert validate_talks(talk(finished_at="2025-09-08 11:01:19"))[0].finished is True
    assert validate_talks(talk(finished_at=None))[0].finished is False


def test_validation_does_not_modify_the_given_payload() -> None:
    payload: Payload = talk()
    before = copy.deepcopy(payload)

    validate_talks(payload)

    assert payload == before
