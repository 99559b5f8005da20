"""Admin fields (`deadLetters`, `Talk.rawPayloads`), and the scope every root field needs.

For each of the six scopes, a key holding the five others is refused exactly the fields that
scope guards (null, FORBIDDEN at their path) and gets everything else, as the full key does.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from gateway.auth import key_digest
from gateway.http.app import create_app
from gateway.settings import SCOPES, ApiKeyEntry
from gateway.talkme import SandboxState
from tests.factories import snapshot
from tests.resolvers.helpers import codes, error_at, errors_of, talk_of
from tests.support import (
    AGENT_LOGIN,
    AGENT_PASSWORD,
    ALL_KEY,
    KEYS,
    READ_KEY,
    WEBHOOK_SECRET,
    gql,
    make_settings,
    push,
    serving,
    talkme_settings,
)

DEAD_LETTERS = """
{ deadLetters { edges { node {
  id receivedAt source reason errors { loc msg } body bodySize truncated
} } } }
"""
RAW = "query ($id: ID!) { talk(id: $id) { id: databaseId rawPayloads } }"


def letters_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The dead letters of a deadLetters answer, in its order."""
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["deadLetters"]["edges"]]


async def deliver(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(
        "/webhooks/talks",
        content=body,
        headers={"X-Webhook-Token": WEBHOOK_SECRET, "Content-Type": "application/json"},
    )


# -- dead letters ---------------------------------------------------------------------------


async def test_dead_letters_hold_each_refused_body_with_its_reason_most_recent_first(
    client: httpx.AsyncClient,
) -> None:
    not_json = b'{"id": 1, oops'
    not_a_talk = orjson.dumps({"id": "abc", "tracking_number": "TN1"})
    assert (await deliver(client, not_json)).status_code == 400
    assert (await deliver(client, not_a_talk)).status_code == 422
    body = await gql(client, DEAD_LETTERS, key=ALL_KEY)
    assert "errors" not in body, body
    latest, first = letters_of(body)
    assert (latest["body"], first["body"]) == (not_a_talk.decode(), not_json.decode())
    assert first["reason"] == "the body is not JSON"
    assert latest["reason"] == "the body is not a valid talk"
    assert int(latest["id"]) > int(first["id"])
    assert latest["source"] == first["source"] == "webhook"
    assert (latest["bodySize"], latest["truncated"]) == (len(not_a_talk), False)
    assert latest["receivedAt"].endswith("Z")


async def test_a_dead_letter_names_every_invalid_field(client: httpx.AsyncClient) -> None:
    payload = talk_of(7)
    payload["id"] = "seven"
    del payload["tracking_number"]
    assert (await push(client, payload)).status_code == 422
    body = await gql(client, DEAD_LETTERS, key=ALL_KEY)
    [letter] = letters_of(body)
    locations = {error["loc"] for error in letter["errors"]}
    assert {"id", "tracking_number"} <= locations
    assert all(error["msg"] for error in letter["errors"])


async def test_a_dead_letter_of_an_oversized_body_keeps_its_start_and_full_size(
    tmp_path: Path,
) -> None:
    sent = b"[" + b"1," * 3000 + b"1]"
    async with serving(create_app(make_settings(tmp_path, webhook_max_bytes=1000))) as client:
        assert (await deliver(client, sent)).status_code == 413
        body = await gql(client, DEAD_LETTERS, key=ALL_KEY)
    [letter] = letters_of(body)
    assert letter["truncated"] is True
    assert letter["bodySize"] == len(sent)
    assert sent.decode().startswith(letter["body"])
    assert 1000 <= len(letter["body"]) < len(sent)


async def test_a_dead_letter_shows_invalid_utf8_as_replacement_characters(
    client: httpx.AsyncClient,
) -> None:
    sent = b'{"id": "\xff\xfe"}'
    assert (await deliver(client, sent)).status_code == 400
    body = await gql(client, DEAD_LETTERS, key=ALL_KEY)
    [letter] = letters_of(body)
    assert letter["body"] == '{"id": "\ufffd\ufffd"}'
    assert letter["bodySize"] == len(sent)


async def test_dead_letters_first_limits_how_many_come_back(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await deliver(client, b"not json %d" % n)
    body = await gql(client, "{ deadLetters(first: 2) { edges { node { body } } } }", key=ALL_KEY)
    assert [letter["body"] for letter in letters_of(body)] == ["not json 2", "not json 1"]


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_dead_letters_first_outside_1_to_100_is_bad_user_input(
    client: httpx.AsyncClient, first: int
) -> None:
    body = await gql(client, f"{{ deadLetters(first: {first}) {{ totalCount }} }}", key=ALL_KEY)
    assert body["data"] == {"deadLetters": None}
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_without_admin_dead_letters_are_forbidden_and_the_rest_comes_back(
    client: httpx.AsyncClient,
) -> None:
    await deliver(client, b"secret-looking refused body")
    body = await gql(client, "{ talks { totalCount } deadLetters { totalCount } }", key=READ_KEY)
    assert body["data"] == {"talks": {"totalCount": 0}, "deadLetters": None}
    assert error_at(body, "deadLetters")["extensions"]["code"] == "FORBIDDEN"
    assert "secret-looking" not in str(body)


# -- raw payloads ---------------------------------------------------------------------------


async def test_raw_payloads_are_the_accepted_deliveries_of_a_talk_in_arrival_order(
    client: httpx.AsyncClient,
) -> None:
    later = orjson.dumps(snapshot(7, [1, 2], finished=True))
    earlier = orjson.dumps(snapshot(7, [1]))
    unrelated = orjson.dumps(snapshot(8, [5]))
    for sent in (later, unrelated, earlier):  # out of order, as PipeRun may deliver
        assert (await deliver(client, sent)).status_code == 202
    body = await gql(client, RAW, {"id": "7"}, key=ALL_KEY)
    assert body == {
        "data": {"talk": {"id": "7", "rawPayloads": [later.decode(), earlier.decode()]}}
    }


async def test_a_delivery_of_several_talks_is_a_raw_payload_of_each(
    client: httpx.AsyncClient,
) -> None:
    both = orjson.dumps([talk_of(7), talk_of(8)])
    assert (await deliver(client, both)).status_code == 202
    for talk_id in ("7", "8"):
        body = await gql(client, RAW, {"id": talk_id}, key=ALL_KEY)
        assert body["data"]["talk"]["rawPayloads"] == [both.decode()]


async def test_a_redelivered_body_is_kept_once(client: httpx.AsyncClient) -> None:
    payload = orjson.dumps(talk_of(7))
    for _ in range(3):
        assert (await deliver(client, payload)).status_code == 202
    body = await gql(client, RAW, {"id": "7"}, key=ALL_KEY)
    assert body["data"]["talk"]["rawPayloads"] == [payload.decode()]


async def test_a_refused_body_is_no_raw_payload(client: httpx.AsyncClient) -> None:
    assert (await push(client, talk_of(7))).status_code == 202
    assert (await push(client, {**talk_of(7), "created_at": {"not": "a date"}})).status_code == 422
    body = await gql(client, RAW, {"id": "7"}, key=ALL_KEY)
    assert len(body["data"]["talk"]["rawPayloads"]) == 1


async def test_without_admin_raw_payloads_are_forbidden_and_the_talk_comes_back(
    client: httpx.AsyncClient,
) -> None:
    assert (await push(client, talk_of(7))).status_code == 202
    body = await gql(
        client, 'query { talk(id: "7") { id: databaseId trackingNumber rawPayloads } }'
    )
    assert body["data"] == {"talk": {"id": "7", "trackingNumber": "TN7", "rawPayloads": None}}
    error = error_at(body, "talk", "rawPayloads")
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "admin" in error["message"]


async def test_without_admin_raw_payloads_are_forbidden_on_every_talk_of_a_list(
    client: httpx.AsyncClient,
) -> None:
    assert (await push(client, [talk_of(7), talk_of(8)])).status_code == 202
    body = await gql(client, "{ talks { edges { node { id: databaseId rawPayloads } } } }")
    nodes = [edge["node"] for edge in body["data"]["talks"]["edges"]]
    assert sorted(n["id"] for n in nodes) == ["7", "8"]
    assert all(n["rawPayloads"] is None for n in nodes)
    assert sorted(e["path"][2] for e in errors_of(body)) == [0, 1]
    assert set(codes(body)) == {"FORBIDDEN"}


# -- every scope on every field -------------------------------------------------------------


def all_but(scope: str) -> str:
    return f"tgk_all_but_{scope.replace(':', '_')}"


SCOPED_KEYS = (
    *(
        ApiKeyEntry(name=name, sha256=key_digest(key), scopes=frozenset(scopes))
        for key, (name, scopes) in KEYS.items()
    ),
    *(
        ApiKeyEntry(
            name=f"all-but-{scope}", sha256=key_digest(all_but(scope)), scopes=SCOPES - {scope}
        )
        for scope in SCOPES
    ),
)

EVERYTHING = """
query Everything {
  talk(id: "7") {
    id: databaseId trackingNumber clientIp clientUserAgent latitude longitude
    recording { url }
    rawPayloads
    customer {
      id: databaseId name documentNumber telephones { fullNumber } emails { email }
      customFields { name }
    }
  }
  talks { totalCount }
  customer(id: "144527") { id: databaseId name }
  customers { totalCount }
  agent(id: "2") { id: databaseId }
  agents { totalCount }
  recording(protocol: "P-1") { url }
  deadLetters { edges { node { reason } } }
}"""
CONTROL = """
mutation Control($credentials: AgentCredentialsInput!, $auth: AgentAuthInput!) {
  agentLogin(input: $credentials) { expiresAt }
  pauseAgent(input: $auth) { status }
  resumeAgent(input: $auth) { status }
  agentLogout(input: $auth) { status }
}"""
CONTROL_VARIABLES = {
    "credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD},
    "auth": {"credentials": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}},
}

Path_ = tuple[str, ...]
GUARDED: dict[str, list[Path_]] = {
    "talks:read": [("talk",), ("talks",), ("customer",), ("customers",), ("agent",), ("agents",)],
    "customers:pii": [
        ("talk", "clientIp"),
        ("talk", "clientUserAgent"),
        ("talk", "latitude"),
        ("talk", "longitude"),
        ("talk", "customer", "documentNumber"),
        ("talk", "customer", "telephones"),
        ("talk", "customer", "emails"),
        ("talk", "customer", "customFields"),
        ("talk", "rawPayloads"),  # admin and customers:pii: the raw bodies hold every PII field
    ],
    "recordings:read": [("talk", "recording"), ("recording",)],
    "admin": [("talk", "rawPayloads"), ("deadLetters",)],
    "agents:control": [("agentLogin",), ("pauseAgent",), ("resumeAgent",), ("agentLogout",)],
    "webhooks:write": [],
}


def nulled(data: dict[str, Any], paths: list[Path_]) -> dict[str, Any]:
    """`data` with the value at each path replaced by null."""
    result = copy.deepcopy(data)
    for path in paths:
        holder: Any = result
        for name in path[:-1]:
            holder = holder[name]
        holder[path[-1]] = None
    return result


@pytest.fixture
async def gateway(tmp_path: Path, sandbox: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway knowing every test key and one key per scope missing just that scope."""
    settings = talkme_settings(tmp_path, api_keys=SCOPED_KEYS)
    app = create_app(settings, talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as client:
        payload = talk_of(
            7,
            client_ip="200.100.50.25",
            client_user_agent="Mozilla/5.0",
            latitude="-30.03",
            longitude="-51.21",
        )
        payload["customer"]["document_number"] = "123.456.789-09"
        assert (await push(client, payload)).status_code == 202
        assert (await deliver(client, b"not json")).status_code == 400
        yield client


async def test_a_key_with_every_scope_gets_every_field(gateway: httpx.AsyncClient) -> None:
    body = await gql(gateway, EVERYTHING, key=ALL_KEY)
    assert "errors" not in body, body
    data = body["data"]
    assert data["talk"]["customer"]["documentNumber"] == "123.456.789-09"
    assert data["talk"]["recording"]["url"]
    assert len(data["talk"]["rawPayloads"]) == 1
    assert data["deadLetters"] == {"edges": [{"node": {"reason": "the body is not JSON"}}]}


@pytest.mark.parametrize("scope", sorted(SCOPES))
async def test_a_key_lacking_one_scope_is_refused_exactly_the_fields_it_guards(
    gateway: httpx.AsyncClient, scope: str
) -> None:
    full = (await gql(gateway, EVERYTHING, key=ALL_KEY))["data"]
    body = await gql(gateway, EVERYTHING, key=all_but(scope))
    guarded = [
        p
        for p in GUARDED[scope]
        if p[0] not in ("agentLogin", "pauseAgent", "resumeAgent", "agentLogout")
    ]
    assert sorted(tuple(e["path"]) for e in errors_of(body)) == sorted(guarded)
    assert set(codes(body)) <= {"FORBIDDEN"}
    for error in errors_of(body):
        assert scope in error["message"]
        assert error["extensions"]["scope"] == scope
    assert body["data"] == nulled(full, guarded)


@pytest.mark.parametrize("scope", sorted(SCOPES))
async def test_a_key_lacking_one_scope_may_drive_agents_only_if_it_is_not_agents_control(
    gateway: httpx.AsyncClient, sandbox: Starlette, scope: str
) -> None:
    state: SandboxState = sandbox.state.sandbox
    body = await gql(gateway, CONTROL, CONTROL_VARIABLES, key=all_but(scope))
    if scope == "agents:control":
        assert body["data"] == dict.fromkeys(
            ("agentLogin", "pauseAgent", "resumeAgent", "agentLogout")
        )
        assert [tuple(e["path"]) for e in errors_of(body)] == GUARDED[scope]
        assert set(codes(body)) == {"FORBIDDEN"}
        assert state.calls == []
    else:
        assert "errors" not in body, body
        assert body["data"]["agentLogout"] == {"status": "LOGGED_OUT"}
        assert len(state.calls) == 3


@pytest.mark.parametrize("scope", sorted(SCOPES))
async def test_a_key_lacking_one_scope_may_push_talks_only_if_it_is_not_webhooks_write(
    gateway: httpx.AsyncClient, scope: str
) -> None:
    response = await gateway.post(
        "/webhooks/talks", json=talk_of(9), headers={"Authorization": f"Bearer {all_but(scope)}"}
    )
    assert response.status_code == (403 if scope == "webhooks:write" else 202)
    stored = await gql(gateway, '{ talk(id: "9") { id: databaseId } }', key=ALL_KEY)
    assert stored["data"]["talk"] == (None if scope == "webhooks:write" else {"id": "9"})
