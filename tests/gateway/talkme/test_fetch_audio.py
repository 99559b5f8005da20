"""fetch_audio reads the recording link from any answer shape seen, and refuses anything else."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.talkme import SandboxState, TalkmeClient, TalkmeNotFound, TalkmeUnavailable
from tests.gateway.talkme.support import (
    EXTERNAL_LOGIN_TOKEN,
    FAILURES,
    TOKEN,
    assert_no_secrets,
)

LINK = "https://cdn.talk.me/rec/20250908-000123.mp3?sig=abc"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"url": LINK}),
        json.dumps({"link": LINK}),
        json.dumps({"data": {"url": LINK}}),
        json.dumps({"data": {"link": LINK}}),
        json.dumps({"status": "ok", "data": {"link": LINK, "size": 1}}),
        json.dumps(LINK),
        LINK,
        f"  {LINK}\n",
        "http://cdn.talk.me/rec/20250908-000123.mp3?sig=abc",
    ],
    ids=["url", "link", "data.url", "data.link", "nested", "json-string", "text", "padded", "http"],
)
async def test_every_known_answer_shape_gives_the_link(
    talkme: TalkmeClient, sandbox: SandboxState, body: str
) -> None:
    sandbox.garbage_next(1, body=body.encode())
    link = await talkme.fetch_audio("20250908-000123")
    assert link.endswith("cdn.talk.me/rec/20250908-000123.mp3?sig=abc")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops",
        b"",
        b"null",
        b"[]",
        b'{"url": "ftp://cdn.talk.me/1.mp3"}',
        b'{"url": "javascript:alert(1)"}',
        b'{"url": "not a link"}',
        b'{"url": 42}',
        b'{"data": "https://cdn.talk.me/1.mp3"}',
        b"https://",
    ],
)
async def test_an_answer_without_a_usable_link_is_unavailable_after_one_call(
    talkme: TalkmeClient, sandbox: SandboxState, body: bytes
) -> None:
    sandbox.garbage_next(1, body=body)
    with pytest.raises(TalkmeUnavailable, match="usable link"):
        await talkme.fetch_audio("20250908-000123")
    assert len(sandbox.calls) == 1


async def test_the_unusable_answer_is_logged_as_a_warning(
    talkme: TalkmeClient, sandbox: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.garbage_next(1)
    with pytest.raises(TalkmeUnavailable):
        await talkme.fetch_audio("20250908-000123")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "<html>oops" in warnings[0].getMessage()


async def test_the_logged_answer_has_secrets_redacted_and_is_truncated(
    talkme: TalkmeClient, sandbox: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    echoed = {
        "token": TOKEN,
        "externalLoginToken": EXTERNAL_LOGIN_TOKEN,
        "password": "echoed-by-upstream",
        "note": f"also {TOKEN} in text",
        "filler": "x" * 2000,
    }
    sandbox.garbage_next(1, body=json.dumps(echoed).encode())
    with pytest.raises(TalkmeUnavailable):
        await talkme.fetch_audio("20250908-000123")
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    logged = warning.getMessage()
    assert_no_secrets([logged])
    assert "echoed-by-upstream" not in logged
    assert '"token": "***"' in logged
    assert '"externalLoginToken": "***"' in logged
    assert '"password": "***"' in logged
    assert len(logged) < 600


async def test_unusable_answers_count_toward_opening_the_circuit(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    sandbox.garbage_next(FAILURES)
    for _ in range(FAILURES):
        with pytest.raises(TalkmeUnavailable, match="usable link"):
            await talkme.fetch_audio("20250908-000123")
    with pytest.raises(TalkmeUnavailable, match="circuit open"):
        await talkme.fetch_audio("20250908-000123")


async def test_a_404_means_no_recording_for_that_protocol(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    sandbox.missing("20250908-999999")
    with pytest.raises(TalkmeNotFound) as caught:
        await talkme.fetch_audio("20250908-999999")
    assert caught.value.protocol == "20250908-999999"
    assert len(sandbox.calls) == 1
