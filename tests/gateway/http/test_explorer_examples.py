"""Every example tab of the explorer (explorer/src/examples.js) answers with data on a fresh
demo: each operation, sent as the tab sends it (its variables' defaults, the demo key), gets
no error, no null root field and no empty page. The browser test (tests/test_browser.py)
runs the same tabs in Chromium; this one runs without a browser or a build."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from graphql import OperationDefinitionNode, OperationType, parse
from starlette.applications import Starlette
from websockets.asyncio.client import connect

from gateway.http.app import create_app
from tests.explorer_tabs import (
    checked,
    defaults,
    examples,
    operations,
)
from tests.factories import talk
from tests.support import WEBHOOK_SECRET, live_server, make_settings, until_subscribed


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[Starlette, str]]:
    app = create_app(make_settings(tmp_path, demo=True, api_keys=()))
    async with live_server(app) as address:
        yield app, address


QUERIES_AND_MUTATIONS = [
    pytest.param(document, operation, id=f"{tab}-{operation.name.value}")
    for tab, document, operation in operations()
    if operation.operation is not OperationType.SUBSCRIPTION and operation.name is not None
]


@pytest.mark.parametrize(("document", "operation"), QUERIES_AND_MUTATIONS)
async def test_a_query_or_mutation_tab_answers_with_data(
    demo: tuple[Starlette, str], document: str, operation: OperationDefinitionNode
) -> None:
    app, address = demo
    assert operation.name is not None
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        response = await http.post(
            "/graphql",
            json={
                "query": document,
                "operationName": operation.name.value,
                "variables": defaults(operation),
            },
            headers={"Authorization": f"Bearer {app.state.demo_key}"},
        )
    assert response.status_code == 200, response.text
    checked("tab", operation.name.value, response.json())


SUBSCRIPTIONS = [
    pytest.param(document, operation, id=f"{tab}-{operation.name.value}")
    for tab, document, operation in operations()
    if operation.operation is OperationType.SUBSCRIPTION and operation.name is not None
]


@pytest.mark.parametrize(("document", "operation"), SUBSCRIPTIONS)
async def test_a_subscription_tab_hears_a_delivery(
    demo: tuple[Starlette, str], document: str, operation: OperationDefinitionNode
) -> None:
    app, address = demo
    assert operation.name is not None
    async with connect(
        f"ws://{address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    ) as ws:
        payload = {"authorization": f"Bearer {app.state.demo_key}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        subscribe = {"query": document, "operationName": operation.name.value, "variables": {}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        await until_subscribed(address, "talks", key=None)  # the demo: open to loopback
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            delivered = await http.post(
                "/webhooks/talks", json=talk(7301), headers={"X-Webhook-Token": WEBHOOK_SECRET}
            )
        assert delivered.status_code == 202, delivered.text
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert event["type"] == "next", event
    checked("tab", operation.name.value, event["payload"])


def test_a_tab_runs_with_one_click() -> None:
    # One operation per tab: with several, the run button needs a choice a newcomer misses.
    for tab, document in examples().items():
        assert len(parse(document).definitions) == 1, tab


def test_every_tab_is_checked() -> None:
    # A tab whose operations were all skipped above would prove nothing.
    assert {tab for tab, _, _ in operations()} == set(examples())
    assert len(QUERIES_AND_MUTATIONS) + len(SUBSCRIPTIONS) == len(list(operations()))
