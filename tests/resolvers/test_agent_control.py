"""Agent control over GraphQL: agentLogin, pauseAgent, resumeAgent, agentLogout and queueStatus.

Every test drives the gateway as a client would (GraphQL over HTTP, the launch page by GET);
Talk.me is the sandbox, and what it received is read from its recorded calls.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from gateway.auth import key_digest
from gateway.http.app import create_app
from gateway.sessions import AgentCredentials, SessionSealer
from gateway.settings import ApiKeyEntry
from gateway.talkme import SandboxState
from tests.resolvers.helpers import codes
from tests.support import (
    AGENT_LOGIN,
    AGENT_LOGIN_MUTATION,
    AGENT_PASSWORD,
    ALL_KEY,
    READ_KEY,
    SECRET_KEY,
    TALKME_EXTERNAL_TOKEN,
    TALKME_TOKEN,
    gql,
    launch_path,
    push_agent_talk,
    serving,
    talkme_settings,
)

AGENT_TALK_ID = 501
AGENT_USER_ID = 7001

PAUSE = """
mutation Pause($input: AgentAuthInput!) {
  pauseAgent(input: $input) { login status changedAt }
}"""
RESUME = """
mutation Resume($input: AgentAuthInput!) {
  resumeAgent(input: $input) { login status changedAt }
}"""
LOGOUT = """
mutation Logout($input: AgentAuthInput!) {
  agentLogout(input: $input) { login status changedAt }
}"""
QUEUE_STATUS = """
query QueueStatus($login: String!) {
  agent(login: $login) { login queueStatus { status changedAt } }
}"""
AGENTS_QUEUE_STATUS = """
{ agents(first: 100) { edges { node { login queueStatus { status changedAt } } } } }
"""

STATUS_MUTATIONS = {
    "pauseAgent": (PAUSE, "PAUSED"),
    "resumeAgent": (RESUME, "ACTIVE"),
    "agentLogout": (LOGOUT, "LOGGED_OUT"),
}
STATUS_PATH = "/talkme-ui/integration/attendants/status"
LOGOUT_PATH = "/api/external/logout"
CREDENTIALS = {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}
WRONG_CREDENTIALS = {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD + "-nope"}}


# -- helpers --------------------------------------------------------------------------------


def state_of(sandbox: Starlette) -> SandboxState:
    state: SandboxState = sandbox.state.sandbox
    return state


def utc_moment(text: str) -> datetime:
    """The instant an ISO 8601 string names; it must be in UTC."""
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text
    return moment


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def credentials_and_tokens(**extra: str) -> dict[str, str]:
    """The body Talk.me receives for an agent's status change: the agent's credentials, the
    gateway's two tokens, and `extra` (the status, where there is one)."""
    return {
        "login": AGENT_LOGIN,
        "password": AGENT_PASSWORD,
        "token": TALKME_TOKEN,
        "externalLoginToken": TALKME_EXTERNAL_TOKEN,
        **extra,
    }


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def mutate(
    client: httpx.AsyncClient, document: str, auth: dict[str, Any], *, key: str = ALL_KEY
) -> dict[str, Any]:
    return await gql(client, document, {"input": auth}, key=key)


async def login(
    client: httpx.AsyncClient, agent: str = AGENT_LOGIN, password: str = AGENT_PASSWORD
) -> dict[str, Any]:
    body = await gql(
        client, AGENT_LOGIN_MUTATION, {"input": {"login": agent, "password": password}}, key=ALL_KEY
    )
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["agentLogin"]
    return payload


async def queue_status(client: httpx.AsyncClient, agent: str = AGENT_LOGIN) -> dict[str, Any]:
    body = await gql(client, QUEUE_STATUS, {"login": agent}, key=READ_KEY)
    assert "errors" not in body, body
    assert body["data"]["agent"] is not None, f"agent {agent} is not known"
    status: dict[str, Any] = body["data"]["agent"]["queueStatus"]
    return status


@pytest.fixture
def calls(sandbox: Starlette) -> SandboxState:
    """The sandbox's controls and what it received."""
    return state_of(sandbox)


