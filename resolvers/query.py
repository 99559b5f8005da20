"""Root query fields."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Final, cast

import strawberry
from strawberry import ID, Info

from gateway.errors import BadUserInput
from gateway.storage.records import StoreOrder, TalkQuery
from resolvers import dead_letters
from resolvers.context import RequestContext
from resolvers.loaders import ByIdLoader
from resolvers.pagination import MAX_FIRST, connection, page_request, parse_id, selects
from schema.admin import DeadLetter
from schema.agent_control import Recording
from schema.connections import After, Before, Connection, First, Last
from schema.enums import TalkOrder
from schema.inputs import TalkFilter
from schema.node import Node, database_id, decode
from schema.permissions import needs
from schema.types import Agent, Customer, Talk, agent_from_doc, customer_from_doc, talk_from_doc

Ctx = Info[RequestContext, None]


def _optional_id(value: ID | None, argument: str, type_name: str | None = None) -> int | None:
    if value is None:
        return None
    return (
        parse_id(value, argument) if type_name is None else database_id(value, argument, type_name)
    )


# The request loader (resolvers.loaders.RequestLoaders) of each Node type, by name: made
# only for the types a request names.
_LOADER_OF: Final = {
    "Talk": "talk",
    "TalkHistory": "history",
    "TalkEvent": "event",
    "Customer": "customer",
    "Agent": "agent",
    "Channel": "channel",
}


def _load_node(info: Ctx, value: ID, argument: str) -> Awaitable[Node | None]:
    """The load of the object a global id names, through the request's loaders (so the
    ids of one `nodes` are one store read per type); None when the id is well formed but
    names nothing."""
    type_name, number = decode(str(value), argument)
    loader: ByIdLoader[Any] = getattr(info.context.loaders, _LOADER_OF[type_name])
    return cast(Awaitable[Node | None], loader.load(number))


def talk_query(talk_filter: TalkFilter | None) -> TalkQuery:
    """The store's filter for a GraphQL TalkFilter."""
    if talk_filter is None:
        return TalkQuery()
    f = talk_filter
    return TalkQuery(
        customer_id=_optional_id(f.customer_id, "filter.customerId", "Customer"),
        agent_id=_optional_id(f.agent_id, "filter.agentId", "Agent"),
        queue_id=_optional_id(f.queue_id, "filter.queueId"),
        channel_id=_optional_id(f.channel_id, "filter.channelId", "Channel"),
        tracking_number=f.tracking_number,
        external_protocol=f.external_protocol,
        created_from=None if f.created_from is None else datetime.fromisoformat(f.created_from),
        created_to=None if f.created_to is None else datetime.fromisoformat(f.created_to),
        status=None if f.status is None else f.status.name,
        was_success=f.was_success,
        is_critical=f.is_critical,
        text=f.text,
    )


