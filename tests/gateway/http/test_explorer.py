"""The explorer page: served from its build with a strict policy, or a page saying how to
build it; never GraphiQL from a CDN, never `unsafe-inline`.

A tiny stand-in build in a tmp dir plays the npm build here, so these tests need no network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.http.app import create_app
from gateway.http.explorer import BUILD_COMMAND
from tests.support import READ_KEY, make_settings, serving

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PAGE = (
    '<!doctype html><html><head><meta name="talkgate-demo-key" content="" />'
    '<script defer src="/explorer/assets/explorer.js" nonce=""></script></head>'
    '<body><div id="explorer"></div></body></html>'
)


@pytest.fixture
def build(tmp_path: Path) -> Path:
    directory = tmp_path / "explorer-build"
    directory.mkdir()
    (directory / "index.html").write_text(PAGE)
    (directory / "explorer.js").write_text("console.log('explorer');\n")
    (directory / "explorer.css").write_text("body { margin: 0; }\n")
    return directory


@asynccontextmanager
async def gateway(
    tmp_path: Path, explorer_dir: Path, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, **overrides), explorer_dir=explorer_dir)
    async with serving(app) as client:
        yield client


def policy(response: httpx.Response) -> list[str]:
    return [p.strip() for p in response.headers["content-security-policy"].split(";")]


def directive(response: httpx.Response, name: str) -> list[str]:
    """The sources of one directive of the response's policy."""
    [found] = [rule.split()[1:] for rule in policy(response) if rule.split()[0] == name]
    return found


NONCE = re.compile(r'<script defer src="/explorer/assets/explorer.js" nonce="([^"]+)">')
CDNS = ("unpkg.com", "jsdelivr", "cdnjs", "http:", "https:")