@pytest.fixture
async def gateway(talkme_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The gateway, knowing the agent AGENT_LOGIN from a talk posted to the webhook."""
    await push_agent_talk(talkme_client, AGENT_TALK_ID, AGENT_USER_ID)
    return talkme_client


@pytest.fixture
async def fragile_gateway(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with circuits that open after two failed calls and stay open a minute."""
    settings = talkme_settings(tmp_path, breaker_failures=2, breaker_reset_s=60)
    app = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as client:
        yield client


# -- what Talk.me receives ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "path", "extra"),
    [
        pytest.param("pauseAgent", STATUS_PATH, {"status": "N"}, id="pause-posts-status-N"),
        pytest.param("resumeAgent", STATUS_PATH, {"status": "S"}, id="resume-posts-status-S"),
        pytest.param("agentLogout", LOGOUT_PATH, {}, id="logout-posts-to-the-external-logout"),
    ],
)
async def test_a_status_mutation_posts_the_credentials_and_tokens_to_talkme(
    gateway: httpx.AsyncClient,
    calls: SandboxState,
    field: str,
    path: str,
    extra: dict[str, str],
) -> None:
    body = await mutate(gateway, STATUS_MUTATIONS[field][0], CREDENTIALS)
    assert "errors" not in body, body
    assert [(c.method, c.path, c.body) for c in calls.calls] == [
        ("POST", path, credentials_and_tokens(**extra))
    ]


# -- what the mutations answer --------------------------------------------------------------


@pytest.mark.parametrize(("field", "status"), [(f, s) for f, (_, s) in STATUS_MUTATIONS.items()])
async def test_a_status_mutation_answers_the_login_the_new_status_and_when_in_utc(
    gateway: httpx.AsyncClient, field: str, status: str
) -> None:
    document = STATUS_MUTATIONS[field][0]
    before = whole_second(datetime.now(UTC))
    body = await mutate(gateway, document, CREDENTIALS)
    after = datetime.now(UTC)
    assert "errors" not in body, body
    payload = body["data"][field]
    assert payload["login"] == AGENT_LOGIN
    assert payload["status"] == status
    assert before <= utc_moment(payload["changedAt"]) <= after


async def test_queue_status_is_unknown_before_talkgate_changes_it(
    gateway: httpx.AsyncClient,
) -> None:
    assert await queue_status(gateway) == {"status": "UNKNOWN", "changedAt": None}


@pytest.mark.parametrize(
    ("sequence", "last"),
    [
        (["pauseAgent"], "PAUSED"),
        (["pauseAgent", "resumeAgent"], "ACTIVE"),
        (["resumeAgent", "pauseAgent"], "PAUSED"),
        (["pauseAgent", "agentLogout"], "LOGGED_OUT"),
    ],
    ids=["pause", "pause-resume", "resume-pause", "pause-logout"],
)
async def test_agent_queue_status_is_the_last_status_set(
    gateway: httpx.AsyncClient, sequence: list[str], last: str
) -> None:
    payload: dict[str, Any] = {}
    for field in sequence:
        body = await mutate(gateway, STATUS_MUTATIONS[field][0], CREDENTIALS)
        assert "errors" not in body, body
        payload = body["data"][field]
    assert await queue_status(gateway) == {"status": last, "changedAt": payload["changedAt"]}


async def test_queue_status_of_agents_in_a_list_reflects_the_last_change(
    gateway: httpx.AsyncClient,
) -> None:
    changed = (await mutate(gateway, PAUSE, CREDENTIALS))["data"]["pauseAgent"]
    body = await gql(gateway, AGENTS_QUEUE_STATUS, key=READ_KEY)
    assert "errors" not in body, body
    statuses = {
        edge["node"]["login"]: edge["node"]["queueStatus"]
        for edge in body["data"]["agents"]["edges"]
    }
    assert statuses[AGENT_LOGIN] == {"status": "PAUSED", "changedAt": changed["changedAt"]}


# -- the agent in a status payload ----------------------------------------------------------

WITH_AGENT = """
mutation Change($input: AgentAuthInput!) {{
  {field}(input: $input) {{ status agent {{ id login queueStatus {{ status changedAt }} }} }}
}}"""


