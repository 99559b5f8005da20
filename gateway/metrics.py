"""Prometheus metrics of one gateway: requests, GraphQL operations, upstream calls, webhooks."""

from __future__ import annotations

import hmac
import os
import re
from bisect import bisect_left
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth import KeyRing, bearer_key, is_loopback
from gateway.errors import Forbidden, Unauthenticated

# Paths become route templates so a label never holds a ticket or grows without bound.
_ROUTES = ("/graphql", "/webhooks/talks", "/healthz", "/readyz", "/metrics", "/explorer")

_OPERATION_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
_MAX_OPERATION_NAMES = 500
MetricT = TypeVar("MetricT", Counter, Histogram, Gauge)


def route_of(path: str) -> str:
    if path in _ROUTES:
        return path
    if path.startswith("/talkme/launch/"):
        return "/talkme/launch/{ticket}"
    if path.startswith("/_sandbox/"):
        return "/_sandbox"
    return "other"


# Where prometheus_client keeps every process's values when several processes serve
# (`serve --workers N` sets it for its workers); it decides so when it is imported.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The collectors, in a registry of their own (one per app, so tests stay independent).

    Under `serve --workers N` each worker's values are kept in files of the run's
    PROMETHEUS_MULTIPROC_DIR, and a scrape of any worker answers the sum of them all.

    What every request records (`add`, `observe`) goes, in a single process, to plain dicts
    first, and into the collectors when they are read (`render`): prometheus_client takes a
    lock and validates the amount on each update, and a histogram walks its buckets in
    Python: kept, the five updates of a cached answer cost 13,600 instructions fewer (of
    333,600; bench.instructions, W1-warm). Under
    several workers the values go straight to the shared files, which another worker's
    scrape reads. Either way they are recorded on the event loop's thread only.
    """

    def __init__(self) -> None:
        self._operation_names: set[str] = set()
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        # Counts and observations not yet in their collectors, by labelled child: a count;
        # a count per bucket (prometheus_client's `le` bounds, +Inf last) and their sum.
        self._counts: dict[Any, int] = {}
        self._observed: dict[Any, tuple[list[int], list[float]]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._exposed = r
        shared = os.environ.get(MULTIPROCESS_DIR_ENV)
        self._deferred = not shared
        if shared:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=shared)  # type: ignore[no-untyped-call]
        self._declare_requests(r)
        self._declare_events(r)

    def _declare_requests(self, r: CollectorRegistry) -> None:
        """HTTP requests and GraphQL operations."""
        self.requests = Counter(
            "talkgate_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "talkgate_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.operations = Counter(
            "talkgate_graphql_operations_total",
            "GraphQL operations by operation name, type and outcome (ok, partial, error).",
            ["name", "type", "outcome"],
            registry=r,
        )
        self.rejected_queries = Counter(
            "talkgate_graphql_rejected_total",
            "GraphQL documents refused before execution, by reason.",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "talkgate_rate_limited_total",
            "Requests refused by the per-key rate limit.",
            registry=r,
        )

    def _declare_events(self, r: CollectorRegistry) -> None:
        """Upstream calls, subscriptions' events, webhooks and cached answers."""
        self.upstream = Counter(
            "talkgate_upstream_calls_total",
            "Talk.me calls by operation and outcome.",
            ["operation", "outcome"],
            registry=r,
        )
        self.dropped_events = Counter(
            "talkgate_subscription_events_dropped_total",
            "Events a slow subscriber lost because its queue was full (oldest dropped).",
            registry=r,
        )
        self.event_streams = Gauge(
            "talkgate_event_streams",
            "Streams of change events open by topic: one per distinct subscription (the"
            " subscribers holding the same one share it).",
            ["topic"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.redis_up = Gauge(
            "talkgate_redis_up",
            "1 while events and limits are shared through Redis, 0 while it is unreachable.",
            registry=r,
            # Several workers: 0 while any live worker has lost Redis.
            multiprocess_mode="livemin",
        )
        self.webhooks = Counter(
            "talkgate_webhook_deliveries_total",
            "Webhook deliveries by outcome.",
            ["outcome"],
            registry=r,
        )
        self.purged = Counter(
            "talkgate_purged_total",
            "What the retention purge (TALKGATE_RETENTION_DAYS) removed: talks, messages,"
            " events, deliveries, dead_letters, customers, agents.",
            ["what"],
            registry=r,
        )
        self.response_cache = Counter(
            "talkgate_response_cache_total",
            "GraphQL requests by response-cache outcome: hit (this replica), shared_hit "
            "(Redis), miss, uncacheable (not a store-only query).",
            ["outcome"],
            registry=r,
        )

    def labelled(self, metric: MetricT, *values: str) -> MetricT:
        """`metric.labels(*values)`, kept: prometheus_client validates the values and takes a
        lock on every call, which was a tenth of a cached answer's cost. Every metric here
        has a bounded set of label values, so the kept children are bounded too."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(MetricT, child)

    def add(self, metric: Counter, *values: str) -> None:
        """One more in `metric` under the label `values`."""
        child = self._children.get((metric, values))
        if child is None:
            child = self.labelled(metric, *values)
        if self._deferred:
            counts = self._counts
            counts[child] = counts.get(child, 0) + 1
        else:
            child.inc()

    def observe(self, metric: Histogram, amount: float, *values: str) -> None:
        """`amount` observed in `metric` under the label `values`."""
        child = self._children.get((metric, values))
        if child is None:
            child = self.labelled(metric, *values)
        if not self._deferred:
            child.observe(amount)
            return
        pending = self._observed.get(child)
        if pending is None:
            pending = self._observed[child] = ([0] * len(child._upper_bounds), [0.0])
        # The first bucket whose bound is at least `amount`, as Histogram.observe finds it.
        pending[0][bisect_left(child._upper_bounds, amount)] += 1
        pending[1][0] += amount

    def flush(self) -> None:
        """Put the counts and observations kept so far into their collectors."""
        counts, self._counts = self._counts, {}
        for child, count in counts.items():
            child.inc(count)
        observed, self._observed = self._observed, {}
        for child, (buckets, total) in observed.items():
            # Histogram.observe's own updates, in bulk (prometheus_client has no public
            # call for it; tests/gateway/test_metrics.py compares the two).
            for bucket, count in zip(child._buckets, buckets, strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(total[0])

    def count_cache_outcome(self, outcome: str) -> None:
        self.add(self.response_cache, outcome)

    def count_operation(self, name: str | None, kind: str, outcome: str) -> None:
        """Count one operation; names come from clients, so the set of label values is
        bounded."""
        self.add(self.operations, self._operation_name(name), kind, outcome)

    def _operation_name(self, name: str | None) -> str:
        if name in self._operation_names:
            return name
        if not name or not _OPERATION_NAME.match(name):
            return "anonymous"
        if name not in self._operation_names:
            if len(self._operation_names) >= _MAX_OPERATION_NAMES:
                return "other"
            self._operation_names.add(name)
        return name

    def observe_upstream(self, operation: str, outcome: str) -> None:
        self.add(self.upstream, operation, outcome)

    def render(self) -> Response:
        self.flush()
        return Response(generate_latest(self._exposed), media_type=CONTENT_TYPE_LATEST)


class MetricsEndpoint:
    """`GET /metrics`, for an API key with `admin`, the TALKGATE_METRICS_TOKEN, or anyone
    when `open` (the metrics port without a token; the demo, from this machine).

    The text names operations, routes and outcomes: not for the public, and a scraper needs
    no other scope, hence a token of its own.
    """

    def __init__(
        self,
        metrics: Metrics,
        keys: KeyRing,
        *,
        token: str | None,
        open: bool = False,
        open_to_loopback: bool = False,
    ) -> None:
        self.metrics = metrics
        self.keys = keys
        self._token = token.encode() if token is not None else None
        self.open = open
        self.open_to_loopback = open_to_loopback

    async def handle(self, request: Request) -> Response:
        if self.open:
            return self.metrics.render()
        given = bearer_key(request.headers.get("authorization"))
        if given is None:
            client = request.client.host if request.client else None
            if self.open_to_loopback and is_loopback(client):
                return self.metrics.render()
            return _refused(401, "metrics need Authorization: Bearer <admin key or metrics token>")
        if self._token is not None and hmac.compare_digest(given.encode(), self._token):
            return self.metrics.render()
        principal = self.keys.authenticate(given)
        if principal is None:
            return _refused(401, "metrics need Authorization: Bearer <admin key or metrics token>")
        if "admin" not in principal.scopes:
            return _refused(403, "metrics need a key with the admin scope, or the metrics token")
        return self.metrics.render()


def _refused(status: int, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="talkgate"'} if status == 401 else None
    code = Unauthenticated.code if status == 401 else Forbidden.code
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)
