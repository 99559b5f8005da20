"""A 202 means committed: SIGKILL `serve` under load, restart it, and every 202 is there."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.storage import open_store
from tests.backends import BACKENDS, empty_store_url
from tests.factories import snapshot
from tests.reliability.support import serve_env, start_serve
from tests.support import READ_KEY, WEBHOOK_SECRET

CLIENTS = 8
PER_CLIENT = 40  # a bound on the deliveries each client posts
KILL_AFTER = 60  # accepted deliveries before the kill -9


def _talk(client: int, index: int) -> dict[str, Any]:
    """A distinct talk with 1 to 4 messages of its own ids."""
    talk_id = 500_000 + client * 1000 + index
    messages = [talk_id * 10 + k for k in range(1 + index % 4)]
    return snapshot(talk_id, messages)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_delivery_answered_202_survives_a_sigkill(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = await empty_store_url(backend, tmp_path, request)
    env = serve_env(url)
    served = await start_serve(tmp_path, env, name="before")
    sent: dict[int, dict[str, Any]] = {}
    accepted: set[int] = set()
    uncertain: set[int] = set()  # posted, no answer: the kill came first
    enough = asyncio.Event()

    async def post_talks(client: int, http: httpx.AsyncClient) -> None:
        for index in range(PER_CLIENT):
            payload = _talk(client, index)
            sent[payload["id"]] = payload
            try:
                response = await http.post(
                    f"{served.base}/webhooks/talks",
                    content=orjson.dumps(payload),
                    headers={"X-Webhook-Token": WEBHOOK_SECRET},
                )
            except httpx.TransportError:
                uncertain.add(payload["id"])
                return
            assert response.status_code == 202, response.text
            assert response.json()["ids"] == [payload["id"]]
            accepted.add(payload["id"])
            if len(accepted) >= KILL_AFTER:
                enough.set()

    try:
        async with AsyncExitStack() as stack:
            limits = httpx.Limits(max_connections=1)
            https = [
                await stack.enter_async_context(httpx.AsyncClient(timeout=10, limits=limits))
                for _ in range(CLIENTS)
            ]
            posting = [asyncio.create_task(post_talks(n, h)) for n, h in enumerate(https)]
            await asyncio.wait_for(enough.wait(), 60)
            served.kill()
            await asyncio.wait_for(asyncio.gather(*posting), 30)
    finally:
        served.kill()
    assert len(accepted) >= KILL_AFTER
    assert len(accepted) < CLIENTS * PER_CLIENT, "the kill came after every delivery"

    restarted = await start_serve(tmp_path, env, name="after")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{restarted.base}/graphql",
                json={"query": "{ talks(first: 1) { totalCount } }"},
                headers={"Authorization": f"Bearer {READ_KEY}"},
            )
        assert response.status_code == 200, response.text
        total = response.json()["data"]["talks"]["totalCount"]
    finally:
        restarted.process.terminate()
        restarted.process.wait(timeout=30)

    store = open_store(url)
    await store.open()
    try:
        docs = await store.talks_by_id(sorted(sent))
        counts = await store.count_messages(sorted(docs))
        raw = {talk_id: await store.raw_deliveries(talk_id=talk_id) for talk_id in sent}
    finally:
        await store.close()

    assert accepted <= set(docs), f"lost after a 202: {sorted(accepted - set(docs))}"
    assert set(docs) <= accepted | uncertain
    assert total == len(docs)
    for talk_id, payload in sent.items():
        if talk_id in docs:
            # Nothing half-written: the delivery, the talk and all its messages, or nothing.
            assert len(raw[talk_id]) == 1
            assert orjson.loads(raw[talk_id][0])["id"] == talk_id
            assert counts.get(talk_id, 0) == len(payload["talk_histories"])
        else:
            assert raw[talk_id] == []
    if backend == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