@pytest.mark.parametrize("field", sorted(STATUS_MUTATIONS))
async def test_a_status_mutation_answers_the_agent_with_its_new_queue_status(
    gateway: httpx.AsyncClient, field: str
) -> None:
    # The agent read before, as a client's cache holds it: the payload must not repeat it.
    before = await gql(
        gateway,
        QUEUE_STATUS.replace("login queueStatus", "id login queueStatus"),
        {"login": AGENT_LOGIN},
    )
    body = await mutate(gateway, WITH_AGENT.format(field=field), CREDENTIALS)
    assert "errors" not in body, body
    payload = body["data"][field]
    status = STATUS_MUTATIONS[field][1]
    assert payload["status"] == status
    agent = payload["agent"]
    assert agent["id"] == before["data"]["agent"]["id"]  # what a normalized cache keys on
    assert agent["login"] == AGENT_LOGIN
    assert agent["queueStatus"]["status"] == status
    assert agent["queueStatus"] == await queue_status(gateway)


async def test_mutations_in_one_request_each_answer_the_status_they_set(
    gateway: httpx.AsyncClient,
) -> None:
    # Run in order in one request: the agent of each payload has its own status, not the
    # first one read in the request.
    selection = "{ status agent { queueStatus { status } } }"
    document = (
        "mutation($input: AgentAuthInput!) {"
        f" a: pauseAgent(input: $input) {selection}"
        f" b: resumeAgent(input: $input) {selection}"
        f" c: pauseAgent(input: $input) {selection}"
        " }"
    )
    body = await mutate(gateway, document, CREDENTIALS)
    assert "errors" not in body, body
    assert [(p["status"], p["agent"]["queueStatus"]["status"]) for p in body["data"].values()] == [
        ("PAUSED", "PAUSED"),
        ("ACTIVE", "ACTIVE"),
        ("PAUSED", "PAUSED"),
    ]


async def test_the_agent_of_a_login_no_talk_names_is_null_without_error(
    talkme_client: httpx.AsyncClient,
) -> None:
    body = await mutate(talkme_client, WITH_AGENT.format(field="pauseAgent"), CREDENTIALS)
    assert body == {"data": {"pauseAgent": {"status": "PAUSED", "agent": None}}}


async def test_the_agent_in_a_payload_needs_talks_read(tmp_path: Path, sandbox: Starlette) -> None:
    controller = "tgk_test_controller_only"
    only_control = ApiKeyEntry(
        name="controller", sha256=key_digest(controller), scopes=frozenset({"agents:control"})
    )
    settings = talkme_settings(
        tmp_path, api_keys=(*talkme_settings(tmp_path).api_keys, only_control)
    )
    app = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as client:
        await push_agent_talk(client, AGENT_TALK_ID, AGENT_USER_ID)
        body = await mutate(
            client, WITH_AGENT.format(field="pauseAgent"), CREDENTIALS, key=controller
        )
    # The status changed and is answered; only the agent, which reads talks, is refused.
    assert body["data"] == {"pauseAgent": {"status": "PAUSED", "agent": None}}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["pauseAgent", "agent"], "FORBIDDEN")
    ]


# -- agentLogin and sessions ----------------------------------------------------------------


