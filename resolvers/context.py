"""The per-request GraphQL context: who calls, the services, and this request's loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gateway.auth import Principal
from gateway.recordings import Recordings
from gateway.replicas.pubsub import Broker
from gateway.sessions import AgentSessions
from gateway.settings import Settings
from gateway.storage import TalkStore
from gateway.storage.records import DeadLetter, Replayed
from gateway.talkme import TalkmeClient
from gateway.tickets import LoginTickets
from resolvers.loaders import RequestLoaders


class DeadLetterReplays(Protocol):
    """What sends a dead letter's body through ingest again (gateway/ingest's Ingestor)."""

    async def replay(self, letter: DeadLetter) -> Replayed: ...


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived services the lifespan opened; shared by every request."""

    settings: Settings
    store: TalkStore
    talkme: TalkmeClient
    recordings: Recordings
    sessions: AgentSessions
    tickets: LoginTickets
    broker: Broker
    replays: DeadLetterReplays


@dataclass(slots=True)
class RequestContext:
    """What resolvers may use; built fresh for every operation."""

    caller: Principal
    services: Services
    request_id: str | None
    client_host: str | None = None
    # Set by the WebSocket protocol from `connection_init`'s payload.
    connection_params: dict[str, object] | None = None
    loaders: RequestLoaders = field(init=False)

    def __post_init__(self) -> None:
        self.renew_loaders()

    def renew_loaders(self) -> None:
        self.loaders = RequestLoaders(self.services.store, self.services.recordings)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> TalkStore:
        return self.services.store

    @property
    def talkme(self) -> TalkmeClient:
        return self.services.talkme

    @property
    def sessions(self) -> AgentSessions:
        return self.services.sessions

    @property
    def tickets(self) -> LoginTickets:
        return self.services.tickets

    @property
    def broker(self) -> Broker:
        return self.services.broker
