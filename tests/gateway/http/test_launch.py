"""`GET /talkme/launch/{ticket}`: the single-use page that logs an agent into Talk.me.

The ticket comes from `agentLogin` over GraphQL; the page is fetched by GET on the path of its
`launchUrl`, exactly as the agent's browser would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway import tickets
from gateway.http.app import create_app
from gateway.replicas.pubsub import AGENT_STATUS, LocalFanout
from tests.support import (
    AGENT_LOGIN,
    AGENT_LOGIN_MUTATION,
    AGENT_PASSWORD,
    ALL_KEY,
    READ_KEY,
    SECRET_KEY,
    TALKME_EXTERNAL_TOKEN,
    TALKME_TOKEN,
    TALKME_URL,
    gql,
    launch_path,
    push_agent_talk,
    serving,
    talkme_settings,
)

TALKME_LOGIN_URL = f"{TALKME_URL}/login"
SPECIAL_PASSWORD = "a\"b<c>d&e'f"
CREDENTIAL_SECRETS = (AGENT_PASSWORD, SPECIAL_PASSWORD, TALKME_TOKEN, TALKME_EXTERNAL_TOKEN)

QUEUE_STATUS = """
query QueueStatus($login: String!) {
  agent(login: $login) { queueStatus { status changedAt } }
}"""


@dataclass
class LaunchPage:
    """What a browser would find in the page: its forms, inputs and scripts."""

    forms: list[dict[str, str | None]] = field(default_factory=list)
    inputs: list[dict[str, str | None]] = field(default_factory=list)
    scripts: list[dict[str, str | None]] = field(default_factory=list)
    script_texts: list[str] = field(default_factory=list)

    def hidden_fields(self) -> dict[str, str | None]:
        return {i["name"] or "": i["value"] for i in self.inputs if i.get("type") == "hidden"}


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = LaunchPage()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.page.forms.append(found)
        elif tag == "input":
            self.page.inputs.append(found)
        elif tag == "script":
            self.page.scripts.append(found)
            self.page.script_texts.append("")
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.page.script_texts[-1] += data


def parse_page(text: str) -> LaunchPage:
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return parser.page


def csp_of(response: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as directive → sources."""
    policy: dict[str, list[str]] = {}
    for directive in response.headers["content-security-policy"].split(";"):
        name, *sources = directive.split()
        policy[name.lower()] = sources
    return policy


async def launch_url(
    client: httpx.AsyncClient, login: str = AGENT_LOGIN, password: str = AGENT_PASSWORD
) -> str:
    """The launch URL `agentLogin` hands out for these credentials."""
    body = await gql(
        client, AGENT_LOGIN_MUTATION, {"input": {"login": login, "password": password}}, key=ALL_KEY
    )
    assert "errors" not in body, body
    url: str = body["data"]["agentLogin"]["launchUrl"]
    return url


async def open_launch_page(
    client: httpx.AsyncClient, login: str = AGENT_LOGIN, password: str = AGENT_PASSWORD
) -> httpx.Response:
    """Log in over GraphQL, then open the launch link as the agent's browser would."""
    return await client.get(launch_path(await launch_url(client, login, password)))


async def queue_status(client: httpx.AsyncClient) -> dict[str, Any]:
    body = await gql(client, QUEUE_STATUS, {"login": AGENT_LOGIN}, key=READ_KEY)
    assert "errors" not in body, body
    status: dict[str, Any] = body["data"]["agent"]["queueStatus"]
    return status


