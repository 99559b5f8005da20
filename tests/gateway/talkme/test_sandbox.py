"""The Talkk.me sandbox answers like the documented API and misbehaves on request."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.talkme import RecordedCall, SandboxState
from tests.gateway.talkme.support import EXTERNAL_LOGIN_TOKEN, LOGIN, PASSWORD, TOKEN

LOGOUT = "/api/external/logout"
STATUS = "/talkme-ui/integration/attendants/status"
FETCHAUDIO = "/talkme-ui/external/operational/fetchaudio/"
TOKENS = {"token": TOKEN, "externalLoginToken": EXTERNAL_LOGIN_TOKEN}
AGENT = {"login": LOGIN, "password": PASSWORD, **TOKENS}


async def test_logout_with_good_credentials_and_tokens_succeeds(http: httpx.AsyncClient) -> None:
    response = await http.post(LOGOUT, json=AGENT)
    assert response.status_code == 200


@pytest.mark.parametrize("field", ["token", "externalLoginToken"])
async def test_a_wrong_or_missing_token_is_401(http: httpx.AsyncClient, field: str) -> None:
    wrong = await http.post(STATUS, json={**AGENT, "status": "N", field: "nope"})
    missing = await http.post(
        STATUS, json={k: v for k, v in {**AGENT, "status": "N"}.items() if k != field}
    )
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json() == {"error": "invalid token"}


@pytest.mark.parametrize(
    "credentials", [{"login": "9999", "password": PASSWORD}, {"login": LOGIN, "password": "x"}]
)
async def test_an_unknown_login_or_wrong_password_is_401_invalid_credentials(
    http: httpx.AsyncClient, credentials: dict[str, str]
) -> None:
    response = await http.post(LOGOUT, json={**TOKENS, **credentials})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid credentials"}


async def test_a_status_other_than_s_or_n_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post(STATUS, json={**AGENT, "status": "P"})
    assert response.status_code == 422


async def test_fetchaudio_knows_every_protocol_not_registered_as_missing(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    sandbox.missing("gone")
    known = await http.post(FETCHAUDIO + "kept", json=TOKENS)
    gone = await http.post(FETCHAUDIO + "gone", json=TOKENS)
    assert known.json() == {"url": "https://recordings.sandbox.talk.me/kept.mp3"}
    assert gone.status_code == 404


async def test_fetchaudio_needs_the_tokens(http: httpx.AsyncClient) -> None:
    response = await http.post(FETCHAUDIO + "kept", json={"token": TOKEN})
    assert response.status_code == 401


async def test_the_login_form_answers_a_page_and_is_recorded(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    response = await http.post("/login", data=AGENT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"Agent {LOGIN} logged in (sandbox)" in response.text
    assert sandbox.calls == [RecordedCall("POST", "/login", AGENT)]


async def test_the_login_form_with_a_wrong_password_answers_a_401_page(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/login", data={**AGENT, "password": "x"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")


async def test_fail_next_fails_that_many_requests_then_answers_normally(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    sandbox.fail_next(2, status=502)
    statuses = [(await http.post(LOGOUT, json=AGENT)).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]


async def test_garbage_next_answers_fetchaudio_with_that_body(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    sandbox.garbage_next(1, body=b"nope")
    garbage = await http.post(FETCHAUDIO + "1", json=TOKENS)
    normal = await http.post(FETCHAUDIO + "1", json=TOKENS)
    assert (garbage.status_code, garbage.content) == (200, b"nope")
    assert normal.json()["url"].endswith("/1.mp3")


async def test_delay_holds_every_answer(http: httpx.AsyncClient, sandbox: SandboxState) -> None:
    sandbox.delay(0.05)
    started = time.monotonic()
    await http.post(LOGOUT, json=AGENT)
    assert time.monotonic() - started >= 0.05


async def test_reset_forgets_calls_and_misbehaviour(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    sandbox.fail_next(5)
    sandbox.missing("gone")
    sandbox.garbage_next(5)
    await http.post(LOGOUT, json=AGENT)
    sandbox.delay(10)
    sandbox.reset()
    assert sandbox.calls == []
    assert (await http.post(FETCHAUDIO + "gone", json=TOKENS)).status_code == 200
