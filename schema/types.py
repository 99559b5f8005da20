"""Object types of the talk domain, built from the store's plain documents.

Field meanings come from PipeRun's payload documentation. Lookups of related objects are
delegated to the request's batch loaders (`info.context.loaders`); nothing here does I/O.
"""

from __future__ import annotations

from typing import TypeVar

import strawberry
from strawberry import ID, Info

from gateway.storage.documents import Doc, talk_status
from schema.agent_control import AgentQueueStatus, QueueStatus, Recording
from schema.building import build, field, once_per_document, pii_field
from schema.connections import After, Before, Connection, First, Last, child_page
from schema.context import GraphContext
from schema.contracts import frozen_snapshots
from schema.enums import InitiationType, MessageType, TalkStatus
from schema.loaded import loaded_by
from schema.node import GlobalIdOnRead, Node
from schema.permissions import PII, needs
from schema.scalars import UtcDateTime
from schema.values import (
    Bot,
    BotVariable,
    CustomField,
    Disposition,
    Email,
    ProfileInfo,
    ServiceCatalog,
    Telephone,
)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Ctx = Info[GraphContext, None]

# -- channels ----------------------------------------------------------------------------


@strawberry.type(description="A channel talks and messages go through (WhatsApp, Instagram, ...).")
class Channel(Node):
    id: ID = field(
        "Internal id of the channel in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    description: str | None = field("Name of the channel, e.g. WhatsApp.")
    icon_class: str | None = field("CSS class of the channel's icon in PipeRun.")
    priority: int | None = field("Display priority of the channel.")
    primary_color: str | None = field("Main color of the channel in PipeRun, as #rrggbb.")
    secondary_color: str | None = field("Secondary color of the channel, as #rrggbb.")
    is_active: bool = field("Whether the channel is active.")
    incoming_type: str | None = field("Code of how incoming messages arrive on the channel.")
    enable_emoji: bool = field("Whether the channel accepts emoji.")
    enable_audio: bool = field("Whether the channel accepts audio messages.")
    enable_attachment: bool = field("Whether the channel accepts attachments.")
    allow_campaign: bool = field("Whether campaigns may be sent through the channel.")
    provider_id: int | None = field("Internal id of the channel's provider.")
    unitary_price: str | None = field("Price of one message, as a decimal string.")
    template_price: str | None = field("Price of one template message, as a decimal string.")
    outgoing_type: str | None = field("Code of how outgoing messages leave on the channel.")
    allow_bot: bool = field("Whether bots may answer on the channel.")
    additional_price: str | None = field("Additional price per message, as a decimal string.")
    messages_allowance: int | None = field("Number of messages included in the plan.")


# -- agents and customers -------------------------------------------------------------------


@strawberry.type(
    description=(
        "A PipeRun user who handles talks: a human agent or a bot. Built from the `user` "
        "objects and agent ids seen in payloads; one known only by id has null fields."
    )
)
class Agent(Node):
    id: ID = field(
        "Internal id of the user in PipeRun (what `id` was before global ids).", name="databaseId"
    )
    name: str | None = field("Name of the user.")
    login: str | None = field("Login of the user.")
    email: str | None = pii_field("E-mail address of the user.")
    is_bot: bool | None = field("Whether the user is a bot.")
    is_active: bool | None = field("Whether the user is active.")
    level_id: int | None = field("Internal id of the user's access level.")
    branch_id: int | None = field("Internal id of the user's branch.")
    language_id: int | None = field("Internal id of the user's language.")

    @strawberry.field(
        description=(
            "The last queue status talkgate set for this agent's login through Talk.me "
            "(UNKNOWN if it never did)."
        )
    )
    async def queue_status(self, info: Ctx) -> AgentQueueStatus:
        if not self.login:
            return AgentQueueStatus(status=QueueStatus.UNKNOWN, changed_at=None)
        return await info.context.loaders.queue_status.load(self.login)

    @strawberry.field(description="Talks handled by this agent (`agentId`), newest first.")
    async def talks(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Talk]:
        key = child_page(int(self.id), first, after, last, before)
        return await info.context.loaders.agent_talks.load(key)


@strawberry.type(description="An agent's queue status after talkgate changed it.")
class AgentStatusPayload:
    login: str = strawberry.field(description="Login number of the agent.")
    status: QueueStatus = strawberry.field(description="The new status.")
    changed_at: UtcDateTime = strawberry.field(description="When talkgate changed it.")

    @strawberry.field(
        description=(
            "The agent with this login as talkgate knows it from talks, its `queueStatus` the "
            "new one: select it (with `id`) and a normalized client cache (Apollo, Relay, "
            "urql) updates the agent it holds without a refetch. Null when no talk names "
            "this login yet."
        ),
        extensions=needs("talks:read"),
    )
    async def agent(self, info: Ctx) -> Agent | None:
        loaders = info.context.loaders
        # What this payload reports is the agent's status in it, whatever was read before.
        loaders.queue_status.prime(
            self.login, AgentQueueStatus(status=self.status, changed_at=self.changed_at), force=True
        )
        return await loaders.agent_by_login.load(self.login)


@strawberry.type(description="A customer of the contact center.")
class Customer(Node):
    id: ID = field(
        "Internal id of the customer in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    name: str | None = field("Name of the customer.")
    external_id: str | None = field("Id of the customer in an external system (ERP, CRM).")
    document_number: str | None = pii_field("Document number (CPF or CNPJ).")
    wildcard_01: str | None = pii_field("Free field 1 of the account's customer register.")
    wildcard_02: str | None = pii_field("Free field 2 of the account's customer register.")
    wildcard_03: str | None = pii_field("Free field 3 of the account's customer register.")
    wildcard_04: str | None = pii_field("Free field 4 of the account's customer register.")
    wildcard_05: str | None = pii_field("Free field 5 of the account's customer register.")
    wildcard_06: str | None = pii_field("Free field 6 of the account's customer register.")
    wildcard_07: str | None = pii_field("Free field 7 of the account's customer register.")
    wildcard_08: str | None = pii_field("Free field 8 of the account's customer register.")
    wildcard_09: str | None = pii_field("Free field 9 of the account's customer register.")
    wildcard_10: str | None = pii_field("Free field 10 of the account's customer register.")
    created_at: UtcDateTime | None = field("When the customer was registered.")
    main_sms: int | None = field("Internal id of the customer's main SMS number.")
    main_whatsapp: int | None = field("Internal id of the customer's main WhatsApp number.")
    main_email: int | None = field("Internal id of the customer's main e-mail address.")
    agent_id: ID | None = field("Internal id of the agent in charge of the customer.")
    queue_id: ID | None = field("Internal id of the customer's default queue.")
    customer_group_id: ID | None = field("Internal id of the customer's group.")
    profile_picture_url: str | None = pii_field("URL of the customer's picture.")
    is_priority: bool | None = field("Whether the customer has priority service.")
    last_base_api: str | None = field("Last base API the customer was synchronized with.")
    customer_organization_id: ID | None = field("Internal id of the customer's organization.")
    crmv_user_id: ID | None = field("Internal id of the user in PipeRun CRM.")
    crmv_person_id: ID | None = field("Internal id of the person in PipeRun CRM.")
    is_active: bool | None = field("Whether the customer is active.")
    cxm_user_id: ID | None = field("Internal id of the customer's CXM user.")
    doc: strawberry.Private[Doc]

    @strawberry.field(
        description="Social-network profile of the customer. Needs the customers:pii scope.",
        extensions=needs(PII),
    )
    def profile_info(self) -> ProfileInfo | None:
        info = self.doc.get("profile_info")
        return build(ProfileInfo, info) if info else None

    @strawberry.field(
        description="Custom fields of the customer. Needs the customers:pii scope.",
        extensions=needs(PII),
    )
    def custom_fields(self) -> list[CustomField] | None:
        return [build(CustomField, f) for f in self.doc.get("custom_fields") or ()]

    @strawberry.field(
        description="Telephone numbers of the customer. Needs the customers:pii scope.",
        extensions=needs(PII),
    )
    def telephones(self) -> list[Telephone] | None:
        return [build(Telephone, t) for t in self.doc.get("telephones") or ()]

    @strawberry.field(
        description="E-mail addresses of the customer. Needs the customers:pii scope.",
        extensions=needs(PII),
    )
    def emails(self) -> list[Email] | None:
        return [build(Email, e) for e in self.doc.get("emails") or ()]

    @strawberry.field(description="Talks of this customer, newest first.")
    async def talks(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Talk]:
        key = child_page(int(self.id), first, after, last, before)
        return await info.context.loaders.customer_talks.load(key)


# -- talks ----------------------------------------------------------------------------------


@strawberry.type(description="A tabulation (disposition) recorded on a talk.")
class TalkEvent(Node):
    id: ID = field(
        "Internal id of this tabulation record in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    talk_id: ID = field("Internal id of the talk.")
    event_id: ID | None = field("Internal id of the tabulation option (see `event`).")
    queue_id: ID | None = field("Internal id of the queue the talk was in.")
    is_success: bool = field("Whether the tabulation counts as a positive outcome.")
    created_at: UtcDateTime | None = field("When the tabulation was recorded.")
    agent_id: ID | None = field("Internal id of the agent who recorded it.")
    channel_id: ID | None = field("Internal id of the channel of the talk.")
    reaction_type: str | None = field("Code of what the tabulation does, e.g. f (finish).")
    reaction_type_description: str | None = field("Meaning of `reactionType`, e.g. Finalizar.")
    doc: strawberry.Private[Doc]

    @strawberry.field(description="The tabulation option that was chosen.")
    def event(self) -> Disposition | None:
        event = self.doc.get("event")
        return build(Disposition, event) if event else None

    @strawberry.field(description="The agent who recorded the tabulation.")
    @loaded_by("agent", "agent_id")
    async def agent(self, info: Ctx) -> Agent | None: ...


@strawberry.type(description="A message of a talk (PipeRun `talk_histories`).")
class TalkHistory(Node):
    id: ID = field(
        "Internal id of the message in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    talk_id: ID = field("Internal id of the talk the message belongs to.")
    user_id: ID | None = field("Internal id of the user (agent or bot) tied to the message.")
    queue_id: ID | None = field("Internal id of the queue the talk was in.")
    channel_id: ID | None = field("Internal id of the channel the message went through.")
    message: str | None = field("Text of the message.")
    has_attachment: bool = field("Whether the message carries an attachment.")
    attachment_url: str | None = field("URL of the attachment.")
    attachment_type_id: int | None = field("Internal id of the attachment's type.")
    sent_at: UtcDateTime | None = field("When the message was sent.")
    delivered_at: UtcDateTime | None = field("When the message was delivered.")
    read_at: UtcDateTime | None = field("When the message was read.")
    created_at: UtcDateTime | None = field("When the message was recorded.")
    was_read: bool = field("Whether the message was read.")
    has_highlight: bool = field("Whether the message is highlighted.")
    from_: str | None = pii_field(
        "Sender address as the channel gives it (phone number, handle).", name="from"
    )
    type: MessageType = field("Direction of the message.")
    to: str | None = pii_field("Recipient address as the channel gives it.")
    external_id: str | None = pii_field(
        "Id of the message at the channel's provider (e.g. a WhatsApp wamid, which encodes the "
        "customer's number)."
    )
    left_at: UtcDateTime | None = field("When the message left toward the channel.")
    has_error: bool = field("Whether sending the message failed.")
    campaign_id: ID | None = field("Internal id of the campaign that sent the message.")
    was_blocked: bool = field("Whether the message was blocked.")
    is_template: bool = field("Whether the message is a template message.")
    response_from: str | None = pii_field("Provider id of the message this one answers.")
    fare: str | None = field("Price charged for the message, as a decimal string.")
    error_reason: str | None = field("Why sending failed, when it did.")
    template_id: ID | None = field("Internal id of the template used.")
    original_message: str | None = field("Text of the message before it was changed.")
    subject: str | None = field("Subject of the message (e-mail channels).")
    exceeded_allowance: bool = field("Whether the message went over the plan's allowance.")
    is_intervention: bool = field("Whether an agent sent it while a bot held the talk.")
    is_forwarded: bool = field("Whether the message was forwarded.")
    is_frequently_forwarded: bool = field("Whether the message was forwarded many times.")
    is_ads: bool = field("Whether the message came through a Meta ad link.")
    send_after: UtcDateTime | None = field("Earliest moment the message may be sent.")
    is_reverted_template: bool = field("Whether a template message was reverted.")
    reaction: str | None = field("Reaction the company put on the message.")
    customer_reaction: str | None = field("Reaction the customer put on the message.")
    status: int | None = field("Delivery status code reported by the channel's provider.")
    is_hidden: bool = field("Whether the message is hidden in PipeRun.")
    file_name: str | None = field("File name of the attachment.")
    attachment_type: list[str] = field("Types of the attachment, as the provider names them.")

    @strawberry.field(description="The user (agent or bot) tied to the message.")
    @loaded_by("agent", "user_id")
    async def user(self, info: Ctx) -> Agent | None: ...

    @strawberry.field(description="The channel the message went through.")
    @loaded_by("channel", "channel_id")
    async def channel(self, info: Ctx) -> Channel | None: ...


@strawberry.type(description="A customer-service conversation (PipeRun talk, 'atendimento').")
class Talk(Node):
    id: ID = field(
        "Internal id of the talk in PipeRun (what `id` was before global ids).", name="databaseId"
    )
    customer_id: ID = field("Internal id of the customer.")
    agent_id: ID | None = field("Internal id of the agent.")
    queue_id: ID | None = field("Internal id of the service queue.")
    channel_id: ID = field("Internal id of the channel.")
    priority_id: ID | None = field("Internal id of the priority.")
    finished_at: UtcDateTime | None = field("When the talk was finished.")
    was_success: bool = field("Whether the talk was closed with a positive tabulation.")
    created_at: UtcDateTime = field("When the talk started.")
    has_schedule: bool = field("Whether the talk is scheduled.")
    is_critical: bool = field("Whether the talk is classified as critical.")
    score: int | None = field("Score of the satisfaction survey sent after the talk finished.")
    rating_survey_id: ID | None = field(
        "Internal id of the satisfaction survey sent to the customer after the talk finished."
    )
    started_at: UtcDateTime | None = field("When the talk was sent to the waiting queue.")
    latitude: str | None = pii_field(
        "Latitude of the customer's service installation; only for accounts whose ERP "
        "integration provides the customer's location."
    )
    longitude: str | None = pii_field(
        "Longitude of the customer's service installation; only for accounts whose ERP "
        "integration provides the customer's location."
    )
    initial_sender_channel: ID | None = field("Internal id of the channel that started the talk.")
    is_waiting: bool = field("Whether the talk is on hold.")
    was_expired: bool = field("Whether the talk was closed because its waiting time ran out.")
    delivered_at: UtcDateTime | None = field("When the talk was handed to a human agent.")
    last_waiting_message_at: UtcDateTime | None = field(
        "When the last waiting message was sent to the customer."
    )
    is_shopping: bool = field("Whether the talk was started from HubStore.")
    is_ads: bool = field("Whether the talk has a message received through a Meta ad link.")
    scaled_to_id: ID | None = field("Internal id of the agent the talk was escalated to.")
    client_ip: str | None = pii_field("IP address of the customer; only for Webchat talks.")
    client_user_agent: str | None = pii_field(
        "User agent of the customer's browser; only for Webchat talks."
    )
    survey_id: ID | None = field("Internal id of the survey that generated the talk.")
    talk_category_id: ID | None = field("Internal id of the talk's category.")
    talk_service_id: ID | None = field("Internal id of the talk's service catalog entry.")
    initiation_type: InitiationType = field("How the talk was opened.")
    delivered_to_id: ID | None = field("Internal id of the agent the talk was handed to.")
    external_protocol: str | None = field(
        "External protocol number; only for accounts that set it through the API."
    )
    tracking_number: str = field("Protocol number of the talk.")
    url_viewer: str | None = pii_field(
        "URL of the talk viewer, embeddable in another system with an iframe (the embedding "
        "site's host must be allow-listed by PipeRun for the account)."
    )
    status: TalkStatus = field("Where the talk stands: waiting, in progress or finished.")
    doc: strawberry.Private[Doc]

    @strawberry.field(description="The customer.")
    @loaded_by("customer", "customer_id")
    async def customer(self, info: Ctx) -> Customer | None: ...

    @strawberry.field(description="The agent in charge of the talk.")
    @loaded_by("agent", "agent_id")
    async def agent(self, info: Ctx) -> Agent | None: ...

    @strawberry.field(description="The agent the talk was handed to.")
    @loaded_by("agent", "delivered_to_id")
    async def delivered_to(self, info: Ctx) -> Agent | None: ...

    @strawberry.field(description="The agent the talk was escalated to.")
    @loaded_by("agent", "scaled_to_id")
    async def scaled_to(self, info: Ctx) -> Agent | None: ...

    @strawberry.field(description="The channel of the talk.")
    @loaded_by("channel", "channel_id")
    async def channel(self, info: Ctx) -> Channel | None: ...

    @strawberry.field(description="Messages of the talk, oldest first.")
    @loaded_by("histories", "id", keyed=child_page)
    async def histories(  # type: ignore[empty-body]
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[TalkHistory]: ...

    @strawberry.field(description="Tabulations recorded on the talk, oldest first.")
    @loaded_by("events", "id")
    async def events(self, info: Ctx) -> list[TalkEvent]: ...  # type: ignore[empty-body]

    @strawberry.field(
        description=(
            "The call recording, from Talk.me by `externalProtocol` (or `trackingNumber` when "
            "that is null). Null, with an error at this path, when Talk.me has none or fails. "
            "Needs the recordings:read scope."
        ),
        extensions=needs("recordings:read"),
    )
    async def recording(self, info: Ctx) -> Recording | None:
        protocol = self.external_protocol or self.tracking_number
        return await info.context.loaders.recording.load(protocol)

    @strawberry.field(
        description=(
            "Every accepted delivery that carried this talk, raw as received, oldest first "
            "(the cache is their merge). Needs the admin and customers:pii scopes."
        ),
        extensions=needs("admin", PII),
    )
    async def raw_payloads(self, info: Ctx) -> list[str] | None:
        bodies = await info.context.loaders.raw_payloads.load(int(self.id))
        return [b.decode("utf-8", errors="replace") for b in bodies]

    @strawberry.field(description="Variables captured by the bot that did the pre-service.")
    def bot_variables(self) -> list[BotVariable]:
        return [build(BotVariable, v) for v in self.doc.get("bot_variables") or ()]

    @strawberry.field(description="The bot that did the pre-service.")
    def bot(self) -> Bot | None:
        bot = self.doc.get("bot")
        return build(Bot, bot) if bot else None

    @strawberry.field(description="The service (catalog entry) the talk is about.")
    def service_catalog(self) -> ServiceCatalog | None:
        service = self.doc.get("service_catalog")
        return build(ServiceCatalog, service) if service else None


# Built once per document and shared: the fast path may keep their completed fields on them.
frozen_snapshots(Talk, TalkHistory, TalkEvent, Customer, Agent, Channel)
for _node in (Talk, TalkHistory, TalkEvent, Customer, Agent, Channel):
    _node.global_id = GlobalIdOnRead(_node.__name__)  # type: ignore[assignment]


@once_per_document
def talk_from_doc(doc: Doc) -> Talk:
    return build(
        Talk,
        doc,
        doc=doc,
        scaled_to_id=doc.get("scaled_to"),
        delivered_to_id=doc.get("delivered_to"),
        initiation_type=InitiationType(doc.get("initiation_type", "n")),
        status=TalkStatus(talk_status(doc)),
    )


@once_per_document
def history_from_doc(doc: Doc) -> TalkHistory:
    return build(TalkHistory, doc, from_=doc.get("from"), type=MessageType(doc["type"]))


@once_per_document
def event_from_doc(doc: Doc) -> TalkEvent:
    return build(TalkEvent, doc, doc=doc)


@once_per_document
def customer_from_doc(doc: Doc) -> Customer:
    return build(Customer, doc, doc=doc)


@once_per_document
def agent_from_doc(doc: Doc) -> Agent:
    return build(Agent, doc)


@once_per_document
def channel_from_doc(doc: Doc) -> Channel:
    return build(Channel, doc)