@pytest.fixture
async def gateway(talkme_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The gateway, knowing the agent AGENT_LOGIN from a talk posted to the webhook."""
    await push_agent_talk(talkme_client, 601, 7002)
    return talkme_client


@pytest.fixture
async def page(gateway: httpx.AsyncClient) -> httpx.Response:
    """A launch page, served for AGENT_LOGIN."""
    response = await open_launch_page(gateway)
    assert response.status_code == 200, response.text
    return response


# -- the page -------------------------------------------------------------------------------


def test_the_launch_page_is_html(page: httpx.Response) -> None:
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


def test_the_launch_page_has_one_form_posting_to_the_talkme_login_url(
    page: httpx.Response,
) -> None:
    forms = parse_page(page.text).forms
    assert len(forms) == 1
    assert (forms[0].get("method") or "").lower() == "post"
    assert forms[0].get("action") == TALKME_LOGIN_URL


def test_the_form_holds_login_password_token_and_external_login_token_as_hidden_inputs(
    page: httpx.Response,
) -> None:
    assert parse_page(page.text).hidden_fields() == {
        "login": AGENT_LOGIN,
        "password": AGENT_PASSWORD,
        "token": TALKME_TOKEN,
        "externalLoginToken": TALKME_EXTERNAL_TOKEN,
    }


async def test_a_password_with_html_special_characters_is_escaped_and_arrives_intact(
    gateway: httpx.AsyncClient,
) -> None:
    response = await open_launch_page(gateway, password=SPECIAL_PASSWORD)
    assert response.status_code == 200
    assert SPECIAL_PASSWORD not in response.text
    parsed = parse_page(response.text)
    assert parsed.hidden_fields()["password"] == SPECIAL_PASSWORD
    assert [i.get("name") for i in parsed.inputs] == [
        "login",
        "password",
        "token",
        "externalLoginToken",
    ]
    assert len(parsed.forms) == 1
    assert len(parsed.scripts) == 1


async def test_a_login_with_html_special_characters_cannot_inject_markup(
    gateway: httpx.AsyncClient,
) -> None:
    hostile = '"><script>alert(1)</script><input name="x'
    response = await open_launch_page(gateway, login=hostile)
    assert response.status_code == 200
    parsed = parse_page(response.text)
    assert parsed.hidden_fields()["login"] == hostile
    assert len(parsed.scripts) == 1
    assert len(parsed.inputs) == 4


def test_the_page_submits_the_form_from_a_script_carrying_the_csp_nonce(
    page: httpx.Response,
) -> None:
    parsed = parse_page(page.text)
    assert len(parsed.scripts) == 1
    nonce = parsed.scripts[0].get("nonce")
    assert nonce
    assert ".submit()" in parsed.script_texts[0]
    assert csp_of(page)["script-src"] == [f"'nonce-{nonce}'"]


async def test_each_launch_page_has_its_own_nonce(gateway: httpx.AsyncClient) -> None:
    nonces = set()
    for _ in range(2):
        response = await open_launch_page(gateway)
        assert response.status_code == 200
        nonces.add(parse_page(response.text).scripts[0].get("nonce"))
    assert len(nonces) == 2


# -- its headers ----------------------------------------------------------------------------


def test_the_launch_page_is_never_cached(page: httpx.Response) -> None:
    directives = [d.strip() for d in page.headers["cache-control"].split(",")]
    assert "no-store" in directives


def test_the_launch_page_sends_no_referrer(page: httpx.Response) -> None:
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_content_security_policy_allows_nothing_by_default(page: httpx.Response) -> None:
    assert csp_of(page)["default-src"] == ["'none'"]


def test_the_content_security_policy_limits_form_action_to_the_login_url_origin(
    page: httpx.Response,
) -> None:
    assert csp_of(page)["form-action"] == [TALKME_URL]


def test_the_content_security_policy_forbids_framing(page: httpx.Response) -> None:
    assert csp_of(page)["frame-ancestors"] == ["'none'"]


def test_the_content_security_policy_allows_no_inline_script_without_the_nonce(
    page: httpx.Response,
) -> None:
    sources = csp_of(page)["script-src"]
    assert "'unsafe-inline'" not in sources
    assert all(re.fullmatch(r"'nonce-[A-Za-z0-9_\-+/=]{16,}'", s) for s in sources)


# -- single use and expiry ------------------------------------------------------------------


async def test_a_second_get_of_the_same_link_is_410(gateway: httpx.AsyncClient) -> None:
    path = launch_path(await launch_url(gateway))
    assert (await gateway.get(path)).status_code == 200
    assert (await gateway.get(path)).status_code == 410


async def test_of_two_simultaneous_gets_of_one_link_exactly_one_gets_the_page(
    gateway: httpx.AsyncClient,
) -> None:
    path = launch_path(await launch_url(gateway))
    first, second = await asyncio.gather(gateway.get(path), gateway.get(path))
    assert sorted([first.status_code, second.status_code]) == [200, 410]


async def test_the_410_page_holds_no_credential(gateway: httpx.AsyncClient) -> None:
    path = launch_path(await launch_url(gateway, password=SPECIAL_PASSWORD))
    assert (await gateway.get(path)).status_code == 200
    gone = await gateway.get(path)
    assert gone.status_code == 410
    served = [gone.text, *(f"{k}: {v}" for k, v in gone.headers.multi_items())]
    for secret in (*CREDENTIAL_SECRETS, SECRET_KEY):
        assert all(secret not in text for text in served), secret
    assert 'type="hidden"' not in gone.text


async def test_the_410_page_is_never_cached(gateway: httpx.AsyncClient) -> None:
    gone = await gateway.get("/talkme/launch/no-such-ticket")
    assert gone.status_code == 410
    assert "no-store" in [d.strip() for d in gone.headers["cache-control"].split(",")]


@pytest.mark.parametrize(
    "ticket",
    ["no-such-ticket", "x" * 200, "%00"],
    ids=["unknown", "overlong", "nul"],
)
async def test_an_unknown_ticket_is_410(gateway: httpx.AsyncClient, ticket: str) -> None:
    response = await gateway.get(f"/talkme/launch/{ticket}")
    assert response.status_code == 410
    assert response.headers["content-type"].startswith("text/html")


async def test_a_ticket_differing_by_one_character_is_410(gateway: httpx.AsyncClient) -> None:
    path = launch_path(await launch_url(gateway))
    forged = path[:-1] + ("A" if path[-1] != "A" else "B")
    assert (await gateway.get(forged)).status_code == 410
    assert (await gateway.get(path)).status_code == 200


async def test_an_expired_ticket_is_410(
    gateway: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tickets, "TICKET_TTL", timedelta(seconds=-1))
    path = launch_path(await launch_url(gateway))
    response = await gateway.get(path)
    assert response.status_code == 410
    assert AGENT_PASSWORD not in response.text


async def test_a_ticket_expiring_right_now_is_410(
    gateway: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tickets, "TICKET_TTL", timedelta(0))
    path = launch_path(await launch_url(gateway))
    assert (await gateway.get(path)).status_code == 410


# -- queue status ---------------------------------------------------------------------------


async def test_agent_login_alone_leaves_queue_status_unknown(gateway: httpx.AsyncClient) -> None:
    await launch_url(gateway)
    assert await queue_status(gateway) == {"status": "UNKNOWN", "changedAt": None}


@pytest.mark.parametrize(
    "password", [AGENT_PASSWORD, "a-wrong-password"], ids=["right-password", "wrong-password"]
)
async def test_serving_the_launch_page_confirms_nothing_so_queue_status_stays_unknown(
    gateway: httpx.AsyncClient, password: str
) -> None:
    # Talk.me answers the browser's login to the browser: talkgate cannot know the outcome.
    response = await open_launch_page(gateway, password=password)
    assert response.status_code == 200
    assert await queue_status(gateway) == {"status": "UNKNOWN", "changedAt": None}


async def test_serving_the_launch_page_publishes_no_agent_status_change(
    tmp_path: Path, sandbox: Starlette
) -> None:
    app = create_app(talkme_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        fanout: LocalFanout = manager._state["services"].broker.fanout
        async with fanout.subscription(AGENT_STATUS) as events:
            response = await open_launch_page(client, password="a-wrong-password")
            assert response.status_code == 200
            paused = await gql(
                client,
                "mutation($i: AgentAuthInput!) { pauseAgent(input: $i) { status } }",
                {"i": {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}}},
                key=ALL_KEY,
            )
            assert paused["data"]["pauseAgent"]["status"] == "PAUSED"
            first = await asyncio.wait_for(events.next(), 5)
    assert (first["login"], first["status"]) == (AGENT_LOGIN, "PAUSED")


async def test_a_gone_link_does_not_change_queue_status(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/talkme/launch/no-such-ticket")).status_code == 410
    assert await queue_status(gateway) == {"status": "UNKNOWN", "changedAt": None}


# -- replicas -------------------------------------------------------------------------------


@pytest.fixture
async def replicas(
    tmp_path: Path, sandbox: Starlette
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two gateways sharing one SQLite file and one SECRET_KEY, as two replicas would."""
    settings = talkme_settings(tmp_path)
    first = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    second = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(first) as one, serving(second) as other:
        yield one, other


async def test_a_link_made_on_one_replica_opens_on_another(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, other = replicas
    response = await other.get(launch_path(await launch_url(one)))
    assert response.status_code == 200
    assert parse_page(response.text).hidden_fields() == {
        "login": AGENT_LOGIN,
        "password": AGENT_PASSWORD,
        "token": TALKME_TOKEN,
        "externalLoginToken": TALKME_EXTERNAL_TOKEN,
    }


async def test_a_link_opened_on_one_replica_is_gone_on_the_other(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, other = replicas
    path = launch_path(await launch_url(one))
    assert (await other.get(path)).status_code == 200
    assert (await one.get(path)).status_code == 410


async def test_a_replica_with_another_secret_key_cannot_open_the_link(
    tmp_path: Path, sandbox: Starlette
) -> None:
    issuing = create_app(
        talkme_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox)
    )
    foreign = create_app(
        talkme_settings(tmp_path, secret_key=SecretStr("some-other-secret-key-77a1")),
        talkme_transport=httpx.ASGITransport(app=sandbox),
    )
    async with serving(issuing) as one, serving(foreign) as other:
        response = await other.get(launch_path(await launch_url(one)))
    assert response.status_code == 410
    assert AGENT_PASSWORD not in response.text
