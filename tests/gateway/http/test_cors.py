"""Preflights a browser sends before calling from another origin: allowed as the settings
say (and, in the demo, from any page on this machine), refused with one line naming the
setting that would allow them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.app import create_app
from gateway.http.cors import LOOPBACK_ORIGINS
from tests.support import make_settings


@asynccontextmanager
async def gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, **overrides))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        # The demo answers to loopback names only.
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as c:
            yield c


def preflight(origin: str, method: str = "POST", headers: str = "content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.mark.parametrize(
    ("overrides", "origin"),
    [
        ({}, "http://localhost:5173"),  # no CORS set: even a local page is another origin
        ({"cors_origins": ("https://app.example",)}, "https://other.example"),
        ({"demo": True}, "https://app.example"),
    ],
    ids=["none set", "another origin", "demo, not this machine"],
)
async def test_a_refused_preflight_names_the_setting_that_allows_it(
    tmp_path: Path, overrides: dict[str, Any], origin: str
) -> None:
    async with gateway(tmp_path, **overrides) as client:
        answer = await client.options("/graphql", headers=preflight(origin))
    assert answer.status_code == 403
    assert answer.text == (
        f"CORS preflight refused: the origin {origin} is not allowed: add it to"
        " TALKGATE_CORS_ORIGINS"
    )
    assert "access-control-allow-origin" not in answer.headers


async def test_a_preflight_asking_for_more_than_is_allowed_says_what_is(tmp_path: Path) -> None:
    origin = "https://app.example"
    async with gateway(tmp_path, cors_origins=(origin,)) as client:
        method = await client.options("/graphql", headers=preflight(origin, method="DELETE"))
        header = await client.options("/graphql", headers=preflight(origin, headers="x-secret"))
    for answer in (method, header):
        assert answer.status_code == 403
        assert "only GET and POST, with the headers Authorization, Content-Type" in answer.text
    assert "asked: DELETE" in method.text
    assert "asked: POST with x-secret" in header.text


async def test_an_options_request_that_is_no_preflight_goes_on_to_the_route(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as client:
        answer = await client.options("/graphql", headers={"Origin": "https://app.example"})
    # The route's own answer (here: not a method it takes), not a CORS one.
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert "CORS" not in answer.text


@pytest.mark.parametrize("port", ["", ":3000", ":5173", ":8000"])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
async def test_the_demo_admits_a_frontends_dev_server_on_this_machine(
    tmp_path: Path, host: str, port: str
) -> None:
    origin = f"http://{host}{port}"
    async with gateway(tmp_path, demo=True) as client:
        asked = await client.options("/graphql", headers=preflight(origin, headers="authorization"))
        posted = await client.post(
            "/graphql", json={"query": "{ talks { totalCount } }"}, headers={"Origin": origin}
        )
    assert asked.status_code == 200
    assert asked.headers["access-control-allow-origin"] == origin
    assert posted.status_code == 200
    assert posted.json()["data"]["talks"]["totalCount"] == 40
    assert posted.headers["access-control-allow-origin"] == origin


# Names that only look like this machine's.
LOOKALIKES = st.sampled_from(
    [
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "evil.localhost",
        "localhost@evil.example",
        "[::1].evil.example",
        "127.0.0.2",
        "localhostx",
        "127.0.0.1:5173.evil.example",
    ]
)


@given(
    scheme=st.sampled_from(["http", "https", "ws", "file", "HTTP"]),
    host=st.one_of(LOOKALIKES, st.sampled_from(["localhost", "127.0.0.1", "[::1]"])),
    port=st.one_of(st.just(""), st.integers(0, 99_999).map(lambda p: f":{p}")),
    tail=st.sampled_from(["", "/", "/graphql", ".", " "]),
)
def test_the_loopback_pattern_admits_this_machines_pages_only(
    scheme: str, host: str, port: str, tail: str
) -> None:
    origin = f"{scheme}://{host}{port}{tail}"
    admitted = re.fullmatch(LOOPBACK_ORIGINS, origin) is not None
    this_machine = (
        scheme in ("http", "https")
        and host in ("localhost", "127.0.0.1", "[::1]")
        and len(port) <= 6
        and tail == ""
    )
    assert admitted == this_machine, origin
