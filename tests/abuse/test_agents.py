"""Abuse of agent control and recordings: sessions that outlive a logout or change hands,
statuses nobody confirmed, and protocols or credentials that are not what Talk.me takes.

Every shape is driven over HTTP as a client would; Talk.me is the sandbox, which records every
request it receives (astray paths included), so "nothing reached Talk.me" is read from it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.auth import key_digest
from gateway.http.app import create_app
from gateway.replicas.pubsub import AGENT_STATUS, LocalFanout
from gateway.settings import ApiKeyEntry, Settings
from gateway.talkme import SandboxState, TalkmeClient
from tests.abuse.bounds import bounded
from tests.backends import REDIS_URL, require_redis
from tests.factories import talk
from tests.strategies import served_examples
from tests.support import (
    AGENT_LOGIN,
    AGENT_LOGIN_MUTATION,
    AGENT_PASSWORD,
    ALL_KEY,
    KEYS,
    agent_sandbox,
    push,
    serving,
    talkme_settings,
)

OTHER_KEY = "tgk_test_other_controller"
OTHER_KEY_NAME = "other-controller"
FETCHAUDIO = "/talkme-ui/external/operational/fetchaudio/"

PAUSE = "mutation($input: AgentAuthInput!) { pauseAgent(input: $input) { login status } }"
RESUME = "mutation($input: AgentAuthInput!) { resumeAgent(input: $input) { login status } }"
LOGOUT = "mutation($input: AgentAuthInput!) { agentLogout(input: $input) { login status } }"
STATUS_MUTATIONS = {"pauseAgent": PAUSE, "resumeAgent": RESUME, "agentLogout": LOGOUT}
QUEUE_STATUS = "query($l: String!) { agent(login: $l) { queueStatus { status changedAt } } }"
RECORDING = "query($p: String!) { recording(protocol: $p) { protocol url } }"
TALK_RECORDING = "query($id: ID!) { talk(id: $id) { id: databaseId recording { protocol url } } }"
CREDENTIALS = {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}
CREDENTIALS_INPUT = {"input": CREDENTIALS}
WRONG = {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD + "-nope"}}

ABUSE = served_examples(60, shrink=False)


def keyed_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Talk.me at the sandbox, the test keys and a second key with agents:control."""
    entries = [
        ApiKeyEntry(name=name, sha256=key_digest(key), scopes=frozenset(scopes))
        for key, (name, scopes) in KEYS.items()
    ]
    entries.append(
        ApiKeyEntry(
            name=OTHER_KEY_NAME,
            sha256=key_digest(OTHER_KEY),
            scopes=frozenset({"agents:control", "recordings:read", "talks:read"}),
        )
    )
    values: dict[str, Any] = {"api_keys": tuple(entries), "rate_limit_per_minute": 1_000_000}
    values.update(overrides)
    return talkme_settings(tmp_path, **values)


async def ask(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], *, key: str = ALL_KEY
) -> dict[str, Any]:
    """POST a GraphQL operation, JSON with ASCII escapes (so lone surrogates travel too)."""
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text[:300]
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or ()]


