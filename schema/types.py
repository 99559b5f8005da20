"""Object types of the talk domain, built from the store's plain documents.

Field meanings come from PipeRun's payload documentation. Lookups of related objects are
delegated to the request's batch loaders (`info.context.loaders`); nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Final, Generic, Protocol, TypeVar, cast

import strawberry
from strawberry import ID, Info

from gateway.storage import cursor
from gateway.storage.documents import Doc, talk_status
from schema.agent_control import AgentQueueStatus, QueueStatus, Recording
from schema.context import ChildPageKey, GraphContext, PageArgs
from schema.contracts import frozen_snapshots
from schema.enums import InitiationType, MessageType, TalkStatus
from schema.loaded import loaded_by
from schema.node import GlobalIdOnRead, Node
from schema.permissions import PII, needs
from schema.scalars import UtcDateTime

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Ctx = Info[GraphContext, None]

DEFAULT_FIRST: Final = 20  # a connection's page size when neither `first` nor `last` is given
First = Annotated[
    int | None,
    strawberry.argument(
        description=(
            "Page size, 0 to 100, from the list's start or `after` "
            f"({DEFAULT_FIRST} when neither `first` nor `last` is given)."
        )
    ),
]
After = Annotated[
    str | None, strawberry.argument(description="Cursor of the item to start after (`endCursor`).")
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description=(
            "Page size, 0 to 100, back from the list's end or `before` (backward pagination; "
            "give `first` or `last`, not both)."
        )
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(
        description="Cursor of the item to end just before (`startCursor`), with `last`."
    ),
]


def child_page(
    parent_id: int,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> ChildPageKey:
    """The loader key of a page of a parent's children (`loaded_by`'s `keyed`)."""
    return ChildPageKey(parent_id, PageArgs(first, after, last, before))


_INIT_FIELDS: dict[type, tuple[tuple[str, ...], frozenset[str], bool]] = {}
# Objects remembered for each kind built from stored documents (_once_per_document).
_REMEMBERED_PER_KIND: Final = 4096


def build(cls: type[T], source: Doc, /, **extra: Any) -> T:
    """An instance of the strawberry type `cls` from a stored document (keys = field names)."""
    known = _INIT_FIELDS.get(cls)
    if known is None:
        known = _init_fields(cls)
        _INIT_FIELDS[cls] = known
    names, accepted, direct = known
    values = dict(zip(names, map(source.get, names), strict=True))
    values.update(extra)
    if not direct or not accepted.issuperset(extra):
        return cls(**values)  # and its TypeError for a field it does not have
    # Every field is given, so the dataclass __init__ would only set them; skipping its
    # keyword-argument handling pays, as a page of talks makes ~200 of these.
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def _init_fields(cls: type) -> tuple[tuple[str, ...], frozenset[str], bool]:
    """The fields __init__ takes, and whether setting them is all it does."""
    fields = dataclasses.fields(cls)
    # A Node's global id is the class's to encode when read (schema.node.GlobalIdOnRead).
    names = tuple(
        f.name
        for f in fields
        if f.init and not isinstance(cls.__dict__.get(f.name), GlobalIdOnRead)
    )
    params = getattr(cls, "__dataclass_params__", None)
    # The generated __init__ leaves alone a field it does not take unless that field has a
    # default factory (the types here never write their own __init__).
    direct = (
        all(f.init or f.default_factory is dataclasses.MISSING for f in fields)
        and params is not None
        and params.init
        and not params.frozen
        and not hasattr(cls, "__post_init__")
        and not hasattr(cls, "__slots__")
    )
    return names, frozenset(names), direct


def _field(description: str, **kwargs: Any) -> Any:
    return strawberry.field(description=description, **kwargs)


def _pii(description: str, **kwargs: Any) -> Any:
    """A field holding personal data: null, with a FORBIDDEN error, without customers:pii
    (schema.permissions.PII_FIELDS lists them, with why)."""
    return strawberry.field(
        description=description + " Needs the customers:pii scope.",
        extensions=needs(PII),
        **kwargs,
    )


# -- pagination -----------------------------------------------------------------------------


@strawberry.type(description="Where a page of a connection begins and ends (Relay's PageInfo).")
class PageInfo:
    has_next_page: bool = _field(
        "Whether items follow this page: more after it, or (a backward page, `last`/`before`)"
        " the items from `before` on."
    )
    has_previous_page: bool = _field(
        "Whether items precede this page: more before it (a backward page), or (`first`/"
        "`after`) the items up to `after`."
    )
    start_cursor: str | None = _field(
        "Cursor of the first item of this page; pass it as `before` (with `last`) to get the"
        " previous page."
    )
    end_cursor: str | None = _field(
        "Cursor of the last item of this page; pass it as `after` to get the next page."
    )


@strawberry.type(description="One item of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = _field("Opaque cursor of this item.")
    node: T = _field("The item.")


class _EncodedOnRead:
    """A cursor field of an Edge or a PageInfo made from a store page's sort key
    (`connection_parts`): the cursor is encoded when the field is first read, then kept on
    the object as if __init__ had been given it. A page whose selection reads no cursor,
    as most do, so encodes none (each was ~1.5 us, a sixth of a 100-talk page's read).

    A non-data descriptor, set on the class once strawberry made it: an object built by
    __init__ holds its own value, which attribute lookup finds first, and plain-field
    execution (gateway/graphql/execution.py) reads the field with getattr either way."""

    def __init__(self, name: str, key: str = "_key") -> None:
        self._name = name
        self._key = key

    def __get__(self, instance: object, owner: type | None = None) -> str | None:
        if instance is None:
            raise AttributeError(self._name)  # as for a dataclass field without a default
        values = instance.__dict__
        key: tuple[int, ...] | None = values[self._key]
        value = None if key is None else cursor.encode(values["_kind"], *key)
        values[self._name] = value
        return value


Edge.cursor = _EncodedOnRead("cursor")  # type: ignore[assignment]
PageInfo.start_cursor = _EncodedOnRead("start_cursor", "_start")  # type: ignore[assignment]
PageInfo.end_cursor = _EncodedOnRead("end_cursor")  # type: ignore[assignment]


def connection_parts(
    kind: str,
    keys: Sequence[tuple[int, ...]],
    nodes: Iterable[T],
    has_next: bool,
    has_previous: bool = False,
) -> tuple[list[Edge[T]], PageInfo]:
    """The edges of `nodes` and the page info of a store page (`gateway.storage.records.
    Page`: its cursors' `kind`, each item's sort key in `keys`), their cursors encoded
    only when read (`_EncodedOnRead`). Built without __init__, which would want them."""
    new = object.__new__
    edges: list[Edge[T]] = []
    for key, node in zip(keys, nodes, strict=True):
        edge = new(Edge)
        edge.__dict__ = {"node": node, "_kind": kind, "_key": key}
        edges.append(edge)
    info = new(PageInfo)
    info.__dict__ = {
        "has_next_page": has_next,
        "has_previous_page": has_previous,
        "_kind": kind,
        "_start": keys[0] if keys else None,
        "_key": keys[-1] if keys else None,
    }
    return edges, info


@strawberry.type(description="A page of items, Relay style, with opaque keyset cursors.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = _field("The items of this page, in order.")
    page_info: PageInfo = _field("Whether more items follow, and the cursor to get them.")
    count: strawberry.Private[Any]

    @strawberry.field(description="How many items the whole list holds, across all pages.")
    async def total_count(self) -> int:
        result: int = await self.count()
        return result


# -- small nested objects -------------------------------------------------------------------


@strawberry.type(description="A channel talks and messages go through (WhatsApp, Instagram, ...).")
class Channel(Node):
    id: ID = _field(
        "Internal id of the channel in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    description: str | None = _field("Name of the channel, e.g. WhatsApp.")
    icon_class: str | None = _field("CSS class of the channel's icon in PipeRun.")
    priority: int | None = _field("Display priority of the channel.")
    primary_color: str | None = _field("Main color of the channel in PipeRun, as #rrggbb.")
    secondary_color: str | None = _field("Secondary color of the channel, as #rrggbb.")
    is_active: bool = _field("Whether the channel is active.")
    incoming_type: str | None = _field("Code of how incoming messages arrive on the channel.")
    enable_emoji: bool = _field("Whether the channel accepts emoji.")
    enable_audio: bool = _field("Whether the channel accepts audio messages.")
    enable_attachment: bool = _field("Whether the channel accepts attachments.")
    allow_campaign: bool = _field("Whether campaigns may be sent through the channel.")
    provider_id: int | None = _field("Internal id of the channel's provider.")
    unitary_price: str | None = _field("Price of one message, as a decimal string.")
    template_price: str | None = _field("Price of one template message, as a decimal string.")
    outgoing_type: str | None = _field("Code of how outgoing messages leave on the channel.")
    allow_bot: bool = _field("Whether bots may answer on the channel.")
    additional_price: str | None = _field("Additional price per message, as a decimal string.")
    messages_allowance: int | None = _field("Number of messages included in the plan.")


@strawberry.type(description="A tabulation (disposition) option, as configured in PipeRun.")
class Disposition:
    id: ID = _field("Internal id of the tabulation.")
    description: str | None = _field("Name of the tabulation, e.g. 'Finalizado pelo BOT'.")
    external_id: str | None = _field("Id of the tabulation in an external system.")


@strawberry.type(description="A variable captured by the bot during the pre-service.")
class BotVariable:
    var_name: str | None = _field("Name of the variable, e.g. @bot_score.")
    value: str | None = _pii("Captured value, as text.")


@strawberry.type(description="The bot that did the pre-service of a talk.")
class Bot:
    id: ID = _field("Internal id of the bot.")
    description: str | None = _field("Name of the bot.")


@strawberry.type(description="An entry of the service catalog a talk is about.")
class ServiceCatalog:
    id: ID = _field("Internal id of the service.")
    description: str | None = _field("Name of the service.")
    external_id: str | None = _field("Id of the service in an external system.")


@strawberry.type(description="A custom field of a customer: a name and its value as text.")
class CustomField:
    name: str = _field("Name of the custom field, as configured in PipeRun.")
    value: str | None = _field("Value of the field as text (JSON for structured values).")


@strawberry.type(description="A telephone number of a customer.")
class Telephone:
    id: ID | None = _field("Internal id of the telephone.")
    customer_id: ID | None = _field("Internal id of the customer the number belongs to.")
    area_code: str | None = _field("Area code (DDD).")
    number: str | None = _field("Number without country and area code.")
    type: str | None = _field("Kind of number as PipeRun codes it, e.g. m for mobile.")
    level_id: str | None = _field("Level code of the number in PipeRun.")
    has_sms: bool = _field("Whether the number receives SMS.")
    has_whatsapp: bool = _field("Whether the number has WhatsApp.")
    has_whatsapp_api: bool = _field("Whether the number is reached through the WhatsApp API.")
    wa_is_business: bool = _field("Whether the WhatsApp account is a business account.")
    wa_is_enterprise: bool = _field("Whether the WhatsApp account is an enterprise account.")
    wa_contact_name: str | None = _field("Contact name on WhatsApp.")
    wa_pushname: str | None = _field("Push name the customer set on WhatsApp.")
    wa_verified_level: str | None = _field("WhatsApp verification level.")
    wa_verified_name: str | None = _field("Verified WhatsApp business name.")
    wa_profile_picture: str | None = _field("URL of the WhatsApp profile picture.")
    session_expires_at: UtcDateTime | None = _field("When the WhatsApp session window closes.")
    insert_origin: str | None = _field("How the number entered PipeRun, e.g. MAILING.")
    inserted_by: int | None = _field("Internal id of the user who added the number.")
    country_code: str | None = _field("Country calling code, e.g. 55.")
    country_iso2: str | None = _field("ISO 3166-1 alpha-2 country, e.g. br.")
    full_number: str | None = _field("Area code and number.")
    full_number_cc: str | None = _field("Number with country code, e.g. +55 51999887766.")


@strawberry.type(description="An e-mail address of a customer.")
class Email:
    id: ID | None = _field("Internal id of the e-mail address.")
    customer_id: ID | None = _field("Internal id of the customer the address belongs to.")
    email: str | None = _field("The address.")
    level_id: str | None = _field("Level code of the address in PipeRun.")
    insert_origin: str | None = _field("How the address entered PipeRun, e.g. AUTO.")
    inserted_by: int | None = _field("Internal id of the user who added the address.")
    unsubscribed_at: UtcDateTime | None = _field("When the customer unsubscribed, if ever.")


@strawberry.type(description="Social-network profile of a customer (Instagram, Facebook).")
class ProfileInfo:
    id: str | None = _field("Id of the profile on the social network.")
    name: str | None = _field("Display name on the profile.")
    username: str | None = _field("Username (handle) on the profile.")
    profile_pic: str | None = _field("URL of the profile picture.")
    is_verified_user: bool = _field("Whether the profile is verified.")
    follower_count: int | None = _field("Number of followers.")
    is_user_follow_business: bool = _field("Whether the customer follows the company.")
    is_business_follow_user: bool = _field("Whether the company follows the customer.")


# -- agents and customers -------------------------------------------------------------------


@strawberry.type(
    description=(
        "A PipeRun user who handles talks: a human agent or a bot. Built from the `user` "
        "objects and agent ids seen in payloads; one known only by id has null fields."
    )
)
class Agent(Node):
    id: ID = _field(
        "Internal id of the user in PipeRun (what `id` was before global ids).", name="databaseId"
    )
    name: str | None = _field("Name of the user.")
    login: str | None = _field("Login of the user.")
    email: str | None = _pii("E-mail address of the user.")
    is_bot: bool | None = _field("Whether the user is a bot.")
    is_active: bool | None = _field("Whether the user is active.")
    level_id: int | None = _field("Internal id of the user's access level.")
    branch_id: int | None = _field("Internal id of the user's branch.")
    language_id: int | None = _field("Internal id of the user's language.")

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
    id: ID = _field(
        "Internal id of the customer in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    name: str | None = _field("Name of the customer.")
    external_id: str | None = _field("Id of the customer in an external system (ERP, CRM).")
    document_number: str | None = _pii("Document number (CPF or CNPJ).")
    wildcard_01: str | None = _pii("Free field 1 of the account's customer register.")
    wildcard_02: str | None = _pii("Free field 2 of the account's customer register.")
    wildcard_03: str | None = _pii("Free field 3 of the account's customer register.")
    wildcard_04: str | None = _pii("Free field 4 of the account's customer register.")
    wildcard_05: str | None = _pii("Free field 5 of the account's customer register.")
    wildcard_06: str | None = _pii("Free field 6 of the account's customer register.")
    wildcard_07: str | None = _pii("Free field 7 of the account's customer register.")
    wildcard_08: str | None = _pii("Free field 8 of the account's customer register.")
    wildcard_09: str | None = _pii("Free field 9 of the account's customer register.")
    wildcard_10: str | None = _pii("Free field 10 of the account's customer register.")
    created_at: UtcDateTime | None = _field("When the customer was registered.")
    main_sms: int | None = _field("Internal id of the customer's main SMS number.")
    main_whatsapp: int | None = _field("Internal id of the customer's main WhatsApp number.")
    main_email: int | None = _field("Internal id of the customer's main e-mail address.")
    agent_id: ID | None = _field("Internal id of the agent in charge of the customer.")
    queue_id: ID | None = _field("Internal id of the customer's default queue.")
    customer_group_id: ID | None = _field("Internal id of the customer's group.")
    profile_picture_url: str | None = _pii("URL of the customer's picture.")
    is_priority: bool | None = _field("Whether the customer has priority service.")
    last_base_api: str | None = _field("Last base API the customer was synchronized with.")
    customer_organization_id: ID | None = _field("Internal id of the customer's organization.")
    crmv_user_id: ID | None = _field("Internal id of the user in PipeRun CRM.")
    crmv_person_id: ID | None = _field("Internal id of the person in PipeRun CRM.")
    is_active: bool | None = _field("Whether the customer is active.")
    cxm_user_id: ID | None = _field("Internal id of the customer's CXM user.")
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
    id: ID = _field(
        "Internal id of this tabulation record in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    talk_id: ID = _field("Internal id of the talk.")
    event_id: ID | None = _field("Internal id of the tabulation option (see `event`).")
    queue_id: ID | None = _field("Internal id of the queue the talk was in.")
    is_success: bool = _field("Whether the tabulation counts as a positive outcome.")
    created_at: UtcDateTime | None = _field("When the tabulation was recorded.")
    agent_id: ID | None = _field("Internal id of the agent who recorded it.")
    channel_id: ID | None = _field("Internal id of the channel of the talk.")
    reaction_type: str | None = _field("Code of what the tabulation does, e.g. f (finish).")
    reaction_type_description: str | None = _field("Meaning of `reactionType`, e.g. Finalizar.")
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
    id: ID = _field(
        "Internal id of the message in PipeRun (what `id` was before global ids).",
        name="databaseId",
    )
    talk_id: ID = _field("Internal id of the talk the message belongs to.")
    user_id: ID | None = _field("Internal id of the user (agent or bot) tied to the message.")
    queue_id: ID | None = _field("Internal id of the queue the talk was in.")
    channel_id: ID | None = _field("Internal id of the channel the message went through.")
    message: str | None = _field("Text of the message.")
    has_attachment: bool = _field("Whether the message carries an attachment.")
    attachment_url: str | None = _field("URL of the attachment.")
    attachment_type_id: int | None = _field("Internal id of the attachment's type.")
    sent_at: UtcDateTime | None = _field("When the message was sent.")
    delivered_at: UtcDateTime | None = _field("When the message was delivered.")
    read_at: UtcDateTime | None = _field("When the message was read.")
    created_at: UtcDateTime | None = _field("When the message was recorded.")
    was_read: bool = _field("Whether the message was read.")
    has_highlight: bool = _field("Whether the message is highlighted.")
    from_: str | None = _pii(
        "Sender address as the channel gives it (phone number, handle).", name="from"
    )
    type: MessageType = _field("Direction of the message.")
    to: str | None = _pii("Recipient address as the channel gives it.")
    external_id: str | None = _pii(
        "Id of the message at the channel's provider (e.g. a WhatsApp wamid, which encodes the "
        "customer's number)."
    )
    left_at: UtcDateTime | None = _field("When the message left toward the channel.")
    has_error: bool = _field("Whether sending the message failed.")
    campaign_id: ID | None = _field("Internal id of the campaign that sent the message.")
    was_blocked: bool = _field("Whether the message was blocked.")
    is_template: bool = _field("Whether the message is a template message.")
    response_from: str | None = _pii("Provider id of the message this one answers.")
    fare: str | None = _field("Price charged for the message, as a decimal string.")
    error_reason: str | None = _field("Why sending failed, when it did.")
    template_id: ID | None = _field("Internal id of the template used.")
    original_message: str | None = _field("Text of the message before it was changed.")
    subject: str | None = _field("Subject of the message (e-mail channels).")
    exceeded_allowance: bool = _field("Whether the message went over the plan's allowance.")
    is_intervention: bool = _field("Whether an agent sent it while a bot held the talk.")
    is_forwarded: bool = _field("Whether the message was forwarded.")
    is_frequently_forwarded: bool = _field("Whether the message was forwarded many times.")
    is_ads: bool = _field("Whether the message came through a Meta ad link.")
    send_after: UtcDateTime | None = _field("Earliest moment the message may be sent.")
    is_reverted_template: bool = _field("Whether a template message was reverted.")
    reaction: str | None = _field("Reaction the company put on the message.")
    customer_reaction: str | None = _field("Reaction the customer put on the message.")
    status: int | None = _field("Delivery status code reported by the channel's provider.")
    is_hidden: bool = _field("Whether the message is hidden in PipeRun.")
    file_name: str | None = _field("File name of the attachment.")
    attachment_type: list[str] = _field("Types of the attachment, as the provider names them.")

    @strawberry.field(description="The user (agent or bot) tied to the message.")
    @loaded_by("agent", "user_id")
    async def user(self, info: Ctx) -> Agent | None: ...

    @strawberry.field(description="The channel the message went through.")
    @loaded_by("channel", "channel_id")
    async def channel(self, info: Ctx) -> Channel | None: ...


@strawberry.type(description="A customer-service conversation (PipeRun talk, 'atendimento').")
class Talk(Node):
    id: ID = _field(
        "Internal id of the talk in PipeRun (what `id` was before global ids).", name="databaseId"
    )
    customer_id: ID = _field("Internal id of the customer.")
    agent_id: ID | None = _field("Internal id of the agent.")
    queue_id: ID | None = _field("Internal id of the service queue.")
    channel_id: ID = _field("Internal id of the channel.")
    priority_id: ID | None = _field("Internal id of the priority.")
    finished_at: UtcDateTime | None = _field("When the talk was finished.")
    was_success: bool = _field("Whether the talk was closed with a positive tabulation.")
    created_at: UtcDateTime = _field("When the talk started.")
    has_schedule: bool = _field("Whether the talk is scheduled.")
    is_critical: bool = _field("Whether the talk is classified as critical.")
    score: int | None = _field("Score of the satisfaction survey sent after the talk finished.")
    rating_survey_id: ID | None = _field(
        "Internal id of the satisfaction survey sent to the customer after the talk finished."
    )
    started_at: UtcDateTime | None = _field("When the talk was sent to the waiting queue.")
    latitude: str | None = _pii(
        "Latitude of the customer's service installation; only for accounts whose ERP "
        "integration provides the customer's location."
    )
    longitude: str | None = _pii(
        "Longitude of the customer's service installation; only for accounts whose ERP "
        "integration provides the customer's location."
    )
    initial_sender_channel: ID | None = _field("Internal id of the channel that started the talk.")
    is_waiting: bool = _field("Whether the talk is on hold.")
    was_expired: bool = _field("Whether the talk was closed because its waiting time ran out.")
    delivered_at: UtcDateTime | None = _field("When the talk was handed to a human agent.")
    last_waiting_message_at: UtcDateTime | None = _field(
        "When the last waiting message was sent to the customer."
    )
    is_shopping: bool = _field("Whether the talk was started from HubStore.")
    is_ads: bool = _field("Whether the talk has a message received through a Meta ad link.")
    scaled_to_id: ID | None = _field("Internal id of the agent the talk was escalated to.")
    client_ip: str | None = _pii("IP address of the customer; only for Webchat talks.")
    client_user_agent: str | None = _pii(
        "User agent of the customer's browser; only for Webchat talks."
    )
    survey_id: ID | None = _field("Internal id of the survey that generated the talk.")
    talk_category_id: ID | None = _field("Internal id of the talk's category.")
    talk_service_id: ID | None = _field("Internal id of the talk's service catalog entry.")
    initiation_type: InitiationType = _field("How the talk was opened.")
    delivered_to_id: ID | None = _field("Internal id of the agent the talk was handed to.")
    external_protocol: str | None = _field(
        "External protocol number; only for accounts that set it through the API."
    )
    tracking_number: str = _field("Protocol number of the talk.")
    url_viewer: str | None = _pii(
        "URL of the talk viewer, embeddable in another system with an iframe (the embedding "
        "site's host must be allow-listed by PipeRun for the account)."
    )
    status: TalkStatus = _field("Where the talk stands: waiting, in progress or finished.")
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


class OncePerDocument(Protocol[T_co]):
    """What `_once_per_document` makes: the object of one document, or of many at once."""

    def __call__(self, doc: Doc, /) -> T_co: ...

    def many(self, docs: Iterable[Doc], /) -> Sequence[T_co]: ...


def _once_per_document(make: Callable[[Doc], T]) -> OncePerDocument[T]:
    """`make`, run once for each document object while it is remembered.

    The store hands out the same dict for a row whose stored text has not changed
    (gateway/storage/docs.py), so a page read again builds nothing again. The objects are
    shared between requests and callers: they hold no per-request state, and nothing writes
    to them (what a caller may see is decided per field, by the schema's permissions).
    Remembered least recently used first out; each entry keeps its document alive, so the
    document's id cannot be reused while it is remembered. Called on the event loop only.

    `.many(docs)` is the objects of `docs` in order, those remembered found without a call
    each (with connection() and a loader's first priming taking them so, W1 and W2 cost
    ~0.13 M instructions less per request under bench.instructions).
    """
    made: OrderedDict[int, tuple[Doc, T]] = OrderedDict()

    def build_once(doc: Doc) -> T:
        key = id(doc)
        entry = made.get(key)
        if entry is not None and entry[0] is doc:
            made.move_to_end(key)
            return entry[1]
        built = make(doc)
        made[key] = (doc, built)
        if len(made) > _REMEMBERED_PER_KIND:
            made.popitem(last=False)
        return built

    def many(docs: Iterable[Doc]) -> list[T]:
        found, used = made.get, made.move_to_end
        built: list[T] = []
        for doc in docs:
            key = id(doc)
            entry = found(key)
            if entry is not None and entry[0] is doc:
                used(key)
                built.append(entry[1])
            else:
                built.append(build_once(doc))
        return built

    once = cast(OncePerDocument[T], functools.update_wrapper(build_once, make))
    once.many = many  # type: ignore[method-assign]
    return once


# Built once per document and shared: the fast path may keep their completed fields on them.
frozen_snapshots(Talk, TalkHistory, TalkEvent, Customer, Agent, Channel)
for _node in (Talk, TalkHistory, TalkEvent, Customer, Agent, Channel):
    _node.global_id = GlobalIdOnRead(_node.__name__)  # type: ignore[assignment]


@_once_per_document
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


@_once_per_document
def history_from_doc(doc: Doc) -> TalkHistory:
    return build(TalkHistory, doc, from_=doc.get("from"), type=MessageType(doc["type"]))


@_once_per_document
def event_from_doc(doc: Doc) -> TalkEvent:
    return build(TalkEvent, doc, doc=doc)


@_once_per_document
def customer_from_doc(doc: Doc) -> Customer:
    return build(Customer, doc, doc=doc)


@_once_per_document
def agent_from_doc(doc: Doc) -> Agent:
    return build(Agent, doc)


@_once_per_document
def channel_from_doc(doc: Doc) -> Channel:
    return build(Channel, doc)
