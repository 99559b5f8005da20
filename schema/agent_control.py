"""Types of agent control and recordings through Talk.me (CobMAIS)."""

from __future__ import annotations

from enum import Enum

import strawberry

from schema.scalars import UtcDateTime


@strawberry.enum(
    description=(
        "An agent's state in the call queues, as talkgate last set it and Talk.me confirmed. "
        "Only a successful answer of Talk.me to pauseAgent, resumeAgent or agentLogout sets "
        "it; agentLogin and its launch page never do (Talk.me answers the browser's login to "
        "the browser, not to talkgate)."
    )
)
class QueueStatus(Enum):
    ACTIVE = strawberry.enum_value(
        "ACTIVE", description="Taking calls: Talk.me confirmed resumeAgent."
    )
    PAUSED = strawberry.enum_value(
        "PAUSED", description="Paused in the call queues: Talk.me confirmed pauseAgent."
    )
    LOGGED_OUT = strawberry.enum_value(
        "LOGGED_OUT", description="Logged out: Talk.me confirmed agentLogout."
    )
    UNKNOWN = strawberry.enum_value(
        "UNKNOWN",
        description=(
            "talkgate has no confirmed status for this agent (never changed, or only logged "
            "in through agentLogin, which Talk.me does not confirm)."
        ),
    )


@strawberry.type(description="The last queue status talkgate set for an agent through Talk.me.")
class AgentQueueStatus:
    status: QueueStatus = strawberry.field(description="The status.")
    changed_at: UtcDateTime | None = strawberry.field(
        description="When talkgate set it; null when the status is UNKNOWN."
    )


@strawberry.input(description="A Talk.me agent's login number and password.")
class AgentCredentialsInput:
    login: str = strawberry.field(description="Login number of the agent on Talk.me.")
    password: str = strawberry.field(description="Password of that login.")


@strawberry.input(
    one_of=True,
    description="Who the agent is: the credentials, or a `session` from `agentLogin`.",
)
class AgentAuthInput:
    credentials: AgentCredentialsInput | None = strawberry.field(
        default=strawberry.UNSET, description="The agent's login and password."
    )
    session: str | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "The sealed session returned by `agentLogin` to this API key, standing for the "
            "credentials."
        ),
    )


@strawberry.type(description="What `agentLogin` gives: a link that logs the agent in.")
class AgentLoginPayload:
    launch_url: str = strawberry.field(
        description=(
            "Single-use link on talkgate (valid for 60 seconds): opened in the agent's browser, "
            "it submits the login form of the Talk.me agent platform by itself."
        )
    )
    expires_at: UtcDateTime = strawberry.field(description="When `launchUrl` stops working.")
    session: str = strawberry.field(
        description=(
            "Opaque sealed token standing for the credentials; pass it to agentLogout, "
            "pauseAgent and resumeAgent instead of the password, with the same API key: "
            "another key gets BAD_USER_INPUT. It expires (TALKGATE_SESSION_TTL_S, 12 hours by "
            "default) and a successful agentLogout of that login revokes it."
        )
    )


@strawberry.type(description="A public link to a call recording, from Talk.me.")
class Recording:
    protocol: str = strawberry.field(description="Protocol number of the call.")
    url: str = strawberry.field(description="Public link to the recording.")
    fetched_at: UtcDateTime = strawberry.field(
        description="When talkgate got the link from Talk.me (links are reused for a while)."
    )
