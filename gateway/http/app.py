"""The application factory: `create_app(settings)` builds everything, the lifespan opens it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from gateway import VERSION
from gateway.auth import KeyRing
from gateway.demo.wiring import SANDBOX_PREFIX, Demo, demo_wiring, seed_demo
from gateway.graphql.endpoint import GraphQLEndpoint
from gateway.graphql.persisted import LocalPersistedQueries, PersistedQueries, PersistedQueryPolicy
from gateway.graphql.response_cache import ResponseCache, SharedResponses
from gateway.graphql.schema_assembly import build_schema
from gateway.graphql.view import GraphQLView
from gateway.http.compression import Compress
from gateway.http.cors import LOOPBACK_ORIGINS, ExplainedCORS
from gateway.http.explorer import (
    EXPLORER_DIR,
    ExplorerPage,
    NotBuiltPage,
    explorer_page,
    log_not_built,
)
from gateway.http.launch import launch
from gateway.http.middleware import (
    LOOPBACK_HOSTS,
    AllowedHosts,
    JsonBodies,
    ObserveRequests,
    SameOriginWrites,
)
from gateway.http.state import State, state_of
from gateway.ingest.ingestor import Ingestor
from gateway.ingest.webhook import TalkWebhook
from gateway.metrics import Metrics, MetricsEndpoint
from gateway.ratelimit import LocalRateLimiter, RateLimiter
from gateway.recordings import RecordingCache, Recordings, SharedRecordings
from gateway.replicas.pubsub import Broker, LocalBroker, LocalFanout
from gateway.sessions import AgentSessions
from gateway.settings import Settings
from gateway.storage import StoreUnavailable, TalkStore, open_store
from gateway.storage.records import Purged
from gateway.talkme import TalkmeClient
from gateway.tickets import LoginTickets, TicketVault
from resolvers.context import Services

log = logging.getLogger("talkgate")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": VERSION})


async def readyz(request: Request) -> Response:
    """Ready when the store answers; with the store's schema version and this talkgate's
    (they differ once another replica has migrated the store for a newer talkgate: an
    upgrade's migrations keep the previous version working, so this one stays ready)."""
    store = state_of(request.scope)["services"].store
    try:
        await store.ping()
        schema = await store.schema_state()
    except StoreUnavailable as exc:
        log.warning("not ready: %s", exc)
        body = {"status": "unavailable", "version": VERSION, "store": "unreachable"}
        return JSONResponse(body, status_code=503)
    shown = {"version": schema.current, "latest": schema.latest}
    return JSONResponse({"status": "ready", "version": VERSION, "schema": shown})


def _secret_keys(settings: Settings) -> tuple[str, ...]:
    """SECRET_KEY's keys, the sealing one first; a key made now when none is set."""
    if settings.secret_keys:
        return settings.secret_keys
    if not settings.demo:
        log.warning(
            "TALKGATE_SECRET_KEY is not set: agent sessions and login links are sealed with a "
            "key made at start-up; they stop working on restart and on other replicas"
        )
    return (secrets.token_urlsafe(32),)


@dataclass(frozen=True, slots=True)
class Shared:
    """What the replicas of a deployment share (`_sharing`), each part by its name."""

    # Events to subscribers of every replica (or worker).
    broker: Broker
    limiter: RateLimiter
    # Agent sessions' and login tickets' state.
    vault: TicketVault
    # Recordings fetched by another replica; None: each keeps its own.
    recordings: SharedRecordings | None
    # Persisted (APQ) documents.
    documents: PersistedQueries
    # Cached answers; None: each replica's response cache is its own.
    responses: SharedResponses | None


@asynccontextmanager
async def _sharing(
    settings: Settings,
    store: TalkStore,
    fanout: LocalFanout,
    metrics: Metrics,
    siblings: Path | None,
) -> AsyncIterator[Shared]:
    """What replicas share: through Redis when TALKGATE_REDIS_URL is set, else this process
    (events: the workers of this `serve`, when `siblings` is their meeting directory)."""
    if settings.redis_url is None:
        limiter = LocalRateLimiter(settings.rate_limit_per_minute)
        if siblings is None:
            yield Shared(LocalBroker(fanout), limiter, store, None, LocalPersistedQueries(), None)
            return
        from gateway.replicas.siblings import SiblingBroker

        sibling_broker = SiblingBroker(fanout, siblings, on_drop=metrics.dropped_events.inc)
        await sibling_broker.start()
        try:
            yield Shared(sibling_broker, limiter, store, None, LocalPersistedQueries(), None)
        finally:
            await sibling_broker.close()
        return
    from redis.asyncio import Redis

    from gateway.replicas.redis_shared import (
        RedisBroker,
        RedisPersistedQueries,
        RedisRateLimiter,
        RedisRecordings,
        RedisResponses,
        RedisTicketVault,
    )

    client = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=2.0)
    broker = RedisBroker(client, fanout, on_health=lambda up: metrics.redis_up.set(int(up)))
    await broker.start()
    try:
        yield Shared(
            broker=broker,
            limiter=RedisRateLimiter(client, settings.rate_limit_per_minute),
            vault=RedisTicketVault(client),
            recordings=RedisRecordings(client, settings.recording_ttl_s),
            documents=RedisPersistedQueries(client),
            responses=RedisResponses(client, settings.response_cache_ttl_s),
        )
    finally:
        await broker.close()
        await client.aclose()


