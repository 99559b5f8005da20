"""The PipeRun talk payload: a lenient pydantic model of what the webhook receives.

PipeRun sends dirty JSON (ints as strings, three datetime spellings, stray spaces inside
times, broken URLs, unknown fields), and all of it must be accepted. Validation turns one
payload into a `NormalizedTalk` (`gateway.storage.documents`): the documents the store keeps,
each as its JSON text and the few fields the store reads from it, datetimes as ISO 8601 in
UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from annotated_types import Ge
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    FailFast,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import core_schema as cs

from gateway.storage.documents import (
    CHANNEL_FIELDS,
    CUSTOMER_FIELDS,
    EVENT_FIELDS,
    MAX_ERRORS,
    MESSAGE_FIELDS,
    TALK_FIELDS,
    USER_FIELDS,
    Doc,
    Document,
    NormalizedTalk,
)

DEFAULT_ZONE = ZoneInfo("America/Sao_Paulo")

_SPACED_COLON = re.compile(r"\s*:\s*")
_BROKEN_SCHEME = re.compile(r"^(https?):\s*/\s*/\s*", re.IGNORECASE)
_ZERO_DATES = ("0000-00-00",)


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


_INT64 = range(-(2**63), 2**63)
_INT64_MIN, _INT64_STOP = -(2**63), 2**63


def _lenient_int(value: object) -> object:
    # Most values are already ints (or absent): answer those without the general path.
    if type(value) is int:
        if _INT64_MIN <= value < _INT64_STOP:
            return value
        raise ValueError("the integer is outside the 64-bit range")
    if value is None:
        return None
    value = _int_from(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        raise ValueError("the integer is outside the 64-bit range")
    return value


def _int_from(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return value
            return int(number) if number.is_integer() else value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


_TRUE = frozenset({"1", "true", "t", "yes", "y", "s", "sim", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "nao", "não", "off", ""})


def _lenient_bool(value: object) -> object:
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return value


def _as_text(value: object) -> object:
    """External ids and similar codes are strings whatever their JSON type."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