@strawberry.type(description="Reading the contact center: talks, customers and agents.")
class Query:
    @strawberry.field(
        description=(
            "The object a global `id` names (any type implementing Node), as its own root "
            "field would answer it; null when there is none. Needs the talks:read scope."
        ),
        extensions=needs("talks:read"),
    )
    async def node(
        self,
        info: Ctx,
        id: Annotated[ID, strawberry.argument(description="Global id of the object.")],
    ) -> Node | None:
        return await _load_node(info, id, "id")

    @strawberry.field(
        description=(
            f"The objects global ids name, in the order given, null where there is none; at "
            f"most {MAX_FIRST} ids. Needs the talks:read scope."
        ),
        extensions=needs("talks:read"),
    )
    async def nodes(
        self,
        info: Ctx,
        ids: Annotated[
            list[ID], strawberry.argument(description=f"Global ids, at most {MAX_FIRST}.")
        ],
    ) -> list[Node | None] | None:
        if len(ids) > MAX_FIRST:
            raise BadUserInput(f"ids holds at most {MAX_FIRST} ids", argument="ids")
        # All decoded before any is read: one bad id refuses the whole field.
        loads = [_load_node(info, value, "ids") for value in ids]
        return list(await asyncio.gather(*loads))

    @strawberry.field(
        description="One talk, by its id or by its protocol number (give exactly one).",
        extensions=needs("talks:read"),
    )
    async def talk(
        self,
        info: Ctx,
        id: Annotated[
            ID | None,
            strawberry.argument(
                description="Id of the talk: its global `id` or PipeRun's `databaseId`."
            ),
        ] = None,
        tracking_number: Annotated[
            str | None, strawberry.argument(description="Protocol number of the talk.")
        ] = None,
    ) -> Talk | None:
        if (id is None) == (tracking_number is None):
            raise BadUserInput("give exactly one of id and trackingNumber")
        if id is not None:
            return await info.context.loaders.talk.load(database_id(id, "id", "Talk"))
        assert tracking_number is not None
        doc = await info.context.store.talk_by_tracking_number(tracking_number)
        return talk_from_doc(doc) if doc else None

    @strawberry.field(
        description="Talks matching a filter, one page at a time.",
        extensions=needs("talks:read"),
    )
    async def talks(
        self,
        info: Ctx,
        filter: Annotated[
            TalkFilter | None, strawberry.argument(description="Conditions the talks must meet.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        order_by: Annotated[
            TalkOrder, strawberry.argument(description="Ordering of the talks.")
        ] = TalkOrder.CREATED_AT_DESC,
    ) -> Connection[Talk] | None:
        page = page_request(first, after, last, before)
        query = talk_query(filter)
        store = info.context.store
        # A page showing its talks' customers reads them with the talks, in one store call.
        with_customers = selects(info, "edges", "node", "customer")
        pages = await store.talk_pages(
            query=query,
            page=page,
            order=StoreOrder(order_by.value),
            with_customers=with_customers,
        )
        found = pages[None]
        if found.customers:
            info.context.loaders.customer.prime(found.customers)

        async def count() -> int:
            return (await store.count_talks(query=query))[None]

        return connection(found, talk_from_doc, count)

    @strawberry.field(description="One customer by id.", extensions=needs("talks:read"))
    async def customer(
        self,
        info: Ctx,
        id: Annotated[
            ID,
            strawberry.argument(
                description="Id of the customer: its global `id` or PipeRun's `databaseId`."
            ),
        ],
    ) -> Customer | None:
        return await info.context.loaders.customer.load(database_id(id, "id", "Customer"))

    @strawberry.field(
        description="Customers, by id, optionally searched by name or external id.",
        extensions=needs("talks:read"),
    )
    async def customers(
        self,
        info: Ctx,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Part of the name (case and accents ignored), or the exact external id."
            ),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Customer] | None:
        page = page_request(first, after, last, before)
        store = info.context.store
        result = await store.customer_page(search=search, page=page)

        async def count() -> int:
            return await store.count_customers(search=search)

        return connection(result, customer_from_doc, count)

    @strawberry.field(
        description="One agent, by id or by login (give exactly one).",
        extensions=needs("talks:read"),
    )
    async def agent(
        self,
        info: Ctx,
        id: Annotated[
            ID | None,
            strawberry.argument(
                description="Id of the agent: its global `id` or PipeRun's `databaseId`."
            ),
        ] = None,
        login: Annotated[str | None, strawberry.argument(description="Login of the agent.")] = None,
    ) -> Agent | None:
        if (id is None) == (login is None):
            raise BadUserInput("give exactly one of id and login")
        if id is not None:
            return await info.context.loaders.agent.load(database_id(id, "id", "Agent"))
        assert login is not None
        return await info.context.loaders.agent_by_login.load(login)

    @strawberry.field(description="Agents, by id.", extensions=needs("talks:read"))
    async def agents(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Agent] | None:
        page = page_request(first, after, last, before)
        store = info.context.store
        result = await store.agent_page(page=page)
        return connection(result, agent_from_doc, store.count_agents)

    @strawberry.field(
        description="The public link to a call recording, from Talk.me by protocol number.",
        extensions=needs("recordings:read"),
    )
    async def recording(
        self,
        info: Ctx,
        protocol: Annotated[str, strawberry.argument(description="Protocol number of the call.")],
    ) -> Recording | None:
        if not protocol.strip():
            raise BadUserInput("protocol must not be empty", argument="protocol")
        return await info.context.loaders.recording.load(protocol)

    @strawberry.field(
        description=(
            "Bodies talkgate refused, most recent first, kept with their reason so nothing"
            " sent is lost. Needs the admin scope."
        ),
        extensions=needs("admin"),
    )
    async def dead_letters(
        self,
        info: Ctx,
        first: Annotated[
            int, strawberry.argument(description="How many, most recent first; 1 to 100.")
        ] = 20,
        after: After = None,
        reason: Annotated[
            str | None,
            strawberry.argument(description="Only those whose reason contains this (any case)."),
        ] = None,
    ) -> Connection[DeadLetter] | None:
        return await dead_letters.page(info.context.services, first, after, reason)
