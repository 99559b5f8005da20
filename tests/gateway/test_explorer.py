"""The explorer page: served from its build with a strict policy, or the CDN GraphiQL.

A tiny stand-in build in a tmp dir plays the npm build here, so these tests need no network.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.explorer import BUILD_COMMAND
from tests.conftest import make_settings, serving

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PAGE = (
    '<!doctype html><html><head><meta name="talkgate-demo-key" content="" />'
    '<script defer src="/explorer/assets/explorer.js"></script></head>'
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
    async with serving(app) as client:
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


async def test_without_a_build_browsers_get_the_cdn_graphiql(tmp_path: Path) -> None:
    async with gateway(tmp_path, tmp_path / "not-built") as client:
        graphql = await client.get("/graphql", headers=BROWSER)
        explorer = await client.get("/explorer", headers=BROWSER, follow_redirects=False)
    assert graphql.status_code == 200
    assert "unpkg.com" in graphql.headers["content-security-policy"]
    assert explorer.status_code == 307
    assert explorer.headers["location"] == "/graphql"


async def test_without_a_build_one_line_at_start_up_says_how_to_build_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="talkgate")
    async with gateway(tmp_path, tmp_path / "not-built") as client:
        await client.get("/graphql", headers=BROWSER)
        await client.get("/graphql", headers=BROWSER)
    lines = [r.getMessage() for r in caplog.records if BUILD_COMMAND in r.getMessage()]
    assert len(lines) == 1


async def test_with_a_build_or_graphiql_off_nothing_is_logged_about_it(
    tmp_path: Path, build: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="talkgate")
    async with gateway(tmp_path, build):
        pass
    async with gateway(tmp_path, tmp_path / "not-built", graphiql=False):
        pass
    assert not [r for r in caplog.records if BUILD_COMMAND in r.getMessage()]
