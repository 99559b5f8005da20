"""Root mutations: driving agents on Talk.me."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import Info

from gateway.agent_status import record_status
from gateway.errors import BadUserInput
from gateway.sessions import AgentCredentials
from gateway.talkme import TalkmeError
from gateway.utc import iso
from resolvers.context import RequestContext
from resolvers.upstream import upstream_error
from schema.agent_control import (
    AgentAuthInput,
    AgentCredentialsInput,
    AgentLoginPayload,
    AgentStatusPayload,
    QueueStatus,
)
from schema.permissions import needs
from schema.scalars import UtcDateTime

Ctx = Info[RequestContext, None]
Credentials = Annotated[
    AgentCredentialsInput, strawberry.argument(description="The agent's login and password.")
]
Auth = Annotated[
    AgentAuthInput,
    strawberry.argument(description="The agent: credentials, or a session from agentLogin."),
]


def _iso(moment: datetime) -> UtcDateTime:
    return UtcDateTime(iso(moment, timespec="seconds"))


def _credentials(info: Ctx, auth: AgentAuthInput) -> AgentCredentials:
    if auth.credentials:
        return _checked(auth.credentials)
    if auth.session:
        return info.context.sealer.open(auth.session)
    raise BadUserInput("give credentials or a session")


def _checked(given: AgentCredentialsInput) -> AgentCredentials:
    if not given.login.strip() or not given.password:
        raise BadUserInput("login and password must not be empty")
    return AgentCredentials(given.login.strip(), given.password)


async def _change_status(
    info: Ctx, auth: AgentAuthInput, status: QueueStatus
) -> AgentStatusPayload:
    credentials = _credentials(info, auth)
    talkme = info.context.talkme
    call = {
        QueueStatus.LOGGED_OUT: talkme.logout,
        QueueStatus.PAUSED: talkme.pause,
        QueueStatus.ACTIVE: talkme.resume,
    }[status]
    try:
        await call(login=credentials.login, password=credentials.password)
    except TalkmeError as exc:
        raise upstream_error(exc) from None
    changed_at = await record_status(
        info.context.store, info.context.broker, login=credentials.login, status=status.name
    )
    return AgentStatusPayload(
        login=credentials.login, status=status, changed_at=UtcDateTime(changed_at)
    )


@strawberry.type(description="Driving agents on the Talk.me (CobMAIS) platform.")
class Mutation:
    @strawberry.mutation(
        description=(
            "Log an agent into the Talk.me agent platform. Talk.me logs in through a browser "
            "form, so this returns a single-use `launchUrl` for the agent's browser, and a "
            "`session` to use instead of the password afterwards."
        ),
        extensions=needs("agents:control"),
    )
    async def agent_login(self, info: Ctx, input: Credentials) -> AgentLoginPayload | None:
        credentials = _checked(input)
        context = info.context
        ticket, expires_at = await context.tickets.issue(credentials)
        session = context.sealer.seal(credentials, ttl_s=context.settings.session_ttl_s)
        return AgentLoginPayload(
            launch_url=f"{context.settings.base_url}/talkme/launch/{ticket}",
            expires_at=_iso(expires_at),
            session=session,
        )

    @strawberry.mutation(
        description="Log an agent out of Talk.me, ending their session on the platform.",
        extensions=needs("agents:control"),
    )
    async def agent_logout(self, info: Ctx, input: Auth) -> AgentStatusPayload | None:
        return await _change_status(info, input, QueueStatus.LOGGED_OUT)

    @strawberry.mutation(
        description="Pause an agent in the Talk.me call queues (status N).",
        extensions=needs("agents:control"),
    )
    async def pause_agent(self, info: Ctx, input: Auth) -> AgentStatusPayload | None:
        return await _change_status(info, input, QueueStatus.PAUSED)

    @strawberry.mutation(
        description="Make a paused agent active again in the Talk.me call queues (status S).",
        extensions=needs("agents:control"),
    )
    async def resume_agent(self, info: Ctx, input: Auth) -> AgentStatusPayload | None:
        return await _change_status(info, input, QueueStatus.ACTIVE)
