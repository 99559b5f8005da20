"""Operations endpoints, request ids and log lines."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway import VERSION
from gateway.http.app import create_app
from gateway.logs import JsonFormatter, request_id_var
from gateway.storage import StoreUnavailable
from gateway.storage.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from gateway.storage.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.support import make_settings


async def test_healthz_says_alive_and_which_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": VERSION}
    assert metadata.version("talkgate") == VERSION


async def test_readyz_is_200_when_the_store_answers_and_shows_its_schema(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["version"] == VERSION
    assert body["schema"]["version"] == body["schema"]["latest"]
    assert body["schema"]["latest"] in (len(SQLITE_MIGRATIONS), len(POSTGRES_MIGRATIONS))


@pytest.fixture
async def broken_store_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose store stops answering after start-up."""
    app = create_app(make_settings(tmp_path))
    async with LifespanManager(app) as manager:
        store = manager._state["services"].store

        async def unreachable() -> None:
            raise StoreUnavailable("disk unplugged")

        store.ping = unreachable
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_readyz_is_503_when_the_store_does_not_answer(
    broken_store_client: httpx.AsyncClient,
) -> None:
    response = await broken_store_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_sane_client_request_id_is_kept_and_an_odd_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    replaced = await client.get("/healthz", headers={"X-Request-ID": "<script>" * 20})
    assert kept.headers["x-request-id"] == "abc-123"
    assert replaced.headers["x-request-id"] != "<script>" * 20


async def test_each_request_is_logged_once_with_its_id_and_without_query(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="talkgate.access")
    await client.get("/healthz?token=abc", headers={"X-Request-ID": "req-9"})
    [record] = [r for r in caplog.records if r.name == "talkgate.access"]
    assert record.__dict__["path"] == "/healthz"
    assert record.__dict__["status"] == 200


def test_log_lines_are_json_with_the_request_id_and_extras() -> None:
    formatter = JsonFormatter()
    token = request_id_var.set("rid-1")
    try:
        record = logging.LogRecord(
            "talkgate.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
        )
        record.talk_id = 7
        line = json.loads(formatter.format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello you"
    assert line["request_id"] == "rid-1"
    assert line["talk_id"] == 7
    assert line["level"] == "WARNING"


def test_log_lines_carry_exception_traces() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exception"]
