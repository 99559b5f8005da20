"""The per-request GraphQL context: who calls, and the loaders bound to this request."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.auth import Principal
from gateway.settings import Settings
from gateway.storage import TalkStore
from resolvers.loaders import RequestLoaders


@dataclass(slots=True)
class RequestContext:
    """What resolvers may use; built fresh for every operation."""

    caller: Principal
    store: TalkStore
    settings: Settings
    request_id: str | None
    loaders: RequestLoaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = RequestLoaders(self.store)