async def test_agent_login_makes_no_upstream_call(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    await login(gateway)
    assert calls.calls == []


async def test_agent_login_launch_url_is_on_the_public_url_under_talkme_launch(
    gateway: httpx.AsyncClient,
) -> None:
    url = urlsplit((await login(gateway))["launchUrl"])
    assert (url.scheme, url.netloc) == ("https", "gateway.example")
    assert url.path.startswith("/talkme/launch/")
    assert url.path.removeprefix("/talkme/launch/") != ""


async def test_agent_login_launch_url_holds_no_credential(gateway: httpx.AsyncClient) -> None:
    launch_url = (await login(gateway))["launchUrl"]
    url = urlsplit(launch_url)
    ticket = url.path.removeprefix("/talkme/launch/")
    assert ticket != AGENT_PASSWORD
    assert (url.query, url.fragment, url.username, url.password) == ("", "", None, None)
    for secret in (AGENT_PASSWORD, TALKME_TOKEN, TALKME_EXTERNAL_TOKEN, SECRET_KEY):
        assert secret not in launch_url


async def test_agent_login_launch_urls_differ_for_each_login(gateway: httpx.AsyncClient) -> None:
    first = (await login(gateway))["launchUrl"]
    second = (await login(gateway))["launchUrl"]
    assert first != second


async def test_agent_login_link_expires_about_sixty_seconds_later(
    gateway: httpx.AsyncClient,
) -> None:
    before = whole_second(datetime.now(UTC))
    expires_at = utc_moment((await login(gateway))["expiresAt"])
    after = datetime.now(UTC)
    assert before + timedelta(seconds=60) <= expires_at <= after + timedelta(seconds=60)


async def test_agent_login_session_does_not_show_the_password(gateway: httpx.AsyncClient) -> None:
    session = (await login(gateway))["session"]
    assert session
    assert AGENT_PASSWORD not in session


@pytest.mark.parametrize(
    ("field", "path", "extra"),
    [
        ("pauseAgent", STATUS_PATH, {"status": "N"}),
        ("resumeAgent", STATUS_PATH, {"status": "S"}),
        ("agentLogout", LOGOUT_PATH, {}),
    ],
)
async def test_a_session_from_agent_login_stands_for_the_credentials(
    gateway: httpx.AsyncClient,
    calls: SandboxState,
    field: str,
    path: str,
    extra: dict[str, str],
) -> None:
    session = (await login(gateway))["session"]
    document, status = STATUS_MUTATIONS[field]
    body = await mutate(gateway, document, {"session": session})
    assert "errors" not in body, body
    assert body["data"][field]["login"] == AGENT_LOGIN
    assert body["data"][field]["status"] == status
    assert [(c.path, c.body) for c in calls.calls] == [(path, credentials_and_tokens(**extra))]


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (PAUSE, {"input": {**CREDENTIALS, "session": "a-session"}}),
        (PAUSE, {"input": {}}),
        (PAUSE, {"input": {"session": None}}),
        (
            'mutation { pauseAgent(input: {credentials: {login: "1234", password: "x"}, '
            'session: "a-session"}) { status } }',
            None,
        ),
        ("mutation { pauseAgent(input: {}) { status } }", None),
    ],
    ids=["both-variables", "neither-variables", "null-session", "both-inline", "neither-inline"],
)
async def test_giving_both_or_neither_credentials_and_session_is_bad_user_input(
    gateway: httpx.AsyncClient,
    calls: SandboxState,
    document: str,
    variables: dict[str, Any] | None,
) -> None:
    body = await gql(gateway, document, variables, key=ALL_KEY)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert (body.get("data") or {}).get("pauseAgent") is None
    assert calls.calls == []


