"""GET /metrics: Prometheus text with requests, latencies, GraphQL operations, rejected queries,
rate-limited requests, upstream calls and webhook deliveries, each by what went on; for an
admin key or the metrics token, or on a port of its own."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette

from gateway.http.app import create_app
from gateway.talkme import SandboxState
from tests.factories import talk
from tests.support import (
    AGENT_LOGIN,
    AGENT_PASSWORD,
    ALL_KEY,
    NO_SCOPE_KEY,
    OPERATIONS,
    PROTOCOL,
    PUSH_KEY,
    READ_KEY,
    WEBHOOK_SECRET,
    GraphQLSocket,
    Labels,
    bearer,
    live_server,
    make_settings,
    push,
    scrape,
    serving,
    value,
)


async def operation(
    client: httpx.AsyncClient, document: str, name: str | None = None, *, key: str = READ_KEY
) -> None:
    payload: dict[str, object] = {"query": document}
    if name is not None:
        payload["operationName"] = name
    response = await client.post("/graphql", json=payload, headers=bearer(key))
    assert response.status_code == 200, response.text


# -- HTTP requests --------------------------------------------------------------------------


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    names = {name for name, _, _ in await scrape(client)}
    assert "talkgate_rate_limited_total" in names


async def test_requests_are_counted_by_route_method_and_status(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    await client.post("/graphql", json={"query": "{ talks { totalCount } }"})
    await operation(client, "{ talks { totalCount } }")
    count = "talkgate_http_requests_total"
    assert await value(client, count, route="/healthz", method="GET", status="200") == 2
    assert await value(client, count, route="/graphql", method="POST", status="401") == 1
    assert await value(client, count, route="/graphql", method="POST", status="200") == 1


async def test_request_latency_is_observed_by_route(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await operation(client, "{ talks { totalCount } }")
    histogram = "talkgate_http_request_duration_seconds_count"
    assert await value(client, histogram, route="/graphql") == 3


async def test_no_label_holds_a_launch_ticket_or_a_raw_path(
    talkme_client: httpx.AsyncClient,
) -> None:
    body = (
        await talkme_client.post(
            "/graphql",
            json={
                "query": "mutation ($input: AgentCredentialsInput!) "
                "{ agentLogin(input: $input) { launchUrl } }",
                "variables": {"input": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}},
            },
            headers=bearer(ALL_KEY),
        )
    ).json()
    launch_url: str = body["data"]["agentLogin"]["launchUrl"]
    ticket = launch_url.rsplit("/", 1)[1]
    assert (await talkme_client.get(f"/talkme/launch/{ticket}")).status_code == 200
    assert (await talkme_client.get("/talkme/launch/another-ticket-value")).status_code == 410
    await talkme_client.get("/no/such/path-with-a-value-9f8e7d")
    samples = await scrape(talkme_client)
    labels = [v for _, ls, _ in samples for v in ls.values()]
    assert not [v for v in labels if ticket in v or "another-ticket" in v or "9f8e7d" in v]
    requests = "talkgate_http_requests_total"
    assert (
        requests,
        {"route": "/talkme/launch/{ticket}", "method": "GET", "status": "200"},
        1.0,
    ) in samples
    assert (
        requests,
        {"route": "/talkme/launch/{ticket}", "method": "GET", "status": "410"},
        1.0,
    ) in samples


# -- GraphQL operations ---------------------------------------------------------------------


async def test_operations_are_counted_by_name_type_and_outcome(client: httpx.AsyncClient) -> None:
    assert (await push(client, talk(7))).status_code == 202
    await operation(client, "query Fine { talks { totalCount } }")
    await operation(client, "query Fine { talks { totalCount } }")
    await operation(client, "query Half { talks { totalCount } deadLetters { totalCount } }")
    await operation(client, "query Wrong { talkz }")
    await operation(client, '{ talk(id: "7") { id: databaseId } }')
    assert await value(client, OPERATIONS, name="Fine", type="query", outcome="ok") == 2
    assert await value(client, OPERATIONS, name="Half", type="query", outcome="partial") == 1
    assert await value(client, OPERATIONS, name="Wrong", type="query", outcome="error") == 1
    assert await value(client, OPERATIONS, name="anonymous", type="query", outcome="ok") == 1


async def test_a_mutation_is_counted_as_a_mutation(talkme_client: httpx.AsyncClient) -> None:
    response = await talkme_client.post(
        "/graphql",
        json={
            "query": "mutation Pause($input: AgentAuthInput!)"
            " { pauseAgent(input: $input) { status } }",
            "variables": {
                "input": {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}
            },
        },
        headers=bearer(ALL_KEY),
    )
    assert response.json() == {"data": {"pauseAgent": {"status": "PAUSED"}}}
    assert await value(talkme_client, OPERATIONS, name="Pause", type="mutation", outcome="ok") == 1


async def test_an_operation_refused_by_a_limit_is_counted_as_an_error(
    client: httpx.AsyncClient,
) -> None:
    aliases = " ".join(f"a{i}: talks {{ totalCount }}" for i in range(31))
    await operation(client, "query Greedy { " + aliases + " }")
    assert await value(client, OPERATIONS, name="Greedy", type="query", outcome="error") == 1


async def test_an_operation_name_too_long_for_a_label_is_counted_as_anonymous(
    client: httpx.AsyncClient,
) -> None:
    name = "Q" * 200
    await operation(client, f"query {name} {{ talks {{ totalCount }} }}", name)
    names = {ls["name"] for n, ls, _ in await scrape(client) if n == OPERATIONS}
    assert names == {"anonymous"}


# -- refused queries and rate limits --------------------------------------------------------

REJECTED = "talkgate_graphql_rejected_total"
DEEP = "{ talks { edges { node { customer { talks { edges { node { customer { talks { edges {"
DEEP += " node { customer { id: databaseId } } } } } } } } } } } } }"
BOMB = "{ talks(first: 100) { edges { node { customer { talks(first: 100) { edges { node {"
BOMB += " histories(first: 100) { edges { node { id: databaseId } } } } } } } } } } }"
REFUSED = {
    "depth": DEEP,
    "aliases": "{ " + " ".join(f"a{i}: talks {{ totalCount }}" for i in range(31)) + " }",
    "cost": BOMB,
    "tokens": "{ " + "... on Query { __typename } " * 500 + "}",
}


@pytest.mark.parametrize("reason", list(REFUSED))
async def test_refused_queries_are_counted_by_reason(
    client: httpx.AsyncClient, reason: str
) -> None:
    await operation(client, REFUSED[reason])
    await operation(client, REFUSED[reason])
    assert await value(client, REJECTED, reason=reason) == 2
    others = [n for n, ls, v in await scrape(client) if n == REJECTED and ls["reason"] != reason]
    assert others == []


async def test_rate_limited_requests_are_counted(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, rate_limit_per_minute=2))
    async with serving(app) as client:
        statuses = [
            (
                await client.post(
                    "/graphql", json={"query": "{ __typename }"}, headers=bearer(READ_KEY)
                )
            ).status_code
            for _ in range(5)
        ]
        assert statuses == [200, 200, 429, 429, 429]
        assert await value(client, "talkgate_rate_limited_total") == 3


# -- webhook deliveries ---------------------------------------------------------------------

DELIVERIES = "talkgate_webhook_deliveries_total"


async def test_webhook_deliveries_are_counted_by_outcome(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, webhook_max_bytes=64 * 1024))
    async with serving(app) as client:
        assert (await push(client, talk(1))).status_code == 202
        assert (await push(client, talk(2))).status_code == 202
        assert (await push(client, talk(1))).status_code == 202
        assert (await push(client, {"id": "not a talk"})).status_code == 422
        assert (await push(client, talk(3), token="wrong")).status_code == 401
        bad_json = await client.post(
            "/webhooks/talks", content=b"{oops", headers={"X-Webhook-Token": WEBHOOK_SECRET}
        )
        assert bad_json.status_code == 400
        huge = await client.post(
            "/webhooks/talks",
            content=b"[" + b" " * (64 * 1024) + b"]",
            headers={"X-Webhook-Token": WEBHOOK_SECRET},
        )
        assert huge.status_code == 413
        samples = {ls["outcome"]: v for n, ls, v in await scrape(client) if n == DELIVERIES}
    assert samples == {
        "accepted": 2,
        "duplicate": 1,
        "invalid": 1,
        "unauthorized": 1,
        "not_json": 1,
        "too_large": 1,
    }


# -- upstream calls -------------------------------------------------------------------------

UPSTREAM = "talkgate_upstream_calls_total"


async def test_upstream_calls_are_counted_by_operation_and_outcome(
    talkme_client: httpx.AsyncClient, sandbox: Starlette
) -> None:
    state: SandboxState = sandbox.state.sandbox
    credentials = f'{{credentials: {{login: "{AGENT_LOGIN}", password: "%s"}}}}'
    good = credentials % AGENT_PASSWORD
    wrong = credentials % "not-the-password"
    await operation(
        talkme_client, f"mutation {{ pauseAgent(input: {good}) {{ status }} }}", key=ALL_KEY
    )
    await operation(
        talkme_client, f"mutation {{ resumeAgent(input: {good}) {{ status }} }}", key=ALL_KEY
    )
    await operation(
        talkme_client, f"mutation {{ pauseAgent(input: {wrong}) {{ status }} }}", key=ALL_KEY
    )
    await operation(
        talkme_client, f"mutation {{ agentLogout(input: {good}) {{ status }} }}", key=ALL_KEY
    )
    await operation(talkme_client, '{ recording(protocol: "P-1") { url } }', key=ALL_KEY)
    state.missing("P-2")
    await operation(talkme_client, '{ recording(protocol: "P-2") { url } }', key=ALL_KEY)
    state.fail_next(100, status=503)
    await operation(talkme_client, '{ recording(protocol: "P-3") { url } }', key=ALL_KEY)
    state.reset()
    counted = {
        (ls["operation"], ls["outcome"]): v
        for n, ls, v in await scrape(talkme_client)
        if n == UPSTREAM
    }
    assert counted == {
        ("status", "ok"): 2,
        ("status", "rejected"): 1,
        ("logout", "ok"): 1,
        ("fetchaudio", "ok"): 1,
        ("fetchaudio", "not_found"): 1,
        ("fetchaudio", "unavailable"): 1,
    }


# -- who may read them ----------------------------------------------------------------------

METRICS_TOKEN = "metrics-token-7d1e5b0c9a"
PROMETHEUS_TEXT = "talkgate_http_requests_total"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", f"Bearer {ALL_KEY}x", "Bearer tgk_"],
)
async def test_without_an_admin_key_or_the_token_metrics_are_refused_401(
    tmp_path: Path, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with serving(create_app(make_settings(tmp_path))) as client:
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert PROMETHEUS_TEXT not in response.text


@pytest.mark.parametrize("key", [READ_KEY, NO_SCOPE_KEY, PUSH_KEY])
async def test_a_key_without_the_admin_scope_is_refused_403(tmp_path: Path, key: str) -> None:
    async with serving(create_app(make_settings(tmp_path))) as client:
        response = await client.get("/metrics", headers=bearer(key))
    assert response.status_code == 403
    assert PROMETHEUS_TEXT not in response.text


async def test_an_admin_key_or_the_metrics_token_reads_them(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, metrics_token=SecretStr(METRICS_TOKEN)))
    async with serving(app) as client:
        by_key = await client.get("/metrics", headers=bearer(ALL_KEY))
        by_token = await client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert by_key.status_code == by_token.status_code == 200
    assert PROMETHEUS_TEXT in by_token.text


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        st.text(min_size=1, max_size=40).filter(lambda t: t.strip() != METRICS_TOKEN),
        st.integers(0, len(METRICS_TOKEN) - 1).map(lambda n: METRICS_TOKEN[:n]),
        st.just(METRICS_TOKEN.upper()),
        st.just(METRICS_TOKEN + "0"),
    )
)
async def test_only_the_exact_token_reads_them(tmp_path: Path, token: str) -> None:
    app = create_app(make_settings(tmp_path, metrics_token=SecretStr(METRICS_TOKEN)))
    async with serving(app) as client:
        try:
            response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            return  # not a value a header can carry
    assert response.status_code == 401


async def test_the_demo_serves_them_to_this_machine_without_a_key(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, demo=True))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://127.0.0.1:8000"
        ) as client,
    ):
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert PROMETHEUS_TEXT in response.text


async def test_the_demo_refuses_them_to_another_machine(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, demo=True))
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        response = await client.get("/metrics")
    assert response.status_code == 401


# -- on a port of their own -----------------------------------------------------------------


async def test_on_their_own_port_metrics_need_no_key_and_the_main_port_has_none(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(tmp_path, metrics_port=0))
    async with live_server(app) as address:
        port = app.state.metrics_port
        async with httpx.AsyncClient() as client:
            main = await client.get(f"http://{address}/metrics", headers=bearer(ALL_KEY))
            own = await client.get(f"http://127.0.0.1:{port}/metrics")
            elsewhere = await client.get(f"http://127.0.0.1:{port}/graphql")
    assert main.status_code == 404
    assert own.status_code == 200
    assert own.headers["content-type"].startswith("text/plain")
    assert 'talkgate_http_requests_total{method="GET",route="/metrics",status="404"}' in own.text
    assert elsewhere.status_code == 404


async def test_on_their_own_port_the_metrics_token_is_still_asked_for_when_set(
    tmp_path: Path,
) -> None:
    app = create_app(
        make_settings(tmp_path, metrics_port=0, metrics_token=SecretStr(METRICS_TOKEN))
    )
    async with live_server(app):
        url = f"http://127.0.0.1:{app.state.metrics_port}/metrics"
        async with httpx.AsyncClient() as client:
            without = await client.get(url)
            with_token = await client.get(url, headers=bearer(METRICS_TOKEN))
    assert without.status_code == 401
    assert with_token.status_code == 200


async def test_the_metrics_port_closes_with_the_app(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, metrics_port=0))
    async with live_server(app):
        port = app.state.metrics_port
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_metrics_port_in_use_fails_the_start_up_saying_so(tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    app = create_app(make_settings(tmp_path, metrics_port=port))
    try:
        with pytest.raises(OSError, match=f"cannot listen for metrics on 127.0.0.1:{port}"):
            async with LifespanManager(app):
                pass
    finally:
        taken.close()


def test_the_metrics_port_must_differ_from_the_main_port(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must differ from TALKGATE_PORT"):
        make_settings(tmp_path, port=9100, metrics_port=9100)


def test_a_placeholder_metrics_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        make_settings(tmp_path, metrics_token=SecretStr("changethis"))


# -- what a request records, kept in plain dicts until a scrape -----------------------------


def _rendered(registry: object) -> list[tuple[str, Labels, float]]:
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return sorted(
        (
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if not sample.name.endswith("_created")
        ),
        key=repr,
    )


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=40))
def test_kept_observations_render_as_prometheus_client_s_own(amounts: list[float]) -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from gateway.metrics import Metrics

    metrics = Metrics()
    own = CollectorRegistry()
    direct = Histogram(
        metrics.latency._name,
        metrics.latency._documentation,
        ["route"],
        registry=own,
        buckets=metrics.latency._upper_bounds,
    )
    for amount in amounts:  # the bounds themselves included: each is `le`
        metrics.observe(metrics.latency, amount, "/graphql")
        direct.labels("/graphql").observe(amount)
    for amount in (0.005, 0.01, 10, 10.000001):
        metrics.observe(metrics.latency, amount, "/healthz")
        direct.labels("/healthz").observe(amount)
    metrics.flush()
    latency = [s for s in _rendered(metrics.registry) if s[0].startswith(direct._name)]
    assert latency == _rendered(own)


def test_counts_reach_the_collectors_when_scraped_and_only_once() -> None:
    from gateway.metrics import Metrics

    metrics = Metrics()
    for _ in range(3):
        metrics.add(metrics.requests, "/graphql", "POST", "200")
    metrics.count_operation("Talks", "query", "ok")
    metrics.count_cache_outcome("hit")
    child = metrics.labelled(metrics.requests, "/graphql", "POST", "200")
    assert child._value.get() == 0  # kept, not yet in the counter
    # Read without render(): the children are there, at 0 until a scrape flushes.
    assert {v for _, _, v in _rendered(metrics.registry)} == {0.0}
    metrics.render()
    metrics.render()  # a second scrape adds nothing more
    samples = _rendered(metrics.registry)
    labels = {"route": "/graphql", "method": "POST", "status": "200"}
    assert ("talkgate_http_requests_total", labels, 3.0) in samples
    names = {"name": "Talks", "type": "query", "outcome": "ok"}
    assert ("talkgate_graphql_operations_total", names, 1.0) in samples
    assert ("talkgate_response_cache_total", {"outcome": "hit"}, 1.0) in samples


def test_under_several_workers_each_count_goes_to_the_shared_files_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import values

    from gateway.metrics import MULTIPROCESS_DIR_ENV, Metrics

    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(tmp_path))
    # What prometheus_client decides on import when the variable is set: values in files.
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # type: ignore[no-untyped-call]
    metrics = Metrics()
    metrics.add(metrics.requests, "/graphql", "POST", "200")
    metrics.observe(metrics.latency, 0.003, "/graphql")
    # Another worker's scrape reads the files: no flush of this one's comes first.
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    other = CollectorRegistry()
    MultiProcessCollector(other, path=str(tmp_path))  # type: ignore[no-untyped-call]
    samples = _rendered(other)
    labels = {"route": "/graphql", "method": "POST", "status": "200"}
    assert ("talkgate_http_requests_total", labels, 1.0) in samples
    assert ("talkgate_http_request_duration_seconds_count", {"route": "/graphql"}, 1.0) in samples


async def test_event_streams_are_counted_while_subscriptions_hold_them(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    app = create_app(make_settings(tmp_path))
    async with (
        live_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as client,
        connect(f"ws://{address}/graphql", subprotocols=[Subprotocol(PROTOCOL)]) as ws,
    ):
        streams = "talkgate_event_streams"
        assert await value(client, streams, topic="talks") == 0
        socket = GraphQLSocket(ws)
        assert (await socket.init(READ_KEY))["type"] == "connection_ack"
        # Two subscribers of one subscription share its stream; another subscription has its own.
        await socket.subscribe("subscription { talkUpdated { id } }", op_id="1")
        await socket.subscribe("subscription { talkUpdated { id } }", op_id="2")
        await socket.subscribe("subscription { talkUpdated { databaseId } }", op_id="3")
        for _ in range(500):
            if await value(client, streams, topic="talks") == 2:
                break
        assert await value(client, streams, topic="talks") == 2
        for op_id in ("1", "2", "3"):
            await socket.send({"id": op_id, "type": "complete"})
        for _ in range(500):
            if await value(client, streams, topic="talks") == 0:
                break
        assert await value(client, streams, topic="talks") == 0
