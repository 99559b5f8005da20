"""Finding 7: a browser made to act on the demo (DNS rebinding, cross-site writes, cross-site
WebSocket hijacking).

The demo grants every scope to whatever reaches it from this machine. A page whose name is
rebound to 127.0.0.1 reaches it from this machine with its own name as Host; any page can
make the browser POST a `text/plain` body or open a WebSocket to it. Each is refused now:
400 for a Host that is not a loopback name, 403 for a foreign Origin (an HTTP write from a
page not served by this machine, a WebSocket upgrade from any other origin than the
gateway's), 415 for a write whose body is not declared `application/json`. Pages served by
this machine (a frontend's dev server on `localhost:5173`) may call the demo over HTTP:
anything on this machine may already call it without a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gateway.demo.wiring import SANDBOX_PREFIX
from gateway.http.app import create_app
from tests.abuse.bounds import bounded
from tests.factories import talk
from tests.strategies import served_examples
from tests.support import live_server, make_settings

OWN = "http://127.0.0.1:8000"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
PII = '{ customer(id: "500000") { telephones { number } } }'
PHONE = "999887766"  # the demo customer's
COUNT = "{ talks { totalCount } }"
FUZZ = served_examples(80)

# Names a rebinding page could bring, and malformed values: none is a loopback name.
FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.nip.io",
    "127.0.0.1.nip.io:8000",
    "localhost.evil.com",
    "localhost.evil.com:8000",
    "evil.localhost.example:8000",
    "localhost.",
    "localhost.:8000",
    "127.0.0.1.",
    "[::1].evil.com",
    "[::2]:8000",
    "[::ffff:127.0.0.1]:8000",
    "[::1",
    "::1",
    "::1:8000",
    "127.1:8000",
    "127.0.0.2:8000",
    "2130706433:8000",
    "0.0.0.0:8000",
    "localhost:8000:8000",
    "localhost:http",
    "localhost:",
    "localhost:123456",
    " localhost",
    "localhost\t",
    "",
]
LOOPBACK = [
    "localhost",
    "localhost:8000",
    "LOCALHOST:8000",
    "LocalHost",
    "127.0.0.1",
    "127.0.0.1:8000",
    "127.0.0.1:1",
    "[::1]",
    "[::1]:8000",
    "[::1]:65535",
]


def demo_app(tmp_path: Path, **overrides: Any) -> Starlette:
    """`serve --demo` as it starts by default: no keys asked of this machine, no webhook
    secret."""
    return create_app(make_settings(tmp_path, demo=True, webhook_secret=None, **overrides))


@asynccontextmanager
async def demo(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the demo from this machine (127.0.0.1), addressing it as OWN."""
    app = demo_app(tmp_path, **overrides)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=OWN) as client:
            yield client


async def talks_stored(client: httpx.AsyncClient) -> int:
    response = await client.post("/graphql", json={"query": COUNT})
    assert response.status_code == 200, response.text
    count: int = response.json()["data"]["talks"]["totalCount"]
    return count


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert PHONE not in response.text
    body = response.json()
    assert body.get("data") is None
    assert "telephones" not in response.text


# -- Host: DNS rebinding --------------------------------------------------------------------


async def test_a_rebound_name_gets_nothing_from_the_demo(tmp_path: Path) -> None:
    async with demo(tmp_path) as client:
        before = await talks_stored(client)
        answers: list[tuple[str, httpx.Response]] = []
        async with bounded(
            "rebinding: 27 foreign Hosts x 4 routes", seconds=10, peak_mib=40, stall_ms=2000
        ) as figures:
            for host in FOREIGN_HOSTS:
                headers = {"Host": host}
                answers += [
                    (host, await client.post("/graphql", json={"query": PII}, headers=headers)),
                    (host, await client.get("/graphql", params={"query": PII}, headers=headers)),
                    (host, await client.post("/webhooks/talks", json=talk(990), headers=headers)),
                    (host, await client.get("/metrics", headers=headers)),
                ]
            figures.extra["requests"] = len(answers)
        after = await talks_stored(client)
    for host, answer in answers:
        assert answer.status_code == 400, (host, answer.status_code, answer.text[:200])
        assert "does not answer to that Host" in answer.text, host
    assert after == before


@pytest.mark.parametrize("host", LOOPBACK)
async def test_a_loopback_name_with_any_port_is_answered(tmp_path: Path, host: str) -> None:
    async with demo(tmp_path) as client:
        response = await client.post("/graphql", json={"query": PII}, headers={"Host": host})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["customer"]["telephones"]