def _repair_url(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        return _BROKEN_SCHEME.sub(lambda m: f"{m.group(1).lower()}://", text)
    return value


def parse_datetime(value: object, zone: tzinfo = DEFAULT_ZONE) -> datetime | None:
    """Read any of PipeRun's datetime spellings; naive ones are local time in `zone`.

    Accepts `2025-09-08T14:01:17.000000Z`, `2025-09-08 11:01:19`, `2025-09-08 11: 01: 18`,
    offsets, and epoch seconds. Returns an aware UTC datetime, or None for blanks and
    MySQL zero dates. Raises ValueError for anything else.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool):
        raise ValueError("a datetime cannot be a boolean")
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("a datetime cannot be NaN or infinite")
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("the timestamp is out of range") from None
    elif isinstance(value, str):
        try:
            # Most values are plain ISO 8601 already; the repairs below cannot change
            # one that parses as it is (they touch only spaces, which it has none of
            # around its colons or at its ends).
            moment = datetime.fromisoformat(value)
        except ValueError:
            repaired = _repaired_datetime(value)
            if repaired is None:
                return None
            moment = repaired
    else:
        raise ValueError(f"a datetime must be a string, not {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the datetime is out of range") from None


def _repaired_datetime(value: str) -> datetime | None:
    text = _SPACED_COLON.sub(":", value.strip())
    if not text or text.startswith(_ZERO_DATES):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not a datetime in any known spelling") from None


def _datetime_field(value: object, info: ValidationInfo) -> datetime | None:
    zone = (info.context or {}).get("zone", DEFAULT_ZONE)
    return parse_datetime(value, zone)


def _iso(moment: datetime) -> str:
    """A UTC datetime as pydantic's JSON mode writes it (`...Z`, microseconds only if any)."""
    # Spelled naive: writing the offset (then cut) tripled the cost of isoformat.
    return moment.replace(tzinfo=None).isoformat() + "Z"


# The texts of datetimes already read, by spelling and zone. Datetimes repeat: an agent's or
# a customer's come with every talk that carries them, and a message is often sent, delivered
# and created in the same second. Reading one costs microseconds, a hit a dict lookup.
_ISO_TEXTS: dict[tuple[str, tzinfo], str | None] = {}
_ISO_TEXTS_LIMIT = 4096


def _iso_datetime_field(value: object, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    zone = (info.context or {}).get("zone", DEFAULT_ZONE)
    if type(value) is not str:
        moment = parse_datetime(value, zone)
        return None if moment is None else _iso(moment)
    key = (value, zone)
    try:
        return _ISO_TEXTS[key]
    except KeyError:
        pass
    moment = parse_datetime(value, zone)  # a ValueError is raised again each time
    text = None if moment is None else _iso(moment)
    if len(_ISO_TEXTS) >= _ISO_TEXTS_LIMIT:
        _ISO_TEXTS.clear()
    _ISO_TEXTS[key] = text
    return text


def _initiation_type(value: object) -> object:
    if isinstance(value, str):
        text = value.strip().lower()
        return {"comment": "c", "mention": "m", "normal": "n", "reaction": "r"}.get(text, text)
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(_lenient_int)]
OptInt = Annotated[int | None, BeforeValidator(_lenient_int)]
# PipeRun's internal ids ("identificador interno") count from 1. Those that key a row talkgate
# keeps (talks, messages, events, customers, agents, channels) or point at one must be
# positive: a talk -5 or an agent 0 is no PipeRun talk or agent.
Id = Annotated[int, Ge(1), BeforeValidator(_lenient_int)]
OptId = Annotated[int | None, Ge(1), BeforeValidator(_lenient_int)]
Flag = Annotated[bool, BeforeValidator(_lenient_bool)]
Text = Annotated[str | None, BeforeValidator(_as_text)]
ExternalId = Annotated[str | None, BeforeValidator(_as_text), BeforeValidator(_blank_to_none)]
Url = Annotated[str | None, BeforeValidator(_repair_url)]
DateTime = Annotated[datetime, BeforeValidator(_datetime_field)]
OptDateTime = Annotated[datetime | None, BeforeValidator(_datetime_field)]


def _list_or_empty(value: object) -> object:
    return [] if value is None else value


# Every list inside a talk stops at its first bad item: a talk of 300,000 bad messages is
# one error, not 300,000 (each costs microseconds and a dict; see `validated_items`).
FirstError = FailFast()


class _Lenient(BaseModel):
    """Unknown fields are kept; numbers given where text is expected become text."""

    model_config = ConfigDict(
        extra="allow", coerce_numbers_to_str=True, populate_by_name=True, frozen=True
    )


class UserPayload(_Lenient):
    id: Id
    branch_id: OptInt = None
    name: Text = None
    login: Text = None
    email: Text = None
    level_id: OptInt = None
    language_id: OptInt = None
    can_external_access: Flag = False
    email_verified_at: OptDateTime = None
    created_at: OptDateTime = None
    is_active: Flag = False
    is_bot: Flag = False
    whatsapp_number: Text = None
    can_api_access: Flag = False
    preferences: dict[str, Any] | None = None


class ChannelPayload(_Lenient):
    id: Id
    description: Text = None
    icon_class: Text = None
    priority: OptInt = None
    primary_color: Text = None
    secondary_color: Text = None
    is_active: Flag = False
    incoming_type: Text = None
    enable_emoji: Flag = False
    enable_audio: Flag = False
    enable_attachment: Flag = False
    allow_campaign: Flag = False
    provider_id: OptInt = None
    unitary_price: Text = None
    template_price: Text = None
    outgoing_type: Text = None
    allow_bot: Flag = False
    additional_price: Text = None
    messages_allowance: OptInt = None


class HistoryPayload(_Lenient):
    id: Id
    talk_id: OptInt = None
    user_id: OptId = None
    queue_id: OptInt = None
    channel_id: OptInt = None
    message: Text = None
    has_attachment: Flag = False
    attachment_url: Url = None
    attachment_type_id: OptInt = None
    sent_at: OptDateTime = None
    delivered_at: OptDateTime = None
    read_at: OptDateTime = None
    created_at: OptDateTime = None
    was_read: Flag = False
    has_highlight: Flag = False
    from_: Text = Field(default=None, alias="from")
    type: Annotated[Literal["in", "out", "system"], BeforeValidator(_lower)]
    to: Text = None
    external_id: ExternalId = None
    left_at: OptDateTime = None
    has_error: Flag = False
    campaign_id: OptInt = None
    was_blocked: Flag = False
    is_template: Flag = False
    response_from: Text = None
    fare: Text = None
    error_reason: Text = None
    template_id: OptInt = None
    original_message: Text = None
    subject: Text = None
    exceeded_allowance: Flag = False
    is_intervention: Flag = False
    is_forwarded: Flag = False
    is_frequently_forwarded: Flag = False
    is_ads: Flag = False
    send_after: OptDateTime = None
    is_reverted_template: Flag = False
    reaction: Text = None
    customer_reaction: Text = None
    status: OptInt = None
    is_hidden: Flag = False
    file_name: Text = None
    attachment_type: Annotated[list[Any], FirstError, BeforeValidator(_list_or_empty)] = []
    user: UserPayload | None = None
    channel: ChannelPayload | None = None


class DispositionPayload(_Lenient):
    id: Int
    description: Text = None
    external_id: ExternalId = None


class EventPayload(_Lenient):
    id: Id
    talk_id: OptInt = None
    event_id: OptInt = None
    queue_id: OptInt = None
    is_success: Flag = False
    created_at: OptDateTime = None
    agent_id: OptId = None
    channel_id: OptInt = None
    reaction_type: Text = None
    reaction_type_description: Text = None
    event: DispositionPayload | None = None


class TelephonePayload(_Lenient):
    id: OptInt = None
    customer_id: OptInt = None
    area_code: Text = None
    number: Text = None
    type: Text = None
    level_id: Text = None
    has_sms: Flag = False
    has_whatsapp: Flag = False
    has_whatsapp_api: Flag = False
    wa_is_business: Flag = False
    wa_is_enterprise: Flag = False
    wa_contact_name: Text = None
    wa_pushname: Text = None
    wa_verified_level: Text = None
    wa_verified_name: Text = None
    wa_profile_picture: Url = None
    session_expires_at: OptDateTime = None
    insert_origin: Text = None
    inserted_by: OptInt = None
    country_code: Text = None
    country_iso2: Text = None
    full_number: Text = None
    full_number_cc: Text = None


class EmailPayload(_Lenient):
    id: OptInt = None
    customer_id: OptInt = None
    email: Text = None
    level_id: Text = None
    insert_origin: Text = None
    inserted_by: OptInt = None
    unsubscribed_at: OptDateTime = None


class ProfileInfoPayload(_Lenient):
    id: ExternalId = None
    name: Text = None
    username: Text = None
    profile_pic: Url = None
    is_verified_user: Flag = False
    follower_count: OptInt = None
    is_user_follow_business: Flag = False
    is_business_follow_user: Flag = False


def _custom_fields(value: object) -> object:
    """PipeRun sends custom fields as an object; lists of {name, value} are accepted too."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"name": str(k), "value": v} for k, v in value.items()]
    return value


def _custom_value(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return _as_text(value)

    return orjson.dumps(value).decode()


class CustomFieldPayload(_Lenient):
    name: str
    value: Annotated[str | None, BeforeValidator(_custom_value)] = None


class CustomerPayload(_Lenient):
    id: Id
    name: Text = None
    external_id: ExternalId = None
    document_number: Text = None
    wildcard_01: Text = None
    wildcard_02: Text = None
    wildcard_03: Text = None
    wildcard_04: Text = None
    wildcard_05: Text = None
    wildcard_06: Text = None
    wildcard_07: Text = None
    wildcard_08: Text = None
    wildcard_09: Text = None
    wildcard_10: Text = None
    created_at: OptDateTime = None
    main_sms: OptInt = None
    main_whatsapp: OptInt = None
    main_email: OptInt = None
    agent_id: OptInt = None
    queue_id: OptInt = None
    customer_group_id: OptInt = None
    profile_picture_url: Url = None
    is_priority: Flag = False
    last_base_api: Text = None
    customer_organization_id: OptInt = None
    crmv_user_id: OptInt = None
    crmv_person_id: OptInt = None
    is_active: Flag = False
    cxm_user_id: OptInt = None
    profile_info: ProfileInfoPayload | None = None
    custom_fields: Annotated[
        list[CustomFieldPayload], FirstError, BeforeValidator(_custom_fields)
    ] = []
    telephones: Annotated[list[TelephonePayload], FirstError, BeforeValidator(_list_or_empty)] = []
    emails: Annotated[list[EmailPayload], FirstError, BeforeValidator(_list_or_empty)] = []


class BotVariablePayload(_Lenient):
    var_name: Text = None
    value: Annotated[str | None, BeforeValidator(_custom_value)] = None


class BotPayload(_Lenient):
    id: Int
    description: Text = None


class ServiceCatalogPayload(_Lenient):
    id: Int
    description: Text = None
    external_id: ExternalId = None


class TalkPayload(_Lenient):
    """One PipeRun talk ("atendimento") as the webhook delivers it."""

    id: Id
    customer_id: Id
    agent_id: OptId = None
    queue_id: OptInt = None
    channel_id: Id
    priority_id: OptInt = None
    finished_at: OptDateTime = None
    was_success: Flag = False
    created_at: DateTime
    has_schedule: Flag = False
    is_critical: Flag = False
    score: OptInt = None
    rating_survey_id: OptInt = None
    started_at: OptDateTime = None
    is_simulation: Flag = False
    simulation_bot_id: OptInt = None
    latitude: Text = None
    longitude: Text = None
    initial_sender_channel: OptInt = None
    is_waiting: Flag = False
    was_expired: Flag = False
    delivered_at: OptDateTime = None
    last_waiting_message_at: OptDateTime = None
    is_shopping: Flag = False
    is_ads: Flag = False
    last_webchat_request_at: OptDateTime = None
    scaled_to: OptId = None
    client_ip: Text = None
    client_user_agent: Text = None
    survey_id: OptInt = None
    talk_category_id: OptInt = None
    talk_service_id: OptInt = None
    initiation_type: Annotated[Literal["c", "m", "n", "r"], BeforeValidator(_initiation_type)] = "n"
    delivered_to: OptId = None
    external_protocol: ExternalId = None
    tracking_number: Annotated[str, BeforeValidator(_as_text)]
    url_viewer: Url = None
    talk_histories: Annotated[
        list[HistoryPayload], FirstError, BeforeValidator(_list_or_empty)
    ] = []
    customer: CustomerPayload | None = None
    talk_events: Annotated[list[EventPayload], FirstError, BeforeValidator(_list_or_empty)] = []
    bot_variables: Annotated[
        list[BotVariablePayload], FirstError, BeforeValidator(_list_or_empty)
    ] = []
    bot: BotPayload | None = None
    service_catalog: ServiceCatalogPayload | None = None


def _split(doc: Doc) -> NormalizedTalk:
    """Split the JSON-ready document of a whole talk into the documents the store keeps."""
    talk_id: int = doc["id"]
    histories: list[Doc] = doc.pop("talk_histories")
    events: list[Doc] = doc.pop("talk_events")
    customer: Doc | None = doc.pop("customer")

    agent_ids = {doc["agent_id"], doc["delivered_to"], doc["scaled_to"]}
    users: dict[int, Doc] = {}
    channels: dict[int, Doc] = {}
    messages: dict[int, Doc] = {}
    for history in histories:
        user = history.pop("user")
        channel = history.pop("channel")
        if user is not None:
            users[user["id"]] = user
        if channel is not None:
            channels[channel["id"]] = channel
        history["talk_id"] = talk_id
        agent_ids.add(history["user_id"])
        # Later entries win when one snapshot repeats an id (a dict keeps the first position).
        messages[history["id"]] = history
    unique_events: dict[int, Doc] = {}
    for event in events:
        event["talk_id"] = talk_id
        agent_ids.add(event["agent_id"])
        unique_events[event["id"]] = event
    agent_ids.discard(None)
    return NormalizedTalk(
        id=talk_id,
        doc=Document.of(doc, TALK_FIELDS),
        messages=[Document.of(m, MESSAGE_FIELDS) for m in messages.values()],
        events=[Document.of(e, EVENT_FIELDS) for e in unique_events.values()],
        customer=None if customer is None else Document.of(customer, CUSTOMER_FIELDS),
        users=[Document.of(u, USER_FIELDS) for u in users.values()],
        channels=[Document.of(ch, CHANNEL_FIELDS) for ch in channels.values()],
        agent_ids=frozenset(agent_ids - users.keys()),
    )


def _documents_schema(schema: CoreSchema) -> CoreSchema:
    """`schema`'s validation, yielding what `model_dump(mode="json", by_alias=True)` would.

    Each model becomes a typed dict keyed by alias, each datetime its ISO 8601 text: one pass
    into the final dicts, instead of building model instances and walking them to dump them.
    Errors (loc and message) stay those of the models.
    """
    kind = schema["type"]
    if kind == "model":
        return _model_documents_schema(schema)
    if kind == "function-before" and schema["function"]["function"] is _datetime_field:
        inner = schema["schema"]
        if inner["type"] == "nullable" and inner["schema"]["type"] == "datetime":
            return cs.with_info_before_validator_function(_iso_datetime_field, cs.any_schema())
        if inner["type"] == "datetime":
            return cs.no_info_after_validator_function(_iso, schema)
        raise TypeError(f"unexpected datetime schema {inner['type']}")
    converted: dict[str, Any] = dict(schema)
    for key in ("schema", "items_schema", "keys_schema", "values_schema"):
        if key in schema:
            converted[key] = _documents_schema(schema[key])
    for key in ("choices", "steps", "definitions"):
        if key in schema:
            converted[key] = [_documents_schema(s) for s in schema[key]]
    if kind in {"model-fields", "typed-dict", "dataclass-args", "tagged-union", "tuple"}:
        raise TypeError(f"{kind} schemas are not converted")
    return converted


def _model_documents_schema(schema: Any) -> CoreSchema:
    model_fields = schema["schema"]
    if schema.get("custom_init") or schema.get("root_model") or model_fields.get("computed_fields"):
        raise TypeError(f"{schema['cls'].__name__} cannot be validated into a plain dict")
    fields: dict[str, cs.TypedDictField] = {}
    for name, model_field in model_fields["fields"].items():
        alias = model_field.get("validation_alias")
        if alias not in (None, model_field.get("serialization_alias")) or not isinstance(
            alias or "", str
        ):
            raise TypeError(f"{name}: only a plain alias, the same both ways, is converted")
        fields[alias or name] = cs.typed_dict_field(
            _documents_schema(model_field["schema"]),
            required=model_field["schema"]["type"] != "default",
            # `populate_by_name`: the field is read by its alias or else by its name.
            validation_alias=[[alias], [name]] if alias else None,
        )
    # A model refuses what is not a dict with a message naming it; a typed dict would not.
    name = schema["cls"].__name__
    is_dict = cs.custom_error_schema(
        cs.is_instance_schema(dict),
        custom_error_type="talk_part_type",
        custom_error_message=f"Input should be a valid dictionary or instance of {name}",
    )
    return cs.chain_schema(
        [
            is_dict,
            cs.typed_dict_schema(
                fields, extra_behavior="allow", total=True, config=schema.get("config")
            ),
        ]
    )


def _fast_paths(schema: Any) -> Any:
    """`schema` with a native check in front of the lenient functions most fields go through.

    Nearly every value is already what its field wants (an int for an int, a bool for a
    flag, a string or null for text): the lenient function would return it unchanged, and
    the field's own check accept it. A strict native check accepts exactly those values, so
    a talk is validated with about 300 fewer Python calls; any other value falls through
    to the function, as before. The result is the same; the errors are not (a union reports
    each alternative), so a body this refuses is validated again by the exact schema.
    """
    if isinstance(schema, list):
        return [_fast_paths(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _fast_paths(value) for key, value in schema.items()}
    if schema.get("type") != "function-before":
        return converted
    function, inner = schema["function"]["function"], schema["schema"]
    nullable = inner["type"] == "nullable"
    kind = (inner["schema"] if nullable else inner)["type"]
    fast: CoreSchema
    if function is _lenient_int and kind == "int":
        bounds = inner["schema"] if nullable else inner
        fast = cs.int_schema(
            strict=True, ge=max(bounds.get("ge", _INT64_MIN), _INT64_MIN), lt=_INT64_STOP
        )
    elif function is _lenient_bool and kind == "bool":
        fast = cs.bool_schema(strict=True)
    elif function is _as_text and kind == "str":
        fast = cs.str_schema(strict=True)
    elif function is _iso_datetime_field:  # already nullable: it answers None for None
        return cs.union_schema([cs.none_schema(), converted], mode="left_to_right")
    else:
        return converted
    if nullable:
        fast = cs.nullable_schema(fast)
    return cs.union_schema([fast, converted], mode="left_to_right")


_TALKS = TypeAdapter(list[TalkPayload])
_DOCUMENTS_SCHEMA = _documents_schema(_TALKS.core_schema)
_TALK_DOCUMENTS = SchemaValidator(_DOCUMENTS_SCHEMA)
# The whole body at once, stopping at its first bad talk: a body of 300,000 bad talks is
# refused at the cost of its first one, not of 1.5 M errors (12 s for 990 KB of `[{},...]`).
_FAST_DOCUMENTS = SchemaValidator({**_fast_paths(_DOCUMENTS_SCHEMA), "fail_fast": True})

_JSON_NAMES: dict[type, str] = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class PayloadRejected(ValueError):
    """A body that is not a talk or an array of talks; `errors` say field by field why.

    `errors` holds at most MAX_ERRORS of them, the first in the body's order; `error_count`
    is how many were found. `truncated`: validation stopped at the talk that took the count
    to MAX_ERRORS, before the end of the body, so `error_count` is a lower bound.
    """

    def __init__(
        self,
        reason: str,
        errors: list[dict[str, str]],
        *,
        error_count: int | None = None,
        truncated: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors
        self.error_count = len(errors) if error_count is None else error_count
        self.truncated = truncated


def validate_talks(data: object, *, zone: tzinfo = DEFAULT_ZONE) -> list[NormalizedTalk]:
    """Validate decoded JSON (one talk object or an array of them) into normalized talks."""
    items = validated_items(
        _FAST_DOCUMENTS.validate_python, data, zone, exact=_TALK_DOCUMENTS.validate_python
    )
    return [_split(doc) for doc in items]


def validated_items(
    validate: Callable[..., list[Any]],
    data: object,
    zone: tzinfo,
    *,
    exact: Callable[..., list[Any]] | None = None,
) -> list[Any]:
    """`validate` (a pydantic `validate_python` of a list of talks) applied to the talks of
    `data`, one talk object or an array of them; PayloadRejected, with the errors field by
    field, for anything else.

    The errors come from `exact` (by default `validate`), run on one talk at a time from the
    first bad one on, and stop once MAX_ERRORS are found: the cost of a rejection is bounded
    by the talks it reads, never by how many errors the body could yield. Each list inside a
    talk reports its first bad item only (`FirstError`).
    """
    if isinstance(data, dict):
        items: list[object] = [data]
        single = True
    elif isinstance(data, list):
        if not data:
            raise PayloadRejected(
                "the array holds no talk", [{"loc": "", "msg": "an empty array holds no talk"}]
            )
        items, single = data, False
    else:
        raise PayloadRejected(
            "the body must be a talk object or an array of talks",
            [{"loc": "", "msg": f"got a JSON {_JSON_NAMES.get(type(data), 'value')}"}],
        )
    context = {"zone": zone}
    try:
        return validate(items, context=context)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)
        start = first[0]["loc"][0] if first and first[0]["loc"] else 0
    errors: list[dict[str, str]] = []
    count = 0
    first_bad = start if isinstance(start, int) else 0
    index = first_bad
    for index in range(first_bad, len(items)):
        if count >= MAX_ERRORS:
            break
        try:
            (exact or validate)([items[index]], context=context)
        except ValidationError as exc:
            count += exc.error_count()
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                if len(errors) == MAX_ERRORS:
                    break
                loc = err["loc"][1:] if single else (index, *err["loc"][1:])
                errors.append({"loc": ".".join(str(p) for p in loc), "msg": err["msg"]})
    else:
        index = len(items)
    truncated = index < len(items)
    raise PayloadRejected(
        "the body is not a valid talk", errors, error_count=count, truncated=truncated
    ) from None