@dataclass
class Gateway:
    app: Starlette
    client: httpx.AsyncClient
    sandbox: SandboxState
    talkme: TalkmeClient  # its breakers are read, never driven
    fanout: LocalFanout  # what this replica's subscribers are sent

    async def login(self, *, key: str = ALL_KEY, agent: str = AGENT_LOGIN) -> str:
        password = self.sandbox.agents[agent]
        body = await ask(
            self.client,
            AGENT_LOGIN_MUTATION,
            {"input": {"login": agent, "password": password}},
            key=key,
        )
        assert "errors" not in body, body
        session: str = body["data"]["agentLogin"]["session"]
        return session

    async def status(self, agent: str = AGENT_LOGIN) -> dict[str, Any]:
        body = await ask(self.client, QUEUE_STATUS, {"l": agent})
        status: dict[str, Any] = body["data"]["agent"]["queueStatus"]
        return status


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    sandbox = agent_sandbox()
    app = create_app(keyed_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            agent = talk(701)
            for history in agent["talk_histories"]:
                history["user"] = {**history["user"], "id": 7101, "login": AGENT_LOGIN}
                history["user_id"] = 7101
            assert (await push(client, agent)).status_code == 202
            services = manager._state["services"]
            yield Gateway(
                app, client, sandbox.state.sandbox, services.talkme, services.broker.fanout
            )


# -- finding 9: a session outlives agentLogout, and works with any key ----------------------


@pytest.mark.parametrize("field", list(STATUS_MUTATIONS))
async def test_a_session_is_refused_after_its_agent_logout_without_a_call(
    gw: Gateway, field: str
) -> None:
    session = await gw.login()
    # A logout Talk.me did not confirm revokes nothing: refused, then failed.
    assert codes(await ask(gw.client, LOGOUT, {"input": WRONG})) == ["UPSTREAM_REJECTED"]
    gw.sandbox.fail_next(4, status=503)
    failed = await ask(gw.client, LOGOUT, {"input": {"session": session}})
    assert codes(failed) == ["UPSTREAM_UNAVAILABLE"]
    assert codes(await ask(gw.client, PAUSE, {"input": {"session": session}})) == []
    assert codes(await ask(gw.client, LOGOUT, {"input": {"session": session}})) == []
    gw.sandbox.reset()
    async with bounded(f"revoked session, {field}", seconds=2.0, peak_mib=20):
        body = await ask(gw.client, STATUS_MUTATIONS[field], {"input": {"session": session}})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {field: None}
    assert "revoked" in body["errors"][0]["message"]
    assert gw.sandbox.calls == []


async def test_a_logout_with_credentials_revokes_every_session_of_that_login_of_every_key(
    gw: Gateway,
) -> None:
    mine, theirs = await gw.login(), await gw.login(key=OTHER_KEY)
    assert codes(await ask(gw.client, LOGOUT, CREDENTIALS_INPUT)) == []
    gw.sandbox.reset()
    for session, key in ((mine, ALL_KEY), (theirs, OTHER_KEY)):
        body = await ask(gw.client, PAUSE, {"input": {"session": session}}, key=key)
        assert codes(body) == ["BAD_USER_INPUT"]
    assert gw.sandbox.calls == []
    # A login after the logout gets a session that works.
    fresh = await gw.login()
    body = await ask(gw.client, PAUSE, {"input": {"session": fresh}})
    assert body["data"] == {"pauseAgent": {"login": AGENT_LOGIN, "status": "PAUSED"}}


@pytest.mark.parametrize("field", list(STATUS_MUTATIONS))
async def test_a_session_used_with_another_api_key_is_refused_like_a_forged_one(
    gw: Gateway, field: str
) -> None:
    session = await gw.login(key=ALL_KEY)
    forged = await ask(gw.client, PAUSE, {"input": {"session": session[:-4] + "AAAA"}})
    gw.sandbox.reset()
    body = await ask(
        gw.client, STATUS_MUTATIONS[field], {"input": {"session": session}}, key=OTHER_KEY
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {field: None}
    # The same answer as a forged token: no key learns that a token it holds is a live one.
    assert body["errors"][0]["message"] == forged["errors"][0]["message"]
    assert body["errors"][0]["extensions"] == forged["errors"][0]["extensions"]
    assert gw.sandbox.calls == []
    # And the session still works for the key it was issued to.
    owned = await ask(gw.client, PAUSE, {"input": {"session": session}})
    assert owned["data"] == {"pauseAgent": {"login": AGENT_LOGIN, "status": "PAUSED"}}


# -- revocation across replicas: the store, or Redis ---------------------------------------


@pytest.mark.parametrize("shared", ["store", "redis"])
async def test_a_session_revoked_on_one_replica_is_refused_on_another(
    tmp_path: Path, shared: str
) -> None:
    # An agent of this run's own: with Redis, other test runs share the server.
    agent, password = f"9{secrets.randbelow(10**8):08d}", "agent-pw-replicas-3"
    sandbox = agent_sandbox()
    sandbox.state.sandbox.agents[agent] = password
    if shared == "redis":
        await require_redis()
    if shared == "store":
        first = second = keyed_settings(tmp_path)
    else:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first, second = (
            keyed_settings(tmp_path / name, redis_url=REDIS_URL) for name in ("a", "b")
        )
    transport = httpx.ASGITransport(app=sandbox)
    one, other = (
        create_app(first, talkme_transport=transport),
        create_app(second, talkme_transport=transport),
    )
    async with serving(one) as a, serving(other) as b:
        made = await ask(a, AGENT_LOGIN_MUTATION, {"input": {"login": agent, "password": password}})
        session = made["data"]["agentLogin"]["session"]
        assert codes(await ask(b, PAUSE, {"input": {"session": session}})) == []
        assert codes(await ask(a, LOGOUT, {"input": {"session": session}})) == []
        sandbox.state.sandbox.reset()
        body = await ask(b, RESUME, {"input": {"session": session}})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert sandbox.state.sandbox.calls == []


# -- finding 9: a status nobody confirmed ---------------------------------------------------


async def test_a_wrong_password_and_its_launch_page_leave_the_status_unknown_and_unpublished(
    gw: Gateway,
) -> None:
    async with gw.fanout.subscription(AGENT_STATUS) as events:
        body = await ask(
            gw.client,
            AGENT_LOGIN_MUTATION,
            {"input": {"login": AGENT_LOGIN, "password": "wrong-password"}},
        )
        launch = body["data"]["agentLogin"]["launchUrl"].removeprefix("https://gateway.example")
        assert (await gw.client.get(launch)).status_code == 200
        assert await gw.status() == {"status": "UNKNOWN", "changedAt": None}
        # Refused and failed changes publish nothing either; the first event is the success.
        assert codes(await ask(gw.client, RESUME, {"input": WRONG})) == ["UPSTREAM_REJECTED"]
        gw.sandbox.fail_next(4, status=503)
        assert codes(await ask(gw.client, RESUME, CREDENTIALS_INPUT)) == ["UPSTREAM_UNAVAILABLE"]
        assert await gw.status() == {"status": "UNKNOWN", "changedAt": None}
        assert codes(await ask(gw.client, PAUSE, CREDENTIALS_INPUT)) == []
        first = await asyncio.wait_for(events.next(), 5)
    assert (first["login"], first["status"]) == (AGENT_LOGIN, "PAUSED")


# -- finding 10: protocols that are not protocols -------------------------------------------

SAFE = "0123456789ABCDEFabcdef"
HOSTILE = [
    "..",
    ".",
    "/",
    "%2e%2e",
    "%2E%2e",
    "%2F",
    "?",
    "#",
    "\\",
    "\u2024",  # one dot leader
    "\u2025",  # two dot leader
    "\uff0e",  # fullwidth full stop
    "\u3002",  # ideographic full stop
    "\x00",
    " ",
    "\t",
    "\n",
    "é",
]


@st.composite
def bad_protocols(draw: st.DrawFn) -> str:
    """Protocols Talk.me never issues: a hostile piece with safe text around it, dots alone,
    or too long."""
    shape = draw(st.integers(0, 3))
    if shape == 0:
        return draw(st.sampled_from(HOSTILE))
    if shape == 1:
        return "." * draw(st.integers(1, 5)) + draw(st.text(SAFE, max_size=4))
    if shape == 2:
        return draw(st.text(SAFE, min_size=65, max_size=300))
    pieces = draw(st.lists(st.sampled_from(HOSTILE) | st.text(SAFE, max_size=3), min_size=2))
    protocol = "".join(pieces)
    if not any(p in protocol for p in HOSTILE if p not in (".", "..")):
        protocol = "./" + protocol
    return protocol


@ABUSE
@given(protocol=bad_protocols())
@example(protocol="..")
@example(protocol="x" * 100_000)
@example(protocol="a/../../x")
async def test_a_protocol_talk_me_never_issues_is_bad_user_input_and_unsent(
    gw: Gateway, protocol: str
) -> None:
    gw.sandbox.reset()
    body = await ask(gw.client, RECORDING, {"p": protocol})
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"] == {"recording": None}
    assert protocol[:64] not in body["errors"][0]["message"] or len(protocol) < 3
    assert gw.sandbox.calls == []
    assert gw.talkme.breakers["fetchaudio"].state == "closed"


async def test_a_100_kb_protocol_is_bad_user_input_in_bounded_time_and_memory(
    gw: Gateway,
) -> None:
    async with bounded("recording(protocol: 100 KB)", seconds=2.0, peak_mib=30):
        body = await ask(gw.client, RECORDING, {"p": "7" * 100_000})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "Traceback" not in json.dumps(body)
    assert gw.sandbox.calls == []


async def test_many_bad_protocols_leave_the_breaker_closed_for_everyone(gw: Gateway) -> None:
    async with bounded("200 bad protocols", seconds=20.0, peak_mib=60):
        for n in range(200):
            protocol = HOSTILE[n % len(HOSTILE)] + str(n)
            body = await ask(gw.client, RECORDING, {"p": protocol}, key=OTHER_KEY)
            assert codes(body) == ["BAD_USER_INPUT"], (protocol, body)
    assert gw.sandbox.calls == []
    assert gw.talkme.breakers["fetchaudio"].state == "closed"
    # Protocols of the documented shapes still reach Talk.me, each as one path segment.
    for protocol in DOCUMENTED_PROTOCOLS:
        body = await ask(gw.client, RECORDING, {"p": protocol})
        assert body["data"]["recording"]["protocol"] == protocol
    assert [c.path for c in gw.sandbox.calls] == [FETCHAUDIO + p for p in DOCUMENTED_PROTOCOLS]


# Tracking numbers (the fixture's 20250908114603), the partner guide's external protocols.
DOCUMENTED_PROTOCOLS = ["20250908114603", "PRT-200039", "EXT_7", "2025.09.08-1", "A" * 64]


@pytest.mark.parametrize("stored", ["..", "a/../b", "x" * 5_000, "PRT 1"])
async def test_a_stored_protocol_that_is_not_one_is_a_typed_error_on_talk_recording(
    gw: Gateway, stored: str
) -> None:
    assert (await push(gw.client, talk(702, external_protocol=stored))).status_code == 202
    gw.sandbox.reset()
    body = await ask(gw.client, TALK_RECORDING, {"id": "702"})
    assert body["data"] == {"talk": {"id": "702", "recording": None}}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["talk", "recording"], "BAD_USER_INPUT")
    ]
    assert gw.sandbox.calls == []