@FUZZ
@given(
    name=st.one_of(
        st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True),
        st.sampled_from(LOOPBACK_HOSTS).flatmap(
            lambda loopback: st.sampled_from(
                [f"{loopback}.evil.com", f"evil.{loopback}", f"{loopback}.", f"{loopback}x"]
            )
        ),
    ),
    port=st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}")),
)
async def test_any_other_name_is_refused(tmp_path: Path, name: str, port: str) -> None:
    async with demo(tmp_path) as client:
        response = await client.post("/graphql", json={"query": PII}, headers={"Host": name + port})
    if name in LOOPBACK_HOSTS:
        assert response.status_code == 200
    else:
        assert_refused(response, 400)


async def test_two_host_headers_are_refused(tmp_path: Path) -> None:
    async with demo(tmp_path) as client:
        response = await client.post(
            "/graphql",
            json={"query": PII},
            headers=[("Host", "127.0.0.1:8000"), ("Host", "evil.example")],
        )
    assert_refused(response, 400)


# -- Origin: cross-site writes --------------------------------------------------------------

FOREIGN_ORIGINS = [
    "http://evil.example",
    "https://evil.example",
    "null",
    "NULL",
    "ws://127.0.0.1:8000",  # not a page's origin
    "http://127.0.0.1:8000.evil.example",
    "http://localhost.evil.example:5173",
    "http://127.0.0.1.nip.io:5173",
    "http://[::1].evil.example",
    "http://127.0.0.1:8000/",
    "http://127.0.0.1:8000/graphql",
    "http://user@127.0.0.1:8000",
    "file://",
    "127.0.0.1:8000",
    "",
]


async def test_a_foreign_origin_can_neither_read_nor_write(tmp_path: Path) -> None:
    async with demo(tmp_path) as client:
        before = await talks_stored(client)
        answers: list[tuple[str, str, httpx.Response]] = []
        async with bounded(
            f"cross-site writes: {len(FOREIGN_ORIGINS)} foreign Origins x 3 writes",
            seconds=10,
            peak_mib=40,
            stall_ms=2000,
        ) as figures:
            for origin in FOREIGN_ORIGINS:
                headers = {"Origin": origin}
                login = 'mutation { agentLogin(input: {login: "1001", password: "demo-password"})'
                answers += [
                    (
                        origin,
                        "pii",
                        await client.post("/graphql", json={"query": PII}, headers=headers),
                    ),
                    (
                        origin,
                        "login",
                        await client.post(
                            "/graphql", json={"query": login + " { launchUrl } }"}, headers=headers
                        ),
                    ),
                    (
                        origin,
                        "webhook",
                        await client.post("/webhooks/talks", json=talk(991), headers=headers),
                    ),
                ]
            figures.extra["requests"] = len(answers)
        after = await talks_stored(client)
    for origin, what, answer in answers:
        assert answer.status_code == 403, (origin, what, answer.text[:200])
        assert "cross-origin request refused" in answer.text
        assert "launchUrl" not in answer.text
    assert after == before


# Pages served from this machine (a frontend's dev server): the demo answers to loopback
# only, and anything on this machine may call it without a key anyway.
THIS_MACHINES_PAGES = [
    "http://127.0.0.1:8001",  # another port
    "http://127.0.0.1",
    "https://127.0.0.1:8000",
    "http://localhost:5173",
    "http://[::1]:3000",
]


@pytest.mark.parametrize("origin", THIS_MACHINES_PAGES)
async def test_a_page_on_this_machine_may_call_the_demo(tmp_path: Path, origin: str) -> None:
    async with demo(tmp_path) as client:
        asked = await client.options(
            "/graphql",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        answer = await client.post("/graphql", json={"query": PII}, headers={"Origin": origin})
    assert asked.status_code == 200, asked.text
    assert asked.headers["access-control-allow-origin"] == origin
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", [None, OWN, OWN.upper(), "http://app.example"])
async def test_no_origin_the_own_origin_or_a_configured_one_may_write(
    tmp_path: Path, origin: str | None
) -> None:
    headers = {"Origin": origin} if origin else {}
    async with demo(tmp_path, cors_origins=("http://app.example",)) as client:
        response = await client.post("/webhooks/talks", json=talk(992), headers=headers)
        stored = await talks_stored(client)
    assert response.status_code == 202, response.text
    assert stored >= 1


async def test_two_origin_headers_are_refused(tmp_path: Path) -> None:
    async with demo(tmp_path) as client:
        response = await client.post(
            "/graphql",
            json={"query": PII},
            headers=[("Origin", OWN), ("Origin", "http://evil.example")],
        )
    assert_refused(response, 403)


@FUZZ
@given(
    scheme=st.sampled_from(["http", "https", "ws", "ftp"]),
    host=st.sampled_from(["127.0.0.1", "localhost", "[::1]", "evil.example", "127.0.0.1.nip.io"]),
    port=st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
)
async def test_only_the_pages_of_this_machine_pass(
    tmp_path: Path, scheme: str, host: str, port: str
) -> None:
    origin = f"{scheme}://{host}{port}"
    async with demo(tmp_path) as client:
        response = await client.post("/graphql", json={"query": PII}, headers={"Origin": origin})
    if scheme in ("http", "https") and host in LOOPBACK_HOSTS:
        assert response.status_code == 200
    else:
        assert_refused(response, 403)


# -- Content-Type: what a browser sends without asking --------------------------------------

REFUSED_TYPES = [
    None,
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonp",
    "application/json-patch+json",
    "application/graphql-response+json",
    "application/graphql",
    "application/json, text/plain",
    "text/json",
    "",
]
# (strawberry compares the type case-sensitively: `Application/JSON` passes the edge, and
# /graphql answers it 400.)
ALLOWED_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
]


