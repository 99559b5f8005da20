"""POST /webhooks/talks: authentication, acceptance, rejections and dead letters."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from gateway.http.app import create_app
from gateway.signatures import sign
from gateway.storage import TalkStore
from gateway.storage.records import TalkQuery
from gateway.storage.sqlite import SQLiteStore
from tests.factories import talk
from tests.support import PUSH_KEY, READ_KEY, WEBHOOK_SECRET, make_settings, push, signed_headers

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
URL = "/webhooks/talks"


async def stored_talks(store: TalkStore) -> int:
    return (await store.count_talks(query=TalkQuery()))[None]


@pytest.fixture
async def signed_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose webhook secret is a Standard Webhooks `whsec_` secret."""
    app = create_app(make_settings(tmp_path, webhook_secret=SecretStr(WHSEC)))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


# -- authentication -------------------------------------------------------------------------


async def test_a_talk_with_the_token_header_is_accepted(client: httpx.AsyncClient) -> None:
    response = await push(client, talk(114603))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "ids": [114603], "duplicate": False}


async def test_the_token_may_come_as_a_query_parameter(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    response = await client.post(f"{URL}?token={WEBHOOK_SECRET}", json=talk(1))
    assert response.status_code == 202
    assert await stored_talks(store) == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Webhook-Token": "wrong"}, {"X-Webhook-Token": WEBHOOK_SECRET[:-1]}],
    ids=["missing", "wrong", "prefix"],
)
async def test_a_missing_or_wrong_token_is_401_and_stores_nothing(
    client: httpx.AsyncClient, store: TalkStore, headers: dict[str, str]
) -> None:
    response = await client.post(URL, json=talk(1), headers=headers)
    assert response.status_code == 401
    assert await stored_talks(store) == 0
    assert await store.dead_letters() == []


