"""Secrets never leak: not into a log record, an error, a GraphQL response or a repr().

One run exercises every path that touches a secret (webhook token, query token and signature,
API keys good and bad, agent login, the launch page, agent control by credentials and by
session, upstream rejections, failures and garbage, a masked internal error), with every
logger at DEBUG; then everything that was logged or answered is searched for every secret.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.talkme import SandboxState, TalkmeClient
from tests.resolvers.helpers import StoreSpy, talk_of
from tests.support import (
    AGENT_LOGIN,
    AGENT_LOGIN_MUTATION,
    AGENT_PASSWORD,
    ALL_KEY,
    NO_SCOPE_KEY,
    PUSH_KEY,
    READ_KEY,
    SECRET_KEY,
    TALKME_EXTERNAL_TOKEN,
    TALKME_TOKEN,
    WEBHOOK_SECRET,
    signed_headers,
    talkme_settings,
)

UNKNOWN_KEY = "tgk_unknown_key_a91c03e7f2"
WRONG_PASSWORD = "wrong-pw-Zr81q"
STATIC_SECRETS = (
    READ_KEY,
    ALL_KEY,
    NO_SCOPE_KEY,
    PUSH_KEY,
    UNKNOWN_KEY,
    WEBHOOK_SECRET,
    AGENT_PASSWORD,
    WRONG_PASSWORD,
    TALKME_TOKEN,
    TALKME_EXTERNAL_TOKEN,
    SECRET_KEY,
)
PUBLIC_URL = "https://gateway.example"

STATUS = """
mutation Status($input: AgentAuthInput!) {
  pauseAgent(input: $input) { status }
  resumeAgent(input: $input) { status }
}"""
LOGOUT = """
mutation Logout($input: AgentAuthInput!) { agentLogout(input: $input) { status } }
"""


@dataclass
class Exercise:
    """What one run produced: responses (and which may hold what), sessions and tickets."""

    client: httpx.AsyncClient
    spy: StoreSpy
    services: Any
    responses: list[httpx.Response] = field(default_factory=list)
    # Responses whose job is to carry a secret, and the secrets each may carry.
    allowed: dict[int, set[str]] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)

    async def graphql(
        self, document: str, variables: dict[str, Any] | None = None, *, key: str = ALL_KEY
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": document, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key}"},
        )
        body: dict[str, Any] = response.json()
        return body

    async def login(self, password: str = AGENT_PASSWORD) -> str:
        """agentLogin; returns the launch path. Its answer may hold the ticket and session."""
        body = await self.graphql(
            AGENT_LOGIN_MUTATION, {"input": {"login": AGENT_LOGIN, "password": password}}
        )
        payload = body["data"]["agentLogin"]
        ticket = payload["launchUrl"].rsplit("/", 1)[1]
        self.tickets.append(ticket)
        self.sessions.append(payload["session"])
        self.allowed[id(self.responses[-1])] = {ticket, payload["session"]}
        path: str = payload["launchUrl"].removeprefix(PUBLIC_URL)
        return path


@asynccontextmanager
async def exercising(settings: Settings, sandbox: Starlette) -> AsyncIterator[Exercise]:
    app = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with LifespanManager(app) as manager:
        state = manager._state
        spy = StoreSpy.on(state["services"].store)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            run = Exercise(client, spy, state["services"])

            async def keep(response: httpx.Response) -> None:
                await response.aread()
                run.responses.append(response)

            client.event_hooks = {"request": [], "response": [keep]}
            yield run


async def exercise_the_webhook(run: Exercise) -> None:
    client = run.client
    token = {"X-Webhook-Token": WEBHOOK_SECRET}
    assert (await client.post("/webhooks/talks", json=talk_of(7), headers=token)).status_code == 202
    url = f"/webhooks/talks?token={WEBHOOK_SECRET}"
    assert (await client.post(url, json=talk_of(8))).status_code == 202
    assert (await client.post(url, content=b"{not json")).status_code == 400
    wrong = {"X-Webhook-Token": WEBHOOK_SECRET + "-wrong"}
    assert (await client.post("/webhooks/talks", json=talk_of(9), headers=wrong)).status_code == 401
    wrong_query = f"/webhooks/talks?token=x{WEBHOOK_SECRET}"
    assert (await client.post(wrong_query, json=talk_of(9))).status_code == 401
    body = orjson.dumps(talk_of(10))
    good = await client.post(
        "/webhooks/talks",
        content=body,
        headers=signed_headers(WEBHOOK_SECRET, body, msg_id="msg_1"),
    )
    assert good.status_code == 202
    forged = signed_headers(WEBHOOK_SECRET, body, msg_id="msg_2")
    forged["webhook-signature"] = "v1,AAAA " + forged["webhook-signature"][:-4] + "AAA="
    assert (await client.post("/webhooks/talks", content=body, headers=forged)).status_code == 401
    for key, status in ((PUSH_KEY, 202), (READ_KEY, 403), (UNKNOWN_KEY, 401)):
        response = await client.post(
            "/webhooks/talks", json=talk_of(11), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == status


async def exercise_the_keys(run: Exercise) -> None:
    client = run.client
    query = {"query": '{ talk(id: "7") { id: databaseId customer { telephones { number } } } }'}
    for key in (READ_KEY, ALL_KEY, NO_SCOPE_KEY, UNKNOWN_KEY):
        await client.post("/graphql", json=query, headers={"Authorization": f"Bearer {key}"})
    await client.get("/graphql", params=query, headers={"Authorization": f"Bearer {READ_KEY}"})
    assert (await client.post("/graphql", json=query)).status_code == 401
    basic = {"Authorization": f"Basic {ALL_KEY}"}
    assert (await client.post("/graphql", json=query, headers=basic)).status_code == 401


async def exercise_agent_control(run: Exercise, state: SandboxState) -> None:
    client = run.client
    credentials = {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}
    wrong = {"credentials": {"login": AGENT_LOGIN, "password": WRONG_PASSWORD}}
    first = await run.login()
    page = await client.get(first)
    assert page.status_code == 200
    run.allowed[id(page)] = {AGENT_PASSWORD, TALKME_TOKEN, TALKME_EXTERNAL_TOKEN}
    assert (await client.get(first)).status_code == 410
    second = await run.login()
    session = {"session": run.sessions[-1]}
    for auth in (credentials, session):
        assert "errors" not in await run.graphql(STATUS, {"input": auth})
    assert "errors" not in await run.graphql(LOGOUT, {"input": session})
    assert "errors" not in await run.graphql(LOGOUT, {"input": credentials})
    await run.graphql(STATUS, {"input": credentials}, key=READ_KEY)  # forbidden
    await run.graphql(STATUS, {"input": wrong})  # rejected upstream
    await run.login(WRONG_PASSWORD)  # a ticket for a wrong password is still a ticket
    await run.graphql(STATUS, {"input": {"session": run.sessions[-1][:-4] + "AAA="}})
    await run.graphql(STATUS, {"input": {**credentials, **session}})
    await run.graphql(
        AGENT_LOGIN_MUTATION, {"input": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD, "x": 1}}
    )
    state.fail_next(100, status=503)
    await run.graphql(STATUS, {"input": session})  # unavailable upstream
    state.reset()
    state.garbage_next(
        1, body=f"<html>token={TALKME_TOKEN}&password={AGENT_PASSWORD}</html>".encode()
    )
    await run.graphql('{ recording(protocol: "P-garbage") { url } }')
    state.reset()
    assert (await client.get("/talkme/launch/" + run.tickets[0])).status_code == 410
    page = await client.get(second)
    assert page.status_code == 200
    run.allowed[id(page)] = {AGENT_PASSWORD, TALKME_TOKEN, TALKME_EXTERNAL_TOKEN}


async def exercise_a_masked_error(run: Exercise) -> None:
    run.spy.fail("talk_pages", RuntimeError("boom in the store"))
    body = await run.graphql("{ talks { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


def record_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    """Everything a log record may print: message, arguments, extra fields, traceback."""
    formatter = logging.Formatter()
    texts: list[str] = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(repr(record.__dict__))
        texts.extend(str(value) for value in record.__dict__.values())
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def from_the_gateway(record: logging.LogRecord) -> bool:
    """Not the test's own HTTP client reporting the URLs it asked for."""
    return not (record.name.startswith("httpx") and "//testserver" in repr(record.args))


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[tuple[str, str]]:
    wanted = [s for s in secrets if s]
    return [(secret, text[:160]) for text in texts for secret in wanted if secret in text]