async def test_a_write_not_declared_as_json_is_refused_415(tmp_path: Path) -> None:
    body = json.dumps(talk(993)).encode()
    query = json.dumps({"query": PII}).encode()
    async with demo(tmp_path) as client:
        before = await talks_stored(client)
        answers: list[tuple[str | None, str, httpx.Response]] = []
        async with bounded(
            "cross-site bodies: 12 Content-Types x 2 routes",
            seconds=10,
            peak_mib=40,
            stall_ms=2000,
        ) as figures:
            for content_type in REFUSED_TYPES:
                headers = {"Content-Type": content_type} if content_type is not None else {}
                answers += [
                    (
                        content_type,
                        "webhook",
                        await client.post("/webhooks/talks", content=body, headers=headers),
                    ),
                    (
                        content_type,
                        "graphql",
                        await client.post("/graphql", content=query, headers=headers),
                    ),
                ]
            figures.extra["requests"] = len(answers)
        after = await talks_stored(client)
    for content_type, route, answer in answers:
        assert answer.status_code == 415, (content_type, route, answer.text[:200])
        assert "Content-Type: application/json" in answer.text
    assert after == before


@pytest.mark.parametrize("content_type", ALLOWED_TYPES)
async def test_json_with_or_without_parameters_is_taken(tmp_path: Path, content_type: str) -> None:
    async with demo(tmp_path) as client:
        response = await client.post(
            "/webhooks/talks",
            content=json.dumps(talk(994)).encode(),
            headers={"Content-Type": content_type},
        )
        answered = await client.post(
            "/graphql",
            content=json.dumps({"query": PII}).encode(),
            headers={"Content-Type": content_type},
        )
    assert response.status_code == 202, response.text
    assert answered.status_code == 200
    assert answered.json()["data"]["customer"]["telephones"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_writing_methods_follow_the_same_rules(tmp_path: Path, method: str) -> None:
    async with demo(tmp_path) as client:
        as_text = await client.request(
            method, "/graphql", content=b"{}", headers={"Content-Type": "text/plain"}
        )
        foreign = await client.request(
            method, "/graphql", json={}, headers={"Origin": "http://evil.example"}
        )
    assert as_text.status_code == 415
    assert foreign.status_code == 403


async def test_a_mutation_cannot_run_by_get(tmp_path: Path) -> None:
    login = (
        'mutation { agentLogin(input: {login: "1001", password: "demo-password"}) { launchUrl } }'
    )
    async with demo(tmp_path) as client:
        response = await client.get("/graphql", params={"query": login})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


# -- WebSocket: cross-site hijacking --------------------------------------------------------


async def socket_answer(uri: str, *, origin: str | None = None, at: tuple[str, int]) -> Any:
    """Open graphql-transport-ws at `uri` (connecting to `at`), ask PII without a key: the
    answer, or the HTTP status the upgrade was refused with."""
    try:
        async with connect(
            uri,
            host=at[0],
            port=at[1],
            origin=origin,  # type: ignore[arg-type]
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            open_timeout=5,
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            ack = json.loads(await ws.recv(decode=True))
            if ack["type"] != "connection_ack":
                return ack
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PII}}))
            return json.loads(await ws.recv(decode=True))
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_a_socket_from_a_foreign_origin_or_host_is_refused(tmp_path: Path) -> None:
    app = demo_app(tmp_path)
    async with live_server(app) as address:
        host, port = address.rsplit(":", 1)
        at = (host, int(port))
        own = f"http://{address}"
        uri = f"ws://{address}/graphql"
        cases: dict[str, tuple[str, str | None]] = {
            "foreign origin": (uri, "http://evil.example"),
            "null origin": (uri, "null"),
            "other port": (uri, f"http://{host}:{int(port) + 1}"),
            "other scheme": (uri, f"https://{address}"),
            "rebound host": (f"ws://evil.example:{port}/graphql", f"http://evil.example:{port}"),
            "rebound host, no origin": (f"ws://127.0.0.1.nip.io:{port}/graphql", None),
        }
        answers: dict[str, Any] = {}
        async with bounded(
            "cross-site sockets: 6 upgrades", seconds=10, peak_mib=40, stall_ms=2000
        ):
            for name, (where, origin) in cases.items():
                answers[name] = await socket_answer(where, origin=origin, at=at)
        same_origin = await socket_answer(uri, origin=own, at=at)
        no_origin = await socket_answer(uri, at=at)
    assert answers == dict.fromkeys(cases, 403)
    for allowed in (same_origin, no_origin):
        assert allowed["type"] == "next", allowed
        assert allowed["payload"]["data"]["customer"]["telephones"]


