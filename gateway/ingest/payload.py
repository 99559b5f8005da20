"""The PipeRun talk payload: a lenient pydantic model of what the webhook receives (its
coercers: gateway/ingest/coercers.py; compiled to one validator: gateway/ingest/validation.py).

PipeRun sends dirty JSON (ints as strings, three datetime spellings, stray spaces inside
times, broken URLs, unknown fields), and all of it must be accepted. Validation turns one
payload into a `NormalizedTalk` (`gateway.storage.documents`): the documents the store keeps,
each as its JSON text and the few fields the store reads from it, datetimes as ISO 8601 in
UTC.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    FailFast,
    Field,
)

from gateway.ingest import coercers as lenient
from gateway.ingest.coercers import (
    DateTime,
    ExternalId,
    Flag,
    Id,
    Int,
    OptDateTime,
    OptId,
    OptInt,
    Text,
    Url,
)

# A missing list (null) is an empty one.
AsList = BeforeValidator(lenient.list_or_empty)

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
    type: Annotated[Literal["in", "out", "system"], BeforeValidator(lenient.lower)]
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
    attachment_type: Annotated[list[Any], FirstError, AsList] = []
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


class CustomFieldPayload(_Lenient):
    name: str
    value: Annotated[str | None, BeforeValidator(lenient.custom_value)] = None


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
        list[CustomFieldPayload], FirstError, BeforeValidator(lenient.custom_fields)
    ] = []
    telephones: Annotated[list[TelephonePayload], FirstError, AsList] = []
    emails: Annotated[list[EmailPayload], FirstError, AsList] = []


class BotVariablePayload(_Lenient):
    var_name: Text = None
    value: Annotated[str | None, BeforeValidator(lenient.custom_value)] = None


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
    initiation_type: Annotated[
        Literal["c", "m", "n", "r"], BeforeValidator(lenient.initiation_type)
    ] = "n"
    delivered_to: OptId = None
    external_protocol: ExternalId = None
    tracking_number: Annotated[str, BeforeValidator(lenient.as_text)]
    url_viewer: Url = None
    talk_histories: Annotated[list[HistoryPayload], FirstError, AsList] = []
    customer: CustomerPayload | None = None
    talk_events: Annotated[list[EventPayload], FirstError, AsList] = []
    bot_variables: Annotated[list[BotVariablePayload], FirstError, AsList] = []
    bot: BotPayload | None = None
    service_catalog: ServiceCatalogPayload | None = None
