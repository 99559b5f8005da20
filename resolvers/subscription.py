"""Root subscriptions: changes pushed over graphql-transport-ws as they happen."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry import Info

from gateway.replicas.pubsub import AGENT_STATUS, TALKS
from gateway.storage.records import TalkQuery
from resolvers.context import RequestContext
from resolvers.query import talk_query
from schema.agent_control import QueueStatus
from schema.inputs import TalkFilter
from schema.permissions import needs
from schema.scalars import UtcDateTime
from schema.types import AgentStatusPayload, Talk, talk_from_doc

Ctx = Info[RequestContext, None]


@strawberry.type(description="Changes as they happen (WebSocket, graphql-transport-ws).")
class Subscription:
    @strawberry.subscription(
        description=(
            "Every talk a webhook delivery changes, as it is after the change; with a filter, "
            "only talks that match it then."
        ),
        extensions=needs("talks:read"),
    )
    async def talk_updated(
        self,
        info: Ctx,
        filter: Annotated[
            TalkFilter | None,
            strawberry.argument(description="Conditions the changed talks must meet."),
        ] = None,
    ) -> AsyncGenerator[Talk, None]:
        query = talk_query(filter)
        context = info.context
        async for event in context.broker.subscribe(TALKS):
            talk_id = int(event["id"])
            if query != TalkQuery():
                matching = await context.store.count_talks(
                    query=dataclasses.replace(query, talk_id=talk_id)
                )
                if not matching[None]:
                    continue
            docs = await context.store.talks_by_id([talk_id])
            if talk_id in docs:
                # The connection outlives one event: fresh loaders, so nothing is stale.
                context.renew_loaders()
                yield talk_from_doc(docs[talk_id])

    @strawberry.subscription(
        description="Queue status changes talkgate makes through Talk.me (all agents, or one).",
        extensions=needs("talks:read"),
    )
    async def agent_status_changed(
        self,
        info: Ctx,
        login: Annotated[
            str | None, strawberry.argument(description="Only this agent's login.")
        ] = None,
    ) -> AsyncGenerator[AgentStatusPayload, None]:
        async for event in info.context.broker.subscribe(AGENT_STATUS):
            if login is not None and event["login"] != login:
                continue
            info.context.renew_loaders()  # each event's agent read afresh
            yield AgentStatusPayload(
                login=event["login"],
                status=QueueStatus[event["status"]],
                changed_at=UtcDateTime(event["changed_at"]),
            )
