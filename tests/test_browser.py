"""The explorer in a real browser: Debian's headless Chromium, driven by Playwright.

Opens /explorer on a live gateway, puts a key in the headers tab, runs the talks example and
a talkUpdated subscription, opens GraphiQL's dialogs (they add a <style> at run time), and
checks that the page never left the gateway's origin and that its strict policy (no CDN, no
`unsafe-inline`) blocked nothing.
Screenshots go to the test's tmp dir; their paths are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from graphql import FieldNode, OperationDefinitionNode, OperationType, parse

from gateway.http.app import create_app
from gateway.http.explorer import BUILD_COMMAND, EXPLORER_DIR
from schema import node
from tests.backends import unavailable
from tests.factories import talk
from tests.support import ALL_KEY, WEBHOOK_SECRET, live_server, make_settings, until_subscribed

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# As root, on a machine with no way out: no sandbox, and no background calls to Google.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

SET_HEADERS = """(value) => {
  const editor = document.querySelector(
    ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror");
  editor.CodeMirror.setValue(value);
}"""
RESULT = """() => {
  const result = document.querySelector(".result-window .CodeMirror");
  return result ? result.CodeMirror.getValue() : "";
}"""
RESULT_HAS = f"(text) => ({RESULT})().includes(text)"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)")
    if not (EXPLORER_DIR / "index.html").is_file():
        unavailable(f"the explorer is not built in {EXPLORER_DIR}: run `{BUILD_COMMAND}`")
    if importlib.util.find_spec("playwright") is None:
        unavailable("playwright (the test extra) is not installed")
    return CHROMIUM


async def test_the_explorer_runs_a_query_and_a_subscription_from_this_origin_only(
    tmp_path: Path, chromium: Path
) -> None:
    from playwright.async_api import WebSocket, async_playwright

    requested: list[str] = []
    console: list[str] = []
    subscribed = asyncio.Event()

    def on_websocket(socket: WebSocket) -> None:
        requested.append(socket.url)
        socket.on(
            "framesent",
            lambda frame: subscribed.set() if '"subscribe"' in str(frame) else None,
        )

    app = create_app(make_settings(tmp_path))
    async with live_server(app) as host, async_playwright() as playwright:
        base = f"http://{host}"
        async with httpx.AsyncClient(
            base_url=base, headers={"X-Webhook-Token": WEBHOOK_SECRET}
        ) as hook:
            assert (await hook.post("/webhooks/talks", json=talk(7101))).status_code == 202
            browser = await playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=FLAGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("request", lambda request: requested.append(request.url))
                page.on("websocket", on_websocket)
                page.on("console", lambda message: console.append(message.text))
                loaded = await page.goto(f"{base}/explorer")
                assert loaded is not None
                served_policy = (await loaded.all_headers())["content-security-policy"]
                await page.wait_for_selector(".graphiql-execute-button")
                headers = json.dumps({"Authorization": f"Bearer {ALL_KEY}"})

                # The first tab is the page of talks.
                await page.evaluate(SET_HEADERS, headers)
                await page.click(".graphiql-execute-button")
                await page.wait_for_function(RESULT_HAS, arg='"TN7101"', timeout=15_000)
                result = json.loads(await page.evaluate(RESULT))
                edges = result["data"]["talks"]["edges"]
                assert [e["node"]["id"] for e in edges] == [node.encode("Talk", 7101)]
                assert edges[0]["cursor"]
                # Once the key was used, the schema loads: the explorer plugin lists fields.
                await page.click("button[aria-label='Re-fetch GraphQL schema']")
                await page.click("button[aria-label='Show GraphiQL Explorer']")
                await page.wait_for_selector(".graphiql-explorer-root :text-is('customers')")
                shot = tmp_path / "explorer-talks.png"
                await page.screenshot(path=str(shot))
                print(f"screenshot: {shot}")

                await page.click(".graphiql-tab-button:has-text('TalkUpdated')")
                await page.evaluate(SET_HEADERS, headers)
                await page.click(".graphiql-execute-button")
                await asyncio.wait_for(subscribed.wait(), timeout=15)
                # The frame is sent before the server has registered the subscriber: an event
                # published in between would be lost, so wait for the server's side too.
                await until_subscribed(host, "talks")
                assert (await hook.post("/webhooks/talks", json=talk(7102))).status_code == 202
                await page.wait_for_function(RESULT_HAS, arg='"TN7102"', timeout=15_000)
                event = json.loads(await page.evaluate(RESULT))
                assert event["data"]["talkUpdated"]["id"] == node.encode("Talk", 7102)
                shot = tmp_path / "explorer-subscription.png"
                await page.screenshot(path=str(shot))
                print(f"screenshot: {shot}")

                # The dialogs lock scrolling with a <style> added at run time: admitted by
                # the response's nonce, not by 'unsafe-inline'.
                for label in ("Open settings dialog", "Open short keys dialog"):
                    await page.click(f"button[aria-label='{label}']")
                    await page.wait_for_selector("[role='dialog']")
                    await page.keyboard.press("Escape")
                    await page.wait_for_selector("[role='dialog']", state="detached")
            finally:
                await browser.close()

    assert requested, "the browser made no request"
    outside = [url for url in requested if urlsplit(url).hostname not in LOCAL_HOSTS]
    assert outside == [], f"requests left localhost: {outside}"
    blocked = [line for line in console if "Content Security Policy" in line]
    assert blocked == [], f"the page's policy blocked: {blocked}"
    assert "unsafe-inline" not in served_policy
    assert "http" not in served_policy


async def test_every_example_tab_answers_with_data_on_the_demo(
    tmp_path: Path, chromium: Path
) -> None:
    from playwright.async_api import async_playwright

    from tests.explorer_tabs import checked, examples

    requested: list[str] = []
    console: list[str] = []
    subscribed = asyncio.Event()
    # One operation per tab (tests/gateway/http/test_explorer_examples.py): run is one click.
    tabs = [(tab, _operation(document)) for tab, document in examples().items()]
    app = create_app(make_settings(tmp_path, demo=True, api_keys=()))
    async with live_server(app) as host, async_playwright() as playwright:
        base = f"http://{host}"
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=FLAGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.on("websocket", lambda socket: requested.append(socket.url))
            page.on(
                "websocket",
                lambda socket: socket.on(
                    "framesent",
                    lambda frame: subscribed.set() if '"subscribe"' in str(frame) else None,
                ),
            )
            page.on("console", lambda message: console.append(message.text))
            await page.goto(f"{base}/explorer")
            await page.wait_for_selector(".graphiql-execute-button")
            answered: list[str] = []
            for index, (tab, operation) in enumerate(tabs):
                await page.locator(".graphiql-tab-button").nth(index).click()
                name = operation.name.value if operation.name else tab
                await page.click(".graphiql-execute-button")
                if operation.operation is OperationType.SUBSCRIPTION:
                    await asyncio.wait_for(subscribed.wait(), timeout=15)
                    await until_subscribed(host, "talks", key=None)
                    async with httpx.AsyncClient(
                        base_url=base, headers={"X-Webhook-Token": WEBHOOK_SECRET}
                    ) as hook:
                        posted = await hook.post("/webhooks/talks", json=talk(7401))
                        assert posted.status_code == 202
                # This tab's answer: its root field's name is in the result pane.
                first = operation.selection_set.selections[0]
                assert isinstance(first, FieldNode)
                await page.wait_for_function(
                    RESULT_HAS, arg=f'"{first.name.value}"', timeout=15_000
                )
                checked(tab, name, json.loads(await page.evaluate(RESULT)))
                answered.append(tab)
                shot = tmp_path / f"explorer-{tab}.png"
                await page.screenshot(path=str(shot))
                print(f"screenshot: {shot}")
        finally:
            await browser.close()

    assert answered == [tab for tab, _ in tabs]
    outside = [url for url in requested if urlsplit(url).hostname not in LOCAL_HOSTS]
    assert outside == [], f"requests left localhost: {outside}"
    blocked = [line for line in console if "Content Security Policy" in line]
    assert blocked == [], f"the page's policy blocked: {blocked}"


def _operation(document: str) -> OperationDefinitionNode:
    (definition,) = parse(document).definitions
    assert isinstance(definition, OperationDefinitionNode)
    return definition
