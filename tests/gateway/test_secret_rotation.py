"""Rotating SECRET_KEY and WEBHOOK_SECRET with no downtime, as the operator guide does it:
with the new secret first and the old one after it, what the old one signed or sealed still
passes (webhook tokens and signatures, agent sessions issued before) and the new one signs
and seals what is new; once the old one is dropped, only the new one passes. Each step is a
gateway restarted on the same store with the next setting."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.http.app import create_app
from tests.factories import talk
from tests.support import (
    AGENT_LOGIN,
    AGENT_LOGIN_MUTATION,
    AGENT_PASSWORD,
    ALL_KEY,
    gql,
    push_agent_talk,
    serving,
    signed_headers,
    talkme_settings,
)

OLD_KEY, NEW_KEY = "rotation-old-secret-key-4c1d9e", "rotation-new-secret-key-9e2b7a"
OLD_TOKEN, NEW_TOKEN = "rotation-old-webhook-token-51ab", "rotation-new-webhook-token-0c3f"
OLD_WHSEC = "whsec_" + base64.b64encode(b"the-old-signing-key-0123456789ab").decode()
NEW_WHSEC = "whsec_" + base64.b64encode(b"the-new-signing-key-0123456789ab").decode()
PAUSE = """
mutation Pause($input: AgentAuthInput!) { pauseAgent(input: $input) { status } }"""


def gateway(tmp_path: Path, sandbox: Starlette, **settings: Any) -> Starlette:
    """A gateway on the test's one store (the same file at each step), Talk.me the sandbox."""
    return create_app(
        talkme_settings(tmp_path, **settings), talkme_transport=httpx.ASGITransport(app=sandbox)
    )


@pytest.mark.parametrize(
    ("secrets", "accepted", "refused"),
    [
        ([OLD_TOKEN], [OLD_TOKEN], [NEW_TOKEN]),  # before
        ([NEW_TOKEN, OLD_TOKEN], [NEW_TOKEN, OLD_TOKEN], []),  # during: PipeRun switches
        ([NEW_TOKEN], [NEW_TOKEN], [OLD_TOKEN]),  # after
    ],
    ids=["before", "during", "after"],
)
async def test_webhook_tokens_through_a_rotation(
    tmp_path: Path, sandbox: Starlette, secrets: list[str], accepted: list[str], refused: list[str]
) -> None:
    app = gateway(tmp_path, sandbox, webhook_secret=json.dumps(secrets))
    async with serving(app) as client:
        for number, token in enumerate(accepted + refused):
            response = await client.post(
                "/webhooks/talks", json=talk(900 + number), headers={"X-Webhook-Token": token}
            )
            assert response.status_code == (202 if token in accepted else 401), token


@pytest.mark.parametrize(
    ("secrets", "accepted", "refused"),
    [
        ([OLD_WHSEC], [OLD_WHSEC], [NEW_WHSEC]),
        ([NEW_WHSEC, OLD_WHSEC], [NEW_WHSEC, OLD_WHSEC], []),
        ([NEW_WHSEC], [NEW_WHSEC], [OLD_WHSEC]),
    ],
    ids=["before", "during", "after"],
)
async def test_webhook_signatures_through_a_rotation(
    tmp_path: Path, sandbox: Starlette, secrets: list[str], accepted: list[str], refused: list[str]
) -> None:
    app = gateway(tmp_path, sandbox, webhook_secret=json.dumps(secrets))
    async with serving(app) as client:
        for number, secret in enumerate(accepted + refused):
            body = json.dumps(talk(950 + number)).encode()
            headers = signed_headers(secret, body, msg_id=f"msg_{number}")
            response = await client.post("/webhooks/talks", content=body, headers=headers)
            assert response.status_code == (202 if secret in accepted else 401), secret


async def login(client: httpx.AsyncClient) -> str:
    credentials = {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}
    body = await gql(client, AGENT_LOGIN_MUTATION, {"input": credentials}, key=ALL_KEY)
    assert "errors" not in body, body
    session: str = body["data"]["agentLogin"]["session"]
    return session


async def pause(client: httpx.AsyncClient, session: str) -> list[str]:
    """The error codes of pausing the agent with `session` ([] when it worked)."""
    body = await gql(client, PAUSE, {"input": {"session": session}}, key=ALL_KEY)
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_agent_sessions_through_a_rotation(tmp_path: Path, sandbox: Starlette) -> None:
    async with serving(gateway(tmp_path, sandbox, secret_key=OLD_KEY)) as before:
        await push_agent_talk(before, 7301, 7001)
        sealed_before = await login(before)
        assert await pause(before, sealed_before) == []
    during = gateway(tmp_path, sandbox, secret_key=json.dumps([NEW_KEY, OLD_KEY]))
    async with serving(during) as client:
        assert await pause(client, sealed_before) == []  # still opens
        sealed_during = await login(client)
    async with serving(gateway(tmp_path, sandbox, secret_key=NEW_KEY)) as after:
        assert await pause(after, sealed_during) == []  # sealed with the new key
        assert await pause(after, sealed_before) == ["BAD_USER_INPUT"]  # the old key is gone
    async with serving(gateway(tmp_path, sandbox, secret_key=OLD_KEY)) as old_only:
        assert await pause(old_only, sealed_during) == ["BAD_USER_INPUT"]