async def test_a_tampered_session_is_bad_user_input(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    session = (await login(gateway))["session"]
    middle = len(session) // 2
    tampered = session[:middle] + ("A" if session[middle] != "A" else "B") + session[middle + 1 :]
    body = await mutate(gateway, PAUSE, {"session": tampered})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {"pauseAgent": None}
    assert calls.calls == []


async def test_a_session_sealed_with_another_secret_key_is_bad_user_input(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    foreign = SessionSealer("another-secret-key-0f3e9a2b").seal(
        AgentCredentials(AGENT_LOGIN, AGENT_PASSWORD), ttl_s=3600
    )
    body = await mutate(gateway, PAUSE, {"session": foreign})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert calls.calls == []


async def test_an_expired_session_is_bad_user_input(
    tmp_path: Path, sandbox: Starlette, calls: SandboxState
) -> None:
    settings = talkme_settings(tmp_path, session_ttl_s=60)
    app = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    expired = SessionSealer(SECRET_KEY).seal(
        AgentCredentials(AGENT_LOGIN, AGENT_PASSWORD), ttl_s=60, now=time.time() - 3600
    )
    async with serving(app) as client:
        body = await mutate(client, RESUME, {"session": expired})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {"resumeAgent": None}
    assert calls.calls == []


@pytest.mark.parametrize(
    ("agent", "password"),
    [("", AGENT_PASSWORD), ("   ", AGENT_PASSWORD), (AGENT_LOGIN, "")],
    ids=["empty-login", "blank-login", "empty-password"],
)
async def test_agent_login_with_an_empty_login_or_password_is_bad_user_input(
    gateway: httpx.AsyncClient, agent: str, password: str
) -> None:
    body = await gql(
        gateway,
        AGENT_LOGIN_MUTATION,
        {"input": {"login": agent, "password": password}},
        key=ALL_KEY,
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {"agentLogin": None}


@pytest.mark.parametrize("field", list(STATUS_MUTATIONS))
@pytest.mark.parametrize(
    ("agent", "password"),
    [("", AGENT_PASSWORD), ("   ", AGENT_PASSWORD), (AGENT_LOGIN, "")],
    ids=["empty-login", "blank-login", "empty-password"],
)
async def test_a_status_mutation_with_an_empty_login_or_password_is_bad_user_input(
    gateway: httpx.AsyncClient, calls: SandboxState, field: str, agent: str, password: str
) -> None:
    document = STATUS_MUTATIONS[field][0]
    body = await mutate(gateway, document, {"credentials": {"login": agent, "password": password}})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {field: None}
    assert calls.calls == []


# -- upstream failures ----------------------------------------------------------------------


async def test_a_wrong_password_is_upstream_rejected_after_exactly_one_call(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    body = await mutate(gateway, PAUSE, WRONG_CREDENTIALS)
    assert codes(body) == ["UPSTREAM_REJECTED"]
    assert body["data"] == {"pauseAgent": None}
    assert body["errors"][0]["path"] == ["pauseAgent"]
    assert len(calls.calls) == 1


async def test_persistent_5xx_is_upstream_unavailable(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    calls.fail_next(100, status=503)
    body = await mutate(gateway, RESUME, CREDENTIALS)
    assert codes(body) == ["UPSTREAM_UNAVAILABLE"]
    assert body["data"] == {"resumeAgent": None}
    assert body["errors"][0]["path"] == ["resumeAgent"]
    assert len(calls.calls) > 1  # retried before giving up


async def test_a_single_5xx_is_retried_and_the_mutation_succeeds(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    calls.fail_next(1, status=502)
    body = await mutate(gateway, PAUSE, CREDENTIALS)
    assert "errors" not in body, body
    assert body["data"]["pauseAgent"]["status"] == "PAUSED"
    assert len(calls.calls) == 2


async def test_a_timeout_is_upstream_unavailable(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    calls.delay(0.8)  # each attempt gives up after talkme_timeout_s = 0.5
    body = await mutate(gateway, LOGOUT, CREDENTIALS)
    assert codes(body) == ["UPSTREAM_UNAVAILABLE"]
    assert body["data"] == {"agentLogout": None}
    assert len(calls.calls) >= 1


async def test_a_refused_connection_is_upstream_unavailable(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    settings = talkme_settings(
        tmp_path,
        talkme_login_url=f"{nowhere}/login",
        talkme_agent_api_url=nowhere,
        talkme_bc_api_url=nowhere,
    )
    async with serving(create_app(settings)) as client:
        body = await mutate(client, PAUSE, CREDENTIALS)
    assert codes(body) == ["UPSTREAM_UNAVAILABLE"]
    assert body["data"] == {"pauseAgent": None}


async def test_after_breaker_failures_failed_calls_the_next_fails_fast_without_upstream(
    fragile_gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    calls.fail_next(1000, status=503)
    for _ in range(2):
        assert codes(await mutate(fragile_gateway, PAUSE, CREDENTIALS)) == ["UPSTREAM_UNAVAILABLE"]
    calls.reset()
    body = await mutate(fragile_gateway, RESUME, CREDENTIALS)
    assert codes(body) == ["UPSTREAM_UNAVAILABLE"]
    assert body["data"] == {"resumeAgent": None}
    assert calls.calls == []


async def test_an_open_status_circuit_does_not_stop_logout(
    fragile_gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    calls.fail_next(1000, status=503)
    for _ in range(2):
        assert codes(await mutate(fragile_gateway, PAUSE, CREDENTIALS)) == ["UPSTREAM_UNAVAILABLE"]
    calls.reset()
    body = await mutate(fragile_gateway, LOGOUT, CREDENTIALS)
    assert "errors" not in body, body
    assert [c.path for c in calls.calls] == [LOGOUT_PATH]


async def test_rejected_calls_do_not_open_the_circuit(
    fragile_gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    for _ in range(3):
        assert codes(await mutate(fragile_gateway, PAUSE, WRONG_CREDENTIALS)) == [
            "UPSTREAM_REJECTED"
        ]
    calls.reset()
    body = await mutate(fragile_gateway, PAUSE, CREDENTIALS)
    assert "errors" not in body, body
    assert len(calls.calls) == 1


async def test_a_rejected_mutation_leaves_queue_status_unknown(
    gateway: httpx.AsyncClient,
) -> None:
    assert codes(await mutate(gateway, PAUSE, WRONG_CREDENTIALS)) == ["UPSTREAM_REJECTED"]
    assert await queue_status(gateway) == {"status": "UNKNOWN", "changedAt": None}


@pytest.mark.parametrize("field", ["resumeAgent", "agentLogout"])
async def test_a_failed_mutation_does_not_change_queue_status(
    gateway: httpx.AsyncClient, calls: SandboxState, field: str
) -> None:
    paused = (await mutate(gateway, PAUSE, CREDENTIALS))["data"]["pauseAgent"]
    calls.fail_next(100, status=503)
    assert codes(await mutate(gateway, STATUS_MUTATIONS[field][0], CREDENTIALS)) == [
        "UPSTREAM_UNAVAILABLE"
    ]
    calls.reset()
    assert await queue_status(gateway) == {"status": "PAUSED", "changedAt": paused["changedAt"]}


async def test_one_failing_mutation_does_not_hide_the_data_of_another(
    gateway: httpx.AsyncClient, calls: SandboxState
) -> None:
    document = """
    mutation Both($good: AgentAuthInput!, $bad: AgentAuthInput!) {
      paused: pauseAgent(input: $good) { login status changedAt }
      refused: resumeAgent(input: $bad) { login status changedAt }
    }"""
    body = await gql(
        gateway, document, {"good": CREDENTIALS, "bad": WRONG_CREDENTIALS}, key=ALL_KEY
    )
    assert body["data"]["paused"]["login"] == AGENT_LOGIN
    assert body["data"]["paused"]["status"] == "PAUSED"
    assert body["data"]["refused"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["refused"], "UPSTREAM_REJECTED")
    ]
    assert [c.body["status"] for c in calls.calls if isinstance(c.body, dict)] == ["N", "S"]


# -- scopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "document", "auth"),
    [
        ("agentLogin", AGENT_LOGIN_MUTATION, {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}),
        ("pauseAgent", PAUSE, CREDENTIALS),
        ("resumeAgent", RESUME, CREDENTIALS),
        ("agentLogout", LOGOUT, CREDENTIALS),
    ],
    ids=["agentLogin", "pauseAgent", "resumeAgent", "agentLogout"],
)
async def test_a_key_without_agents_control_is_forbidden_and_talk_me_hears_nothing(
    gateway: httpx.AsyncClient,
    calls: SandboxState,
    field: str,
    document: str,
    auth: dict[str, Any],
) -> None:
    body = await mutate(gateway, document, auth, key=READ_KEY)
    assert codes(body) == ["FORBIDDEN"]
    assert body["data"] == {field: None}
    assert calls.calls == []


async def test_a_forbidden_mutation_does_not_change_queue_status(
    gateway: httpx.AsyncClient,
) -> None:
    assert codes(await mutate(gateway, PAUSE, CREDENTIALS, key=READ_KEY)) == ["FORBIDDEN"]
    assert await queue_status(gateway) == {"status": "UNKNOWN", "changedAt": None}


# -- secrets --------------------------------------------------------------------------------
NUMERIC_PASSWORD = 80417293  # Talk.me's own example password is all digits


@pytest.mark.parametrize(
    ("document", "variables", "password"),
    [
        (
            AGENT_LOGIN_MUTATION,
            {"input": {"login": AGENT_LOGIN, "password": NUMERIC_PASSWORD}},
            str(NUMERIC_PASSWORD),
        ),
        (
            PAUSE,
            {"input": {"credentials": {"login": AGENT_LOGIN, "password": NUMERIC_PASSWORD}}},
            str(NUMERIC_PASSWORD),
        ),
        (
            AGENT_LOGIN_MUTATION,
            {"input": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD, "token": "t"}},
            AGENT_PASSWORD,
        ),
        (
            PAUSE,
            {"input": {**CREDENTIALS, "status": "N"}},
            AGENT_PASSWORD,
        ),
    ],
    ids=[
        "agentLogin-numeric-password",
        "pauseAgent-numeric-password",
        "agentLogin-unknown-field",
        "pauseAgent-unknown-field",
    ],
)
async def test_a_malformed_input_is_bad_user_input_whose_error_does_not_echo_the_password(
    gateway: httpx.AsyncClient,
    calls: SandboxState,
    document: str,
    variables: dict[str, Any],
    password: str,
) -> None:
    body = await gql(gateway, document, variables, key=ALL_KEY)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert calls.calls == []
    assert password not in json.dumps(body)


SPECIAL_PASSWORD = "pw\"<>&'-9Zk"
SECRETS = (AGENT_PASSWORD, SPECIAL_PASSWORD, TALKME_TOKEN, TALKME_EXTERNAL_TOKEN, SECRET_KEY)


def texts_of(response: httpx.Response, *, with_body: bool = True) -> list[str]:
    texts = [f"{name}: {value}" for name, value in response.headers.multi_items()]
    if with_body:
        texts.append(response.text)
    return texts


def texts_of_records(records: Iterable[logging.LogRecord]) -> list[str]:
    """Everything a log record could print: its message, arguments, extra fields, traceback."""
    formatter = logging.Formatter()
    texts: list[str] = []
    for record in records:
        texts.append(record.getMessage())
        texts.extend(repr(value) for value in record.__dict__.values())
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[tuple[str, str]]:
    wanted = list(secrets)
    return [(secret, text[:200]) for text in texts for secret in wanted if secret in text]


async def test_no_response_or_log_record_holds_a_password_token_or_secret_key(
    tmp_path: Path,
    sandbox: Starlette,
    calls: SandboxState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    calls.agents["5678"] = SPECIAL_PASSWORD
    settings = talkme_settings(tmp_path, breaker_failures=2, breaker_reset_s=60)
    app = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    responses: list[httpx.Response] = []
    launch_pages: list[httpx.Response] = []
    sessions: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        responses.append(response)

    async with serving(app) as client:
        client.event_hooks = {"request": [], "response": [keep]}
        await push_agent_talk(client, AGENT_TALK_ID, AGENT_USER_ID)
        for agent, password in ((AGENT_LOGIN, AGENT_PASSWORD), ("5678", SPECIAL_PASSWORD)):
            payload = await login(client, agent, password)
            sessions.append(payload["session"])
            path = launch_path(payload["launchUrl"])
            page = await client.get(path)
            assert page.status_code == 200
            launch_pages.append(page)
            assert (await client.get(path)).status_code == 410
        assert (await client.get("/talkme/launch/not-a-ticket")).status_code == 410
        for document, _ in STATUS_MUTATIONS.values():
            await mutate(client, document, CREDENTIALS)
            await mutate(client, document, {"session": sessions[1]})
            await mutate(client, document, CREDENTIALS, key=READ_KEY)
        await mutate(client, PAUSE, WRONG_CREDENTIALS)
        await mutate(client, PAUSE, {"credentials": {"login": "5678", "password": "x<>&"}})
        await mutate(client, PAUSE, {"session": sessions[0][:-3] + "abc"})
        await mutate(client, PAUSE, {**CREDENTIALS, "session": sessions[0]})
        expired = SessionSealer(SECRET_KEY).seal(
            AgentCredentials(AGENT_LOGIN, AGENT_PASSWORD), ttl_s=60, now=time.time() - 3600
        )
        await mutate(client, RESUME, {"session": expired})
        await gql(
            client,
            AGENT_LOGIN_MUTATION,
            {"input": {"login": AGENT_LOGIN, "password": ""}},
            key=ALL_KEY,
        )
        calls.delay(0.8)
        await mutate(client, LOGOUT, CREDENTIALS)
        calls.reset()
        calls.fail_next(1000, status=503)
        await mutate(client, PAUSE, {"session": sessions[0]})
        await mutate(client, RESUME, CREDENTIALS)
        await mutate(client, RESUME, CREDENTIALS)  # the circuit is open now
        calls.reset()
        await gql(client, QUEUE_STATUS, {"login": AGENT_LOGIN}, key=READ_KEY)

    nowhere = f"http://127.0.0.1:{closed_port()}"
    refused = talkme_settings(
        tmp_path / "refused", talkme_agent_api_url=nowhere, talkme_bc_api_url=nowhere
    )
    (tmp_path / "refused").mkdir()
    async with serving(create_app(refused)) as client:
        client.event_hooks = {"request": [], "response": [keep]}
        await mutate(client, PAUSE, CREDENTIALS)

    assert len(launch_pages) == 2
    assert len(responses) > 20
    served: list[str] = []
    for response in responses:
        served += texts_of(response, with_body=not any(response is page for page in launch_pages))
    assert leaks(served, SECRETS) == []
    assert caplog.records
    assert leaks(texts_of_records(caplog.records), [*SECRETS, *sessions]) == []