# -- what the demo still does ---------------------------------------------------------------


async def test_the_launch_page_still_logs_into_the_sandbox_by_its_form(tmp_path: Path) -> None:
    """The sandbox plays Talk.me, whose login form takes the launch page's form post: a
    form body, and `Origin: null` (the page sends no referrer)."""
    login = (
        'mutation { agentLogin(input: {login: "1001", password: "demo-password"}) { launchUrl } }'
    )
    async with demo(tmp_path) as client:
        answer = await client.post("/graphql", json={"query": login}, headers={"Origin": OWN})
        launch_url = answer.json()["data"]["agentLogin"]["launchUrl"]
        page = await client.get(urlsplit(launch_url).path)
        action = re.search(r'action="([^"]+)"', page.text)
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        assert action is not None
        assert urlsplit(action.group(1)).path == SANDBOX_PREFIX + "/login"
        submitted = await client.post(
            urlsplit(action.group(1)).path, data=fields, headers={"Origin": "null"}
        )
    assert submitted.status_code == 200, submitted.text
    assert "logged in (sandbox)" in submitted.text


# -- every state-changing route, cross-site: refused and stored nowhere ----------------------

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a page elsewhere makes the browser send without asking (no preflight).
SIMPLE_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
]
FOREIGN_ORIGINS = ["http://evil.example", "null", "http://127.0.0.1.nip.io:8000"]
PAUSE = (
    'mutation { pauseAgent(input: {credentials: {login: "1001", password: "demo-password"}})'
    " { status } }"
)


def write_routes(app: Starlette) -> list[tuple[str, str]]:
    """(method, path) of every route of `app` that takes a write, mounted ones included;
    `{parameters}` filled in. The sandbox's login form is Talk.me's, which takes a cross-site
    form post by design."""
    found: list[tuple[str, str]] = []

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                methods = WRITES if route.methods is None else WRITES & route.methods
                path = re.sub(r"\{[^}]*\}", "x", prefix + route.path)
                found.extend((m, path) for m in sorted(methods))

    walk(app.routes, "")
    return [(m, p) for m, p in found if p != SANDBOX_PREFIX + "/login"]


WRITE_ROUTES = write_routes(demo_app(Path("unused")))  # built, never started


def test_the_write_routes_are_found() -> None:
    routes = WRITE_ROUTES
    assert ("POST", "/graphql") in routes
    assert ("POST", "/webhooks/talks") in routes
    assert ("POST", SANDBOX_PREFIX + "/talkme-ui/integration/attendants/status") in routes


async def stored_state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={
            "query": '{ talks { totalCount } deadLetters { totalCount } agent(login: "1001")'
            " { queueStatus { status } } }"
        },
    )
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()["data"]
    return state


@FUZZ
@given(
    route=st.sampled_from(WRITE_ROUTES),
    origin=st.sampled_from([None, *FOREIGN_ORIGINS]),
    content_type=st.sampled_from([*SIMPLE_TYPES, "application/json"]),
    body=st.sampled_from(
        [
            json.dumps(talk(995)).encode(),
            json.dumps({"query": PAUSE}).encode(),
            b"id=995&customer_id=1",
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n",
        ]
    ),
)
async def test_a_cross_site_write_is_refused_and_stored_nowhere(
    tmp_path_factory: pytest.TempPathFactory,
    route: tuple[str, str],
    origin: str | None,
    content_type: str,
    body: bytes,
) -> None:
    """A page elsewhere may post a text/plain or form body (no Origin check would see a
    same-site one), or any body from its own origin: every write route refuses both, and
    nothing reaches the store, not even as a dead letter (a refused cross-site write is no
    delivery)."""
    if origin is None and content_type == "application/json":
        origin = FOREIGN_ORIGINS[0]  # JSON from no origin is no cross-site write
    method, path = route
    headers = {"Content-Type": content_type, **({"Origin": origin} if origin else {})}
    async with demo(tmp_path_factory.mktemp("demo")) as client:
        before = await stored_state(client)
        response = await client.request(method, path, content=body, headers=headers)
        after = await stored_state(client)
    assert response.status_code == (403 if origin else 415), (route, response.text)
    assert after == before
    assert before["deadLetters"] == {"totalCount": 0}
    assert before["agent"]["queueStatus"]["status"] == "UNKNOWN"