def create_app(
    settings: Settings | None = None,
    *,
    talkme_transport: httpx.AsyncBaseTransport | None = None,
    explorer_dir: Path = EXPLORER_DIR,
    siblings: Path | None = None,
) -> Starlette:
    """Build the gateway. Nothing is opened until the lifespan starts.

    `talkme_transport` carries the Talk.me client's requests (tests hand it the sandbox);
    by default they go over the network. In demo mode they go to the built-in sandbox.
    `explorer_dir` holds the built explorer page (`npm run build` in explorer/).
    In demo mode a fresh key with every scope is made for the explorer: `app.state.demo_key`.
    `siblings` is where the workers of one `serve --workers N` share events without Redis
    (gateway/replicas/siblings.py); None: events stay in this process unless Redis carries them.
    """
    settings = settings or Settings()
    demo = demo_wiring(settings, talkme_transport) if settings.demo else None
    if demo is not None:
        settings, talkme_transport = demo.settings, demo.transport
    keys = KeyRing(settings.api_keys)
    metrics = Metrics()
    # Raises ManifestError (one line) when the persisted-queries file does not verify.
    persisted = PersistedQueryPolicy.from_settings(settings)
    schema = build_schema(
        settings, metrics, allow_list=persisted.allow_list if persisted.only else None
    )
    view = GraphQLView(schema, settings, keys, metrics=metrics)
    demo_key = demo.key if demo is not None else None
    explorer = explorer_page(explorer_dir, demo_key=demo_key) if settings.graphiql else None
    endpoint = GraphQLEndpoint(
        view, keys, settings=settings, metrics=metrics, ide=explorer, persisted=persisted
    )
    parts = _Parts(settings, keys, metrics, talkme_transport, siblings, explorer)
    app = Starlette(
        routes=_routes(parts, endpoint, demo),
        middleware=_middleware(settings, metrics),
        lifespan=lambda app: _lifespan(app, parts),
    )
    app.state.demo_key = demo_key
    return app


@dataclass(frozen=True, slots=True)
class _Parts:
    """What create_app builds that the lifespan and the routes use."""

    settings: Settings
    keys: KeyRing
    metrics: Metrics
    talkme_transport: httpx.AsyncBaseTransport | None
    siblings: Path | None
    explorer: ExplorerPage | NotBuiltPage | None

    @property
    def metrics_token(self) -> str | None:
        token = self.settings.metrics_token
        return token.get_secret_value() if token is not None else None


def _routes(parts: _Parts, endpoint: GraphQLEndpoint, demo: Demo | None) -> list[BaseRoute]:
    """The router tries routes in turn: the busiest first."""
    settings, keys, metrics = parts.settings, parts.keys, parts.metrics
    routes: list[BaseRoute] = [
        Route("/graphql", endpoint),
        WebSocketRoute("/graphql", endpoint),
        Route("/webhooks/talks", TalkWebhook(settings, keys, metrics).handle, methods=["POST"]),
    ]
    if demo is not None:
        routes.append(Mount(SANDBOX_PREFIX, app=demo.sandbox))
    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/talkme/launch/{ticket}", launch, methods=["GET"]),
    ]
    if settings.metrics_port is None:
        # On the main port: an admin key or the metrics token (the demo: this machine too).
        scrape = MetricsEndpoint(
            metrics, keys, token=parts.metrics_token, open_to_loopback=settings.demo
        )
        routes.append(Route("/metrics", scrape.handle, methods=["GET"]))
    if parts.explorer is not None:
        routes += parts.explorer.routes()
    return routes