# -- credentials: control characters, lone surrogates, huge lengths --------------------------

# Lone surrogates ("\ud800") never get this far: the edge refuses the body that carries them
# (test_a_lone_surrogate_is_refused_at_the_edge_and_unsent).
BAD_LOGINS = ["12\n34", "12\x0034", "1" * 65, "1" * 900_000, "12\u202834"]
BAD_PASSWORDS = ["a\x00b", "pw\r\nX-Injected: 1", "\x7f", "p" * 257, "p" * 900_000]


@pytest.mark.parametrize(
    ("login", "password"),
    [(login, AGENT_PASSWORD) for login in BAD_LOGINS]
    + [(AGENT_LOGIN, password) for password in BAD_PASSWORDS],
    ids=[f"login-{n}" for n in range(len(BAD_LOGINS))]
    + [f"password-{n}" for n in range(len(BAD_PASSWORDS))],
)
@pytest.mark.parametrize("field", ["agentLogin", *STATUS_MUTATIONS])
async def test_credentials_talk_me_could_not_know_are_bad_user_input_and_unsent(
    gw: Gateway, field: str, login: str, password: str
) -> None:
    document = AGENT_LOGIN_MUTATION if field == "agentLogin" else STATUS_MUTATIONS[field]
    given = {"login": login, "password": password}
    variables = {"input": given if field == "agentLogin" else {"credentials": given}}
    async with bounded(f"{field} {len(login)}/{len(password)} chars", seconds=3.0, peak_mib=60):
        body = await ask(gw.client, document, variables)
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"] == {field: None}
    assert password[:20] not in json.dumps(body)
    assert gw.sandbox.calls == []
    assert all(b.state == "closed" for b in gw.talkme.breakers.values())


@pytest.mark.parametrize("field", ["agentLogin", *STATUS_MUTATIONS, "recording"])
async def test_a_lone_surrogate_is_refused_at_the_edge_and_unsent(gw: Gateway, field: str) -> None:
    # JSON with ASCII escapes carries "\ud800", which no UTF-8 request to Talk.me could hold.
    variables: dict[str, Any]
    if field == "recording":
        document, variables = RECORDING, {"p": "12\ud80034"}
    else:
        given = {"login": AGENT_LOGIN, "password": "pw\ud800"}
        document = AGENT_LOGIN_MUTATION if field == "agentLogin" else STATUS_MUTATIONS[field]
        variables = {"input": given if field == "agentLogin" else {"credentials": given}}
    response = await gw.client.post(
        "/graphql",
        content=json.dumps({"query": document, "variables": variables}).encode(),
        headers={"Authorization": f"Bearer {ALL_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert "not valid JSON" in response.json()["errors"][0]["message"]
    assert gw.sandbox.calls == []
