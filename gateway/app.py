"""The application factory: `create_app(settings)` builds everything, the lifespan opens it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth import KeyRing
from gateway.graphql_app import GraphQLEndpoint, GraphQLView, build_schema
from gateway.ingest import Body, Ingestor
from gateway.middleware import RequestIdMiddleware
from gateway.settings import Settings
from gateway.storage import StoreUnavailable, TalkStore, open_store
from gateway.webhook import TalkWebhook

log = logging.getLogger("talkgate")


class State(TypedDict):
    """What the lifespan opens; handlers reach it as `request.state.<name>`."""

    settings: Settings
    store: TalkStore
    ingestor: Ingestor


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    store: TalkStore = request.state.store
    try:
        await store.ping()
    except StoreUnavailable as exc:
        log.warning("not ready: %s", exc)
        return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def seed_demo(ingestor: Ingestor) -> int:
    """Load the sample talks through the webhook's own path; reloading changes nothing."""
    from gateway.demo import sample_talks

    bodies = [Body(orjson.dumps(t), "demo") for t in sample_talks()]
    outcomes = await ingestor.ingest_many(bodies)
    return len(outcomes)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the gateway. Nothing is opened until the lifespan starts."""
    settings = settings or Settings()
    keys = KeyRing(settings.api_keys)
    view = GraphQLView(build_schema(), settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        store = open_store(settings.database_url)
        await store.open()
        try:
            ingestor = Ingestor(store, settings.zone)
            if settings.demo:
                loaded = await seed_demo(ingestor)
                log.info("demo talks loaded", extra={"talks": loaded})
            yield {"settings": settings, "store": store, "ingestor": ingestor}
        finally:
            await store.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/webhooks/talks", TalkWebhook(settings, keys).handle, methods=["POST"]),
        Route("/graphql", GraphQLEndpoint(view, keys, demo=settings.demo)),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