@asynccontextmanager
async def _lifespan(app: Starlette, parts: _Parts) -> AsyncIterator[State]:
    """Opens the store, the Talk.me client, what replicas share and the metrics port; closes
    them in the reverse order."""
    settings, metrics = parts.settings, parts.metrics
    async with AsyncExitStack() as stack:
        store = open_store(settings.database_url, doc_cache_mb=settings.doc_cache_mb)
        await store.open(migrate=settings.auto_migrate)
        stack.push_async_callback(store.close)
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=parts.talkme_transport,
                timeout=httpx.Timeout(settings.talkme_timeout_s),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                headers={"User-Agent": "talkgate"},
            )
        )
        talkme = TalkmeClient(http, settings, observe=metrics.observe_upstream)
        fanout = LocalFanout(
            settings.subscription_queue_size,
            metrics.dropped_events.inc,
            on_count=lambda topic, count: metrics.event_streams.labels(topic).set(count),
        )
        shared = await stack.enter_async_context(
            _sharing(settings, store, fanout, metrics, parts.siblings)
        )
        ingestor = Ingestor(store, settings.zone, shared.broker, max_depth=settings.max_json_depth)
        if parts.explorer is not None and not parts.explorer.built:
            log_not_built()
        if settings.metrics_port is not None:
            # The port bound (TALKGATE_METRICS_PORT=0 picks a free one), for an embedder.
            app.state.metrics_port = await stack.enter_async_context(_metrics_port(parts))
        if settings.demo:
            loaded = await seed_demo(ingestor)
            log.info("demo talks loaded", extra={"talks": loaded})
        if settings.retention_days is not None:
            await stack.enter_async_context(_retention(store, settings.retention_days, metrics))
        yield {
            "services": _services(settings, store, talkme, shared, ingestor),
            "ingestor": ingestor,
            "limiter": shared.limiter,
            "persisted": shared.documents,
            "responses": _responses(settings, shared, metrics),
        }


def _services(
    settings: Settings, store: TalkStore, talkme: TalkmeClient, shared: Shared, ingestor: Ingestor
) -> Services:
    secret_key = _secret_keys(settings)
    recordings = Recordings(
        talkme,
        RecordingCache(settings.recording_ttl_s),
        concurrency=settings.recording_concurrency,
        shared=shared.recordings,
    )
    return Services(
        settings=settings,
        store=store,
        talkme=talkme,
        recordings=recordings,
        sessions=AgentSessions(shared.vault, secret_key, ttl_s=settings.session_ttl_s),
        tickets=LoginTickets(shared.vault, secret_key),
        broker=shared.broker,
        replays=ingestor,
    )


def _responses(settings: Settings, shared: Shared, metrics: Metrics) -> ResponseCache | None:
    """This replica's response cache (over the shared one, if any); None when it is off."""
    if not settings.response_cache_mb:
        return None
    return ResponseCache(
        max_bytes=settings.response_cache_mb * 1024 * 1024,
        shared=shared.responses,
        on_outcome=metrics.count_cache_outcome,
    )


@asynccontextmanager
async def _retention(store: TalkStore, days: int, metrics: Metrics) -> AsyncIterator[None]:
    """The daily purge of TALKGATE_RETENTION_DAYS while the app runs; what went, counted."""
    from gateway.operations.purge import daily

    def counted(purged: Purged) -> None:
        for what, count in purged.counts().items():
            metrics.labelled(metrics.purged, what).inc(count)

    task = asyncio.create_task(daily(store, days, counted))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _metrics_port(parts: _Parts) -> AbstractAsyncContextManager[int]:
    """/metrics on a port of its own (TALKGATE_METRICS_PORT); yields the port bound."""
    from gateway.metrics_server import metrics_port

    token = parts.metrics_token
    scrape = MetricsEndpoint(parts.metrics, parts.keys, token=token, open=token is None)
    settings = parts.settings
    assert settings.metrics_port is not None
    return metrics_port(scrape, settings.metrics_host or settings.host, settings.metrics_port)


def _middleware(settings: Settings, metrics: Metrics) -> list[Middleware]:
    """Outermost first: every request is observed, even one refused for its Host."""
    middleware = [Middleware(ObserveRequests, metrics=metrics)]
    if settings.compression:
        middleware.append(Middleware(Compress, minimum=settings.compress_min_bytes))
    if settings.demo:
        hint = "the demo answers to localhost, 127.0.0.1 and [::1] only"
        middleware.append(Middleware(AllowedHosts, hosts=LOOPBACK_HOSTS, hint=hint))
    elif settings.allowed_hosts:
        hint = "see TALKGATE_ALLOWED_HOSTS"
        middleware.append(Middleware(AllowedHosts, hosts=settings.allowed_hosts, hint=hint))
    # The demo answers to loopback only: a frontend's dev server on this machine may call it.
    origin_pattern = LOOPBACK_ORIGINS if settings.demo else None
    middleware.append(
        Middleware(ExplainedCORS, origins=settings.cors_origins, origin_pattern=origin_pattern)
    )
    # The demo's sandbox plays Talk.me, whose login form takes a cross-site form post by
    # design (with `Origin: null`: the launch page sends no referrer). Outside the demo every
    # delivery to the webhook carries a credential, and is judged by its content: a body
    # that is not JSON is answered 400 and kept as a dead letter, whatever its label.
    login_form = SANDBOX_PREFIX + "/login"
    middleware += [
        Middleware(
            SameOriginWrites,
            trusted=settings.cors_origins,
            trusted_pattern=origin_pattern,
            public=settings.public_url,
            exempt=[login_form] if settings.demo else [],
        ),
        Middleware(JsonBodies, exempt=[login_form] if settings.demo else ["/webhooks/talks"]),
    ]
    return middleware