@pytest.mark.parametrize("path", ["/explorer", "/graphql"])
async def test_a_browser_gets_the_built_page_without_a_key(
    tmp_path: Path, build: Path, path: str
) -> None:
    async with gateway(tmp_path, build) as client:
        response = await client.get(path, headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<div id="explorer">' in response.text


async def test_the_page_allows_only_its_own_origin(tmp_path: Path, build: Path) -> None:
    async with gateway(tmp_path, build) as client:
        response = await client.get("/explorer", headers=BROWSER)
    rules = policy(response)
    assert "default-src 'self'" in rules
    assert "script-src 'self'" in rules
    assert "connect-src 'self'" in rules
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in rules
    assert "base-uri 'none'" in rules
    assert "http" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


async def test_the_page_has_no_inline_script(tmp_path: Path, build: Path) -> None:
    async with gateway(tmp_path, build) as client:
        response = await client.get("/explorer", headers=BROWSER)
    assert "<script>" not in response.text.replace(" ", "")


async def test_inline_style_is_admitted_only_by_a_fresh_nonce_given_to_the_script(
    tmp_path: Path, build: Path
) -> None:
    async with gateway(tmp_path, build) as client:
        pages = [await client.get(path, headers=BROWSER) for path in ("/explorer", "/graphql")]
        pages.append(await client.get("/explorer", headers=BROWSER))
    nonces = []
    for page in pages:
        found = NONCE.search(page.text)
        assert found, page.text
        nonces.append(found.group(1))
        assert directive(page, "style-src") == ["'self'", f"'nonce-{found.group(1)}'"]
        assert directive(page, "script-src") == ["'self'"]
    assert len(set(nonces)) == len(nonces)
    assert all(len(n) >= 16 for n in nonces)


async def test_assets_are_served_with_the_same_policy(tmp_path: Path, build: Path) -> None:
    async with gateway(tmp_path, build) as client:
        script = await client.get("/explorer/assets/explorer.js")
        style = await client.get("/explorer/assets/explorer.css")
        missing = await client.get("/explorer/assets/nothing.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.text == "console.log('explorer');\n"
    assert style.headers["content-type"].startswith("text/css")
    assert "script-src 'self'" in policy(script)
    assert directive(style, "style-src") == ["'self'"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert missing.status_code == 404


async def test_an_operation_by_get_is_still_answered_beside_the_page(
    tmp_path: Path, build: Path
) -> None:
    async with gateway(tmp_path, build) as client:
        response = await client.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 401


async def test_with_graphiql_off_there_is_no_page_on_either_path(
    tmp_path: Path, build: Path
) -> None:
    async with gateway(tmp_path, build, graphiql=False) as client:
        explorer = await client.get("/explorer", headers=BROWSER)
        graphql = await client.get("/graphql", headers=BROWSER)
        asset = await client.get("/explorer/assets/explorer.js")
    assert explorer.status_code == 404
    assert graphql.status_code == 401
    assert asset.status_code == 404


async def test_the_demo_page_carries_the_demo_key_which_has_every_scope(
    tmp_path: Path, build: Path
) -> None:
    app = create_app(make_settings(tmp_path, demo=True), explorer_dir=build)
    key = app.state.demo_key
    assert key
    # The demo answers to loopback names only.
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://localhost:8000"
        ) as client,
    ):
        page = await client.get("/explorer", headers=BROWSER)
        pii = await client.post(
            "/graphql",
            json={"query": '{ customer(id: "144527") { telephones { number } } }'},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert f'<meta name="talkgate-demo-key" content="{key}" />' in page.text
    assert pii.status_code == 200
    assert "errors" not in pii.json()


async def test_outside_demo_the_page_carries_no_key(tmp_path: Path, build: Path) -> None:
    app = create_app(make_settings(tmp_path), explorer_dir=build)
    assert app.state.demo_key is None
    async with serving(app) as client:
        page = await client.get("/explorer", headers=BROWSER)
    assert '<meta name="talkgate-demo-key" content="" />' in page.text


# -- not built ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/explorer", "/graphql"])
async def test_without_a_build_browsers_get_a_page_saying_how_to_build_it(
    tmp_path: Path, path: str
) -> None:
    async with gateway(tmp_path, tmp_path / "not-built") as client:
        response = await client.get(path, headers=BROWSER, follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "not built" in response.text
    assert BUILD_COMMAND.replace("&", "&amp;") in response.text


@pytest.mark.parametrize("path", ["/explorer", "/graphql"])
async def test_without_a_build_the_page_has_no_script_and_loads_nothing(
    tmp_path: Path, path: str
) -> None:
    async with gateway(tmp_path, tmp_path / "not-built") as client:
        response = await client.get(path, headers=BROWSER)
    rules = policy(response)
    assert "default-src 'none'" in rules
    assert "frame-ancestors 'none'" in rules
    assert "base-uri 'none'" in rules
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "<script" not in response.text.lower()
    assert "<style" not in response.text.lower()
    assert not [cdn for cdn in CDNS if cdn in response.text or cdn in str(response.headers)]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("built", [True, False], ids=["built", "not built"])
@pytest.mark.parametrize("accept", ["*/*", "text/html", "application/json", ""])
async def test_no_answer_on_graphql_is_graphiql_from_a_cdn(
    tmp_path: Path, build: Path, built: bool, accept: str
) -> None:
    explorer_dir = build if built else tmp_path / "not-built"
    async with gateway(tmp_path, explorer_dir) as client:
        answers = [
            await client.get("/graphql", headers={"Accept": accept}),
            await client.get(
                "/graphql", headers={"Accept": accept, "Authorization": f"Bearer {READ_KEY}"}
            ),
        ]
    for answer in answers:
        assert "unpkg.com" not in answer.text
        assert "jsdelivr" not in answer.text
        assert "unsafe-inline" not in answer.headers.get("content-security-policy", "")


async def test_without_a_build_one_line_at_start_up_says_how_to_build_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="talkgate")
    async with gateway(tmp_path, tmp_path / "not-built") as client:
        await client.get("/graphql", headers=BROWSER)
        await client.get("/graphql", headers=BROWSER)
    lines = [r.getMessage() for r in caplog.records if BUILD_COMMAND in r.getMessage()]
    assert len(lines) == 1


@pytest.mark.parametrize("built", [True, False], ids=["built", "not built"])
async def test_with_graphiql_off_no_page_is_served_built_or_not(
    tmp_path: Path, build: Path, built: bool
) -> None:
    explorer_dir = build if built else tmp_path / "not-built"
    key = {"Authorization": f"Bearer {READ_KEY}"}
    async with gateway(tmp_path, explorer_dir, graphiql=False) as client:
        answers = [
            await client.get("/explorer", headers=BROWSER),
            await client.get("/explorer/assets/explorer.js"),
            await client.get("/graphql", headers=BROWSER),
            await client.get("/graphql", headers={**BROWSER, **key}),
            await client.get("/graphql", headers={"Accept": "*/*", **key}),
        ]
    # A GET /graphql without a document is a request error (400) with a key, as any client's.
    assert [a.status_code for a in answers] == [404, 404, 401, 400, 400]
    for answer in answers:
        assert not answer.headers.get("content-type", "").startswith("text/html")
        assert "graphiql" not in answer.text.lower()


async def test_with_a_build_or_graphiql_off_nothing_is_logged_about_it(
    tmp_path: Path, build: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="talkgate")
    async with gateway(tmp_path, build):
        pass
    async with gateway(tmp_path, tmp_path / "not-built", graphiql=False):
        pass
    assert not [r for r in caplog.records if BUILD_COMMAND in r.getMessage()]
