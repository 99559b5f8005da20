"""What the types may ask of a request's context: batch loaders and the caller's identity.

The types delegate every lookup to these loaders; `resolvers/` builds them per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

if TYPE_CHECKING:
    from schema.agent_control import AgentQueueStatus, Recording
    from schema.connections import Connection
    from schema.types import Agent, Channel, Customer, Talk, TalkEvent, TalkHistory


@dataclass(frozen=True, slots=True)
class PageArgs:
    """`first`, `after`, `last` and `before` of a nested connection, part of its loader
    key."""

    first: int | None
    after: str | None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class ChildPageKey:
    """Which page of a parent's children a nested connection wants."""

    parent_id: int
    page: PageArgs


V_co = TypeVar("V_co", covariant=True)
D = TypeVar("D")


class ById(Protocol[V_co]):
    """Objects by id, batched per turn of the event loop (`resolvers.loaders.ByIdLoader`).

    Besides `load`, the fast execution path (`gateway.graphql.execution`) relies on `peek`: a load
    already done is read without awaiting it, so a page's customers, read with the page
    and `prime`d, complete in place."""

    def load(self, key: int) -> Awaitable[V_co | None]: ...

    def peek(self, key: int, default: D) -> V_co | D | None:
        """The object of a finished load of `key` (None: no such id), else `default`."""
        ...

    def prime(self, docs: Mapping[int, Any]) -> None:
        """Stored documents read already: their loads are done, and fetch nothing."""
        ...


class Loaders(Protocol):
    @property
    def customer(self) -> ById[Customer]: ...

    @property
    def agent(self) -> ById[Agent]: ...

    @property
    def agent_by_login(self) -> DataLoader[str, Agent | None]: ...

    @property
    def channel(self) -> ById[Channel]: ...

    @property
    def events(self) -> DataLoader[int, list[TalkEvent]]: ...

    @property
    def histories(self) -> DataLoader[ChildPageKey, Connection[TalkHistory]]: ...

    @property
    def customer_talks(self) -> DataLoader[ChildPageKey, Connection[Talk]]: ...

    @property
    def agent_talks(self) -> DataLoader[ChildPageKey, Connection[Talk]]: ...

    @property
    def queue_status(self) -> DataLoader[str, AgentQueueStatus]: ...

    @property
    def recording(self) -> DataLoader[str, Recording]: ...

    @property
    def raw_payloads(self) -> DataLoader[int, list[bytes]]: ...


class Caller(Protocol):
    """Who is asking; `scopes` are the ones granted to the API key."""

    @property
    def name(self) -> str: ...

    @property
    def scopes(self) -> frozenset[str]: ...


class GraphContext(Protocol):
    @property
    def caller(self) -> Caller: ...

    @property
    def loaders(self) -> Loaders: ...
