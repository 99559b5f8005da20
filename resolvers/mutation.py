"""Root mutations: driving agents on Talk.me."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import ID, Info

from gateway.agent_status import record_status
from gateway.errors import BadUserInput
from gateway.sessions import AgentCredentials, AgentSession
from gateway.talkme import TalkmeError, check_credentials
from gateway.utc import iso
from resolvers import dead_letters
from resolvers.context import RequestContext
from resolvers.upstream import upstream_error
from schema.admin import DeadLetterReplay
from schema.agent_control import (
    AgentAuthInput,
    AgentCredentialsInput,
    AgentLoginPayload,
    QueueStatus,
)
from schema.permissions import needs
from schema.scalars import UtcDateTime
from schema.types import AgentStatusPayload

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


async def _agent(info: Ctx, auth: AgentAuthInput) -> tuple[AgentCredentials, AgentSession | None]:
    """The agent's credentials, and the session they came from (for this key only)."""
    if auth.credentials:
        return _checked(auth.credentials), None
    if auth.session:
        session = await info.context.sessions.open(auth.session, owner=info.context.caller.name)
        return session.credentials, session
    raise BadUserInput("give credentials or a session")


def _checked(given: AgentCredentialsInput) -> AgentCredentials:
    """The credentials, when Talk.me could know them; BAD_USER_INPUT before any call if not."""
    login = given.login.strip()
    if not login or not given.password:
        raise BadUserInput("login and password must not be empty")
    try:
        check_credentials(login, given.password)
    except TalkmeError as exc:
        raise upstream_error(exc) from None
    return AgentCredentials(login, given.password)


async def _change_status(
    info: Ctx, auth: AgentAuthInput, status: QueueStatus
) -> AgentStatusPayload:
    """Ask Talk.me first; only its successful answer changes, stores and publishes the status
    (a refusal or failure leaves them as they were)."""
    credentials, session = await _agent(info, auth)
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
    if status is QueueStatus.LOGGED_OUT:
        await info.context.sessions.revoke(credentials.login, session=session)
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
            "`session` to use instead of the password afterwards (with this API key only). "
            "It does not change the agent's `queueStatus` nor publish `agentStatusChanged`: "
            "the browser's login is answered to the browser, and Talk.me confirms nothing to "
            "talkgate. Login at most 64 printable characters, password at most 256 with no "
            "control character; others are BAD_USER_INPUT."
        ),
        extensions=needs("agents:control"),
    )
    async def agent_login(self, info: Ctx, input: Credentials) -> AgentLoginPayload | None:
        credentials = _checked(input)
        context = info.context
        ticket, expires_at = await context.tickets.issue(credentials)
        session = context.sessions.issue(credentials, owner=context.caller.name)
        return AgentLoginPayload(
            launch_url=f"{context.settings.base_url}/talkme/launch/{ticket}",
            expires_at=_iso(expires_at),
            session=session,
        )

    @strawberry.mutation(
        description=(
            "Log an agent out of Talk.me, ending their session on the platform. Once Talk.me "
            "confirms, every `session` of that login issued until then is revoked (whichever "
            "API key it was issued to): later use is BAD_USER_INPUT, with no call to Talk.me."
        ),
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

    @strawberry.mutation(
        description=(
            "Send dead letters' bodies through the webhook's ingest again (after a parser fix):"
            " each one accepted is stored as a delivery and leaves the dead letters; each one"
            " refused again stays, with its new reason. Without `ids`, every dead letter. The"
            " same as `talkgate dead-letters replay`. Needs the admin scope."
        ),
        extensions=needs("admin"),
    )
    async def replay_dead_letters(
        self,
        info: Ctx,
        ids: Annotated[
            list[ID] | None,
            strawberry.argument(description="The dead letters to replay (every one must exist)."),
        ] = None,
    ) -> DeadLetterReplay | None:
        return await dead_letters.replay(info.context.services, ids)
