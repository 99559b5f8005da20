"""Passwords and tokens never leave TalkmeClient through logs, error messages or repr()."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable

import httpx
import pytest

from gateway.talkme import (
    SandboxState,
    TalkmeClient,
    TalkmeError,
    TalkmeRejected,
)
from tests.gateway.talkme.support import (
    LOGIN,
    PASSWORD,
    TOKEN,
    RecordedSleep,
    assert_no_secrets,
    record_texts,
    talkme_settings,
)


async def test_no_log_record_or_error_message_holds_a_secret(
    talkme: TalkmeClient, sandbox: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.talkme")
    errors: list[TalkmeError] = []

    async def attempt(call: Awaitable[object]) -> None:
        try:
            await call
        except TalkmeError as exc:
            errors.append(exc)

    await attempt(talkme.logout(login=LOGIN, password=PASSWORD))
    await attempt(talkme.pause(login=LOGIN, password=PASSWORD + "x"))
    sandbox.fail_next(100, status=503)
    await attempt(talkme.resume(login=LOGIN, password=PASSWORD))
    sandbox.reset()
    sandbox.garbage_next(1, body=json.dumps({"token": TOKEN, "password": PASSWORD}).encode())
    await attempt(talkme.fetch_audio("20250908-000123"))
    sandbox.missing("gone")
    await attempt(talkme.fetch_audio("gone"))

    assert len(errors) == 4
    assert caplog.records
    assert_no_secrets(record_texts(caplog.records))
    assert_no_secrets(str(exc) for exc in errors)
    assert_no_secrets(repr(exc) for exc in errors)


async def test_each_call_logs_its_outcome_at_info(
    talkme: TalkmeClient, sandbox: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.talkme")
    sandbox.fail_next(1, status=503)
    await talkme.pause(login=LOGIN, password=PASSWORD)
    (record,) = [r for r in caplog.records if r.levelno == logging.INFO]
    fields = {key: record.__dict__[key] for key in ("operation", "outcome", "status", "attempts")}
    assert fields == {"operation": "status", "outcome": "ok", "status": 200, "attempts": 2}
    assert record.__dict__["duration_ms"] >= 0


async def test_a_rejection_echoing_the_password_is_scrubbed_from_the_error() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        return httpx.Response(401, json={"error": f"bad password {sent['password']} for token"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as http:
        talkme = TalkmeClient(http, talkme_settings(), sleep=RecordedSleep())
        with pytest.raises(TalkmeRejected) as caught:
            await talkme.logout(login=LOGIN, password=PASSWORD)
    assert caught.value.detail == "bad password *** for token"
    assert_no_secrets([str(caught.value)])


def test_repr_of_the_client_shows_no_secrets(talkme: TalkmeClient) -> None:
    text = repr(talkme)
    assert text.startswith("TalkmeClient(")
    assert_no_secrets([text])