async def test_an_unauthenticated_bad_body_is_not_dead_lettered(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    response = await client.post(URL, content=b"not json", headers={"X-Webhook-Token": "no"})
    assert response.status_code == 401
    assert await store.dead_letters() == []


async def test_an_api_key_with_webhooks_write_may_post(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=talk(2), headers={"Authorization": f"Bearer {PUSH_KEY}"})
    assert response.status_code == 202


async def test_an_api_key_without_webhooks_write_is_forbidden_403_and_stores_nothing(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    """The key is known (not 401): it lacks the scope, and the answer says which."""
    response = await client.post(URL, json=talk(2), headers={"Authorization": f"Bearer {READ_KEY}"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "the API key lacks the webhooks:write scope",
        "code": "FORBIDDEN",
    }
    assert await stored_talks(store) == 0
    assert await store.dead_letters() == []


async def test_the_webhook_is_closed_when_no_secret_is_configured(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, webhook_secret=None))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.post(URL, json=talk(1), headers={"X-Webhook-Token": ""})
    assert response.status_code == 401


async def test_the_query_token_never_reaches_the_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post(f"{URL}?token={WEBHOOK_SECRET}", json=talk(1))
    await client.post(f"{URL}?token={WEBHOOK_SECRET}", content=b"{oops")
    # The test's own httpx client logs its URL; what matters is what talkgate writes.
    server_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert server_records, "the requests should have been logged"
    for record in server_records:
        assert WEBHOOK_SECRET not in record.getMessage()
        assert WEBHOOK_SECRET not in str(record.__dict__)


# -- Standard Webhooks signatures -----------------------------------------------------------


async def test_a_signed_delivery_is_accepted(signed_client: httpx.AsyncClient) -> None:
    body = orjson.dumps(talk(5))
    response = await signed_client.post(URL, content=body, headers=signed_headers(WHSEC, body))
    assert response.status_code == 202


async def test_any_of_several_signatures_may_match_for_key_rotation(
    signed_client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(talk(5))
    headers = signed_headers(WHSEC, body)
    old = sign(b"an old secret", "msg_1", int(headers["webhook-timestamp"]), body)
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    response = await signed_client.post(URL, content=body, headers=headers)
    assert response.status_code == 202


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_signature_older_or_newer_than_300_seconds_is_401(
    signed_client: httpx.AsyncClient, skew: int
) -> None:
    body = orjson.dumps(talk(5))
    headers = signed_headers(WHSEC, body, at=int(time.time()) + skew)
    response = await signed_client.post(URL, content=body, headers=headers)
    assert response.status_code == 401


async def test_a_signature_over_another_body_is_401(signed_client: httpx.AsyncClient) -> None:
    headers = signed_headers(WHSEC, orjson.dumps(talk(5)))
    response = await signed_client.post(URL, content=orjson.dumps(talk(6)), headers=headers)
    assert response.status_code == 401


async def test_the_webhook_id_is_the_idempotency_key(
    signed_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    first = orjson.dumps(talk(5))
    again = orjson.dumps(talk(5, score=9))  # another body, same delivery id: a redelivery
    assert (
        await signed_client.post(URL, content=first, headers=signed_headers(WHSEC, first))
    ).json()["duplicate"] is False
    response = await signed_client.post(URL, content=again, headers=signed_headers(WHSEC, again))
    assert response.status_code == 202
    assert response.json()["duplicate"] is True


# -- bodies ---------------------------------------------------------------------------------


async def test_an_array_of_talks_is_accepted_in_order(client: httpx.AsyncClient) -> None:
    response = await push(client, [talk(3), talk(1), talk(2)])
    assert response.status_code == 202
    assert response.json()["accepted"] == 3
    assert response.json()["ids"] == [3, 1, 2]


async def test_redelivering_the_same_body_changes_nothing(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    await push(client, talk(7))
    before = await store.talks_by_id([7])
    response = await push(client, talk(7))
    assert response.json()["duplicate"] is True
    assert await store.talks_by_id([7]) == before
    assert len(await store.raw_deliveries(talk_id=7)) == 1


async def test_a_body_that_is_not_json_is_400_and_dead_lettered(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    response = await client.post(
        URL, content=b'{"id": 1,', headers={"X-Webhook-Token": WEBHOOK_SECRET}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "the body is not JSON"
    [letter] = await store.dead_letters()
    assert letter.body == b'{"id": 1,'
    assert letter.reason == "the body is not JSON"
    assert response.json()["deadLetterId"] == letter.id


async def test_a_talk_without_an_integer_id_is_422_with_the_field_named(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    payload = talk(1)
    payload["id"] = "not-a-number"
    del payload["created_at"]
    response = await push(client, payload)
    assert response.status_code == 422
    fields = {e["loc"] for e in response.json()["errors"]}
    assert fields == {"id", "created_at"}
    assert "not-a-number" not in response.text  # reasons never echo the input
    [letter] = await store.dead_letters()
    assert letter.errors == response.json()["errors"]
    assert await stored_talks(store) == 0


async def test_one_bad_talk_rejects_the_whole_array_and_keeps_it(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    bad = talk(2)
    bad["talk_histories"][1]["id"] = None
    response = await push(client, [talk(1), bad])
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"].startswith("1.talk_histories.1.id")
    assert await stored_talks(store) == 0
    [letter] = await store.dead_letters()
    assert orjson.loads(letter.body) == [talk(1), bad]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[]", 422),
        (b'"a talk"', 422),
        (b"42", 422),
        (b"null", 422),
        (b"", 400),
        (b"\xff\xfe", 400),
    ],
    ids=["empty-array", "string", "number", "null", "empty", "not-utf8"],
)
async def test_bodies_that_are_not_talks_are_rejected_and_kept(
    client: httpx.AsyncClient, store: TalkStore, body: bytes, status: int
) -> None:
    response = await client.post(URL, content=body, headers={"X-Webhook-Token": WEBHOOK_SECRET})
    assert response.status_code == status
    [letter] = await store.dead_letters()
    assert letter.body == body


async def test_a_body_over_5_mib_is_413_and_a_sample_is_kept(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    payload = talk(1, url_viewer="x" * (5 * 1024 * 1024))
    response = await push(client, payload)
    assert response.status_code == 413
    [letter] = await store.dead_letters()
    assert letter.truncated
    assert letter.body_size > 5 * 1024 * 1024
    assert len(letter.body) <= 64 * 1024
    assert await stored_talks(store) == 0


async def test_a_chunked_body_over_the_limit_is_413(
    client: httpx.AsyncClient, store: TalkStore
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    response = await client.post(URL, content=chunks(), headers={"X-Webhook-Token": WEBHOOK_SECRET})
    assert response.status_code == 413
    assert (await store.dead_letters())[0].truncated


async def test_an_oversized_signed_body_is_413_and_not_stored(
    signed_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = b" " * (5 * 1024 * 1024 + 1)
    response = await signed_client.post(URL, content=body, headers=signed_headers(WHSEC, body))
    assert response.status_code == 413
    reader = SQLiteStore(f"sqlite:///{tmp_path / 'talkgate.db'}")
    await reader.open()
    try:
        assert await reader.dead_letters() == []
    finally:
        await reader.close()


async def test_only_post_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 405


TOKEN = {"X-Webhook-Token": WEBHOOK_SECRET, "Content-Type": "application/json"}
REFUSALS = {
    "not JSON": (b"{not json", TOKEN, 400, "BAD_USER_INPUT"),
    "no credentials": (orjson.dumps(talk(1)), {"Content-Type": "application/json"}, 401,
                       "UNAUTHENTICATED"),
    "a key without the scope": (
        orjson.dumps(talk(1)),
        {"Authorization": f"Bearer {READ_KEY}", "Content-Type": "application/json"},
        403,
        "FORBIDDEN",
    ),
    "too large": (b"[" + b"1," * 40_000 + b"1]", TOKEN, 413, "BAD_USER_INPUT"),
    "not a talk": (b'{"id": "x"}', TOKEN, 422, "BAD_USER_INPUT"),
    "not UTF-8": (b'{"id": "\xff"}', TOKEN, 400, "BAD_USER_INPUT"),
}  # fmt: skip


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_every_refusal_is_json_with_a_code(tmp_path: Path, refusal: str) -> None:
    body, headers, status, code = REFUSALS[refusal]
    app = create_app(make_settings(tmp_path, webhook_max_bytes=64 * 1024))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.post(URL, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["code"] == code
    assert answer["error"]
