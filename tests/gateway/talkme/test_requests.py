"""What TalkmeClient sends: paths and JSON bodies, as the Talkk.me documentation has them."""

from __future__ import annotations

import random

import httpx
import pytest

from gateway.talkme import (
    AgentStatus,
    RecordedCall,
    SandboxState,
    TalkmeBadInput,
    TalkmeClient,
    TalkmeRejected,
)
from tests.gateway.talkme.support import (
    EXTERNAL_LOGIN_TOKEN,
    LOGIN,
    PASSWORD,
    SANDBOX_URL,
    TOKEN,
    RecordedSleep,
    talkme_settings,
)

STATUS_PATH = "/talkme-ui/integration/attendants/status"


async def test_logout_posts_credentials_and_both_tokens_to_the_agent_api(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    await talkme.logout(login=LOGIN, password=PASSWORD)
    assert sandbox.calls == [
        RecordedCall(
            "POST",
            "/api/external/logout",
            {
                "login": LOGIN,
                "password": PASSWORD,
                "token": TOKEN,
                "externalLoginToken": EXTERNAL_LOGIN_TOKEN,
            },
        )
    ]


@pytest.mark.parametrize("status", ["S", "N"])
async def test_set_status_posts_credentials_tokens_and_status_to_the_bc_api(
    talkme: TalkmeClient, sandbox: SandboxState, status: AgentStatus
) -> None:
    await talkme.set_status(login=LOGIN, password=PASSWORD, status=status)
    assert sandbox.calls == [
        RecordedCall(
            "POST",
            STATUS_PATH,
            {
                "login": LOGIN,
                "password": PASSWORD,
                "token": TOKEN,
                "externalLoginToken": EXTERNAL_LOGIN_TOKEN,
                "status": status,
            },
        )
    ]


async def test_pause_sends_status_n_and_resume_sends_status_s(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    await talkme.pause(login=LOGIN, password=PASSWORD)
    await talkme.resume(login=LOGIN, password=PASSWORD)
    assert [call.body["status"] for call in sandbox.calls if isinstance(call.body, dict)] == [
        "N",
        "S",
    ]


async def test_fetch_audio_posts_both_tokens_and_returns_the_link(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    link = await talkme.fetch_audio("20250908-000123")
    assert link == "https://recordings.sandbox.talk.me/20250908-000123.mp3"
    assert sandbox.calls == [
        RecordedCall(
            "POST",
            "/talkme-ui/external/operational/fetchaudio/20250908-000123",
            {"token": TOKEN, "externalLoginToken": EXTERNAL_LOGIN_TOKEN},
        )
    ]


async def test_fetch_audio_refuses_a_protocol_with_slashes_spaces_or_query_marks_unsent(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    # It used to be escaped and sent; a protocol is never one, so it is refused instead.
    with pytest.raises(TalkmeBadInput) as refused:
        await talkme.fetch_audio("2025/09 123?x#y")
    assert refused.value.field == "protocol"
    assert sandbox.calls == []


async def test_fetch_audio_sends_a_protocol_with_dots_underscores_and_dashes_as_one_segment(
    talkme: TalkmeClient, sandbox: SandboxState
) -> None:
    await talkme.fetch_audio("PRT_2025.09-08")
    assert sandbox.calls[0].path == "/talkme-ui/external/operational/fetchaudio/PRT_2025.09-08"


async def test_base_urls_with_a_trailing_slash_are_joined_without_a_double_slash(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    settings = talkme_settings(
        talkme_agent_api_url=SANDBOX_URL + "/", talkme_bc_api_url=SANDBOX_URL + "/"
    )
    talkme = TalkmeClient(http, settings, sleep=RecordedSleep(), rng=random.Random(1))
    await talkme.logout(login=LOGIN, password=PASSWORD)
    await talkme.pause(login=LOGIN, password=PASSWORD)
    assert [call.path for call in sandbox.calls] == ["/api/external/logout", STATUS_PATH]


async def test_unset_tokens_are_sent_empty_and_upstream_rejects_them(
    http: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    settings = talkme_settings(talkme_token=None, talkme_external_login_token=None)
    talkme = TalkmeClient(http, settings, sleep=RecordedSleep(), rng=random.Random(1))
    with pytest.raises(TalkmeRejected) as caught:
        await talkme.logout(login=LOGIN, password=PASSWORD)
    assert caught.value.status == 401
    body = sandbox.calls[0].body
    assert isinstance(body, dict)
    assert (body["token"], body["externalLoginToken"]) == ("", "")