@pytest.fixture
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def test_no_log_record_response_error_or_repr_holds_a_secret(
    tmp_path: Path, sandbox: Starlette, every_logger_at_debug: pytest.LogCaptureFixture
) -> None:
    caplog = every_logger_at_debug
    state: SandboxState = sandbox.state.sandbox
    settings = talkme_settings(tmp_path, public_url=PUBLIC_URL)
    async with exercising(settings, sandbox) as run:
        await exercise_the_webhook(run)
        await exercise_the_keys(run)
        await exercise_agent_control(run, state)
        await exercise_a_masked_error(run)
        async with httpx.AsyncClient() as http:
            reprs = [
                repr(settings),
                str(settings),
                repr(settings.model_dump()),
                settings.model_dump_json(),
                repr(run.services),
                repr(TalkmeClient(http, settings)),
            ]

    secrets = [*STATIC_SECRETS, *run.sessions, *run.tickets]
    assert len(run.sessions) == len(run.tickets) == 3
    assert len(run.responses) > 30

    assert caplog.records
    records = [r for r in caplog.records if from_the_gateway(r)]
    assert leaks(record_texts(records), secrets) == []
    assert leaks(reprs, secrets) == []
    for response in run.responses:
        texts = [response.text, *(f"{k}: {v}" for k, v in response.headers.multi_items())]
        permitted = run.allowed.get(id(response), set())
        assert leaks(texts, [s for s in secrets if s not in permitted]) == [], response.url
