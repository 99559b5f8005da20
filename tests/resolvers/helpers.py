"""Helpers of the GraphQL behaviour tests: payloads, reading responses, a counting store."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from tests.factories import Payload, message, talk

# The store's read methods, the ones resolvers and loaders may call.
STORE_READS = (
    "talks_by_id",
    "talk_by_tracking_number",
    "talk_pages",
    "count_talks",
    "message_pages",
    "count_messages",
    "events_by_talk",
    "customers_by_id",
    "customer_page",
    "count_customers",
    "agents_by_id",
    "agent_by_login",
    "agent_page",
    "count_agents",
    "channels_by_id",
    "messages_by_id",
    "events_by_id",
)


def talk_of(
    talk_id: int,
    *,
    customer_id: int = 144527,
    customer_name: str = "JONAS",
    messages: list[str] | None = None,
    **fields: Any,
) -> Payload:
    """The example talk under another id, with its own customer object and, if given, messages.

    Message ids are derived from the talk id so that talks never share a message.
    """
    payload = talk(talk_id, customer_id=customer_id, **fields)
    payload["customer"]["id"] = customer_id
    payload["customer"]["name"] = customer_name
    for phone in payload["customer"]["telephones"]:
        phone["customer_id"] = customer_id
    for email in payload["customer"]["emails"]:
        email["customer_id"] = customer_id
    if messages is not None:
        payload["talk_histories"] = [
            message(talk_id * 10 + n, text, talk_id=talk_id) for n, text in enumerate(messages)
        ]
    return payload


def errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = body.get("errors") or []
    return errors


def codes(body: dict[str, Any]) -> list[str]:
    """The `extensions.code` of every error of a response, in order."""
    return [e.get("extensions", {}).get("code") for e in errors_of(body)]


def error_at(body: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """The one error whose path is `path`."""
    found = [e for e in errors_of(body) if e.get("path") == list(path)]
    assert len(found) == 1, f"expected one error at {list(path)}, got {errors_of(body)}"
    return found[0]


def node_ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


@dataclass
class StoreSpy:
    """Counts the calls a running app makes to its store, by wrapping the store's methods.

    The wrappers are set on the store instance itself, so the app's per-request loaders pick
    them up; `fail` makes one method raise instead.
    """

    store: Any
    calls: Counter[str]

    @classmethod
    def on(cls, store: Any) -> StoreSpy:
        spy = cls(store, Counter())
        for name in STORE_READS:
            setattr(store, name, spy._counting(name, getattr(store, name)))
        return spy

    def _counting(
        self, name: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted

    def fail(self, name: str, error: BaseException) -> None:
        """Make the store's `name` raise `error` (after counting the call)."""

        async def failing(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            raise error

        setattr(self.store, name, failing)

    def reset(self) -> None:
        self.calls.clear()

    def counts(self) -> dict[str, int]:
        """The calls made since the last reset, without the methods never called."""
        return {name: n for name, n in self.calls.items() if n}


@dataclass(frozen=True)
class Served:
    """A client of the app with its lifespan running, and a spy on the app's store."""

    client: httpx.AsyncClient
    spy: StoreSpy


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[Served]:
    """Run the app's lifespan and hand out a client and a spy on the store it opened."""
    async with LifespanManager(app) as manager:
        # asgi_lifespan keeps the state the lifespan yielded here, and hands it to requests.
        spy = StoreSpy.on(manager._state["services"].store)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Served(client, spy)
