"""The reference graphql-transport-ws client, graphql-ws on Node's ws (pinned in
tests/conformance/graphql-ws, installed by .ci/run with `npm ci`), driving two live servers
through a query, a subscription and its `complete`, per-operation errors (validation, syntax,
unknown operation), the subscription limit, the rate limit and the legacy subprotocol; what
the client sees is compared with what PROTOCOL.md and the partner guide say."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from tests.backends import node_packages
from tests.factories import talk
from tests.support import READ_KEY, WEBHOOK_SECRET, live_server, make_settings, until_subscribed

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).resolve().parent / "graphql-ws"
TYPENAME = {"next": {"data": {"__typename": "Query"}}}
BAD_INPUT = [{"error": [{"code": "BAD_USER_INPUT"}]}]
EXPECTED: dict[str, Any] = {
    "query": [TYPENAME, "complete"],
    "subscription event, then complete": [{"next": {"data": {"talkUpdated": {"id": "7001"}}}}],
    "validation error": BAD_INPUT,
    "syntax error": BAD_INPUT,
    "unknown operation": BAD_INPUT,
    "subscription limit": [{"error": [{"code": "BAD_USER_INPUT", "limit": 2}]}],
    "after the limit": [TYPENAME, "complete"],
    "sockets closed before dispose": [],
    "first operation on a 1-a-minute key": [TYPENAME, "complete"],
    "rate limit": [{"error": [{"code": "RATE_LIMITED"}]}],
    "legacy subprotocol": {"status": 403},
}


@pytest.fixture(scope="module")
def node() -> str:
    return node_packages(RUNNER, "the graphql-ws client")


async def test_the_reference_client_sees_what_the_protocol_says(tmp_path: Path, node: str) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "limited").mkdir()
    main = create_app(make_settings(tmp_path / "main", max_subscriptions_per_connection=2))
    limited = create_app(make_settings(tmp_path / "limited", rate_limit_per_minute=1))
    async with live_server(main) as address, live_server(limited) as limited_address:
        process = await asyncio.create_subprocess_exec(
            node,
            "run.mjs",
            cwd=RUNNER,
            stdout=PIPE,
            stderr=PIPE,
            env={
                **os.environ,
                "TALKGATE_WS_URL": f"ws://{address}/graphql",
                "TALKGATE_WS_URL_LIMITED": f"ws://{limited_address}/graphql",
                "TALKGATE_KEY": READ_KEY,
            },
        )
        assert process.stdout is not None
        saw: dict[str, Any] = {}
        while line := await asyncio.wait_for(process.stdout.readline(), 30):
            printed = json.loads(line)
            if printed.get("ready") == "talks":
                await until_subscribed(address, "talks")
                async with httpx.AsyncClient(base_url=f"http://{address}") as http:
                    delivered = await http.post(
                        "/webhooks/talks",
                        json=talk(7001),
                        headers={"X-Webhook-Token": WEBHOOK_SECRET},
                    )
                    assert delivered.status_code == 202, delivered.text
            else:
                saw[printed["scenario"]] = printed["saw"]
        _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    assert saw == EXPECTED, errors.decode()
