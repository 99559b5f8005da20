"""The response cache: store-only queries answered from memory (and Redis) until the store
moves on, never across scopes, never with errors; ETag and 304 on GET."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from gateway.graphql.response_cache import Cacheability, ResponseCache, cache_key, matches
from gateway.http.app import create_app
from gateway.ingest.ingestor import Body, Ingestor
from gateway.settings import Settings
from gateway.storage import TalkStore
from tests.backends import REDIS_URL
from tests.factories import talk
from tests.support import ALL_KEY, READ_KEY, WEBHOOK_SECRET, make_settings, push, serving, value

CACHE = "talkgate_response_cache_total"
NAMES = "{ talks(first: 10) { edges { node { id: databaseId customer { name } } } } }"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    key: str = READ_KEY,
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    response = await client.post("/graphql", json=payload, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response


def customer_names(response: httpx.Response) -> list[str]:
    edges = response.json()["data"]["talks"]["edges"]
    return [e["node"]["customer"]["name"] for e in edges]


def renamed(talk_id: int, name: str) -> dict[str, Any]:
    payload = talk(talk_id)
    payload["customer"] = {**payload["customer"], "name": name}
    # A later snapshot: the merge keeps the most advanced one.
    payload["updated_at"] = "2030-01-01 00:00:00"
    return payload


async def test_a_repeated_query_is_answered_from_the_cache(client: httpx.AsyncClient) -> None:
    assert (await push(client, talk(1))).status_code == 202
    first = await post(client, NAMES)
    second = await post(client, NAMES)
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert await value(client, CACHE, outcome="miss") == 1
    assert await value(client, CACHE, outcome="hit") == 1


async def test_a_delivery_that_changes_a_talk_is_seen_by_the_next_query(
    client: httpx.AsyncClient,
) -> None:
    assert (await push(client, renamed(1, "Before"))).status_code == 202
    assert customer_names(await post(client, NAMES)) == ["Before"]
    assert (await push(client, renamed(1, "After"))).status_code == 202
    assert customer_names(await post(client, NAMES)) == ["After"]
    assert await value(client, CACHE, outcome="hit") == 0


async def test_a_write_by_another_process_on_the_same_store_is_seen(
    client: httpx.AsyncClient, store: TalkStore, settings: Settings
) -> None:
    # `store` is an independent connection to the same database, as `talkgate ingest` is.
    assert (await push(client, renamed(1, "Before"))).status_code == 202
    assert customer_names(await post(client, NAMES)) == ["Before"]
    elsewhere = Ingestor(store, settings.zone)
    await elsewhere.ingest(Body(orjson.dumps(renamed(1, "Elsewhere")), "cli"))
    assert customer_names(await post(client, NAMES)) == ["Elsewhere"]


async def test_a_redelivery_leaves_the_cached_answer_valid(client: httpx.AsyncClient) -> None:
    payload = talk(1)
    assert (await push(client, payload)).status_code == 202
    await post(client, NAMES)
    assert (await push(client, payload)).json()["duplicate"] is True
    await post(client, NAMES)
    assert await value(client, CACHE, outcome="hit") == 1


async def test_callers_with_different_scopes_never_share_an_answer(
    client: httpx.AsyncClient,
) -> None:
    assert (await push(client, talk(1))).status_code == 202
    document = "{ talks(first: 1) { edges { node { customer { documentNumber } } } } }"
    with_pii = (await post(client, document, key=ALL_KEY)).json()
    assert "errors" not in with_pii
    without = (await post(client, document, key=READ_KEY)).json()
    assert without["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert without["data"]["talks"]["edges"][0]["node"]["customer"]["documentNumber"] is None


async def test_variables_are_part_of_the_key(client: httpx.AsyncClient) -> None:
    for talk_id in (1, 2):
        assert (await push(client, talk(talk_id))).status_code == 202
    document = "query($id: ID!) { talk(id: $id) { trackingNumber } }"
    numbers = [
        (await post(client, document, {"id": str(i)})).json()["data"]["talk"]["trackingNumber"]
        for i in (1, 2, 1)
    ]
    assert numbers == ["TN1", "TN2", "TN1"]
    assert await value(client, CACHE, outcome="hit") == 1


async def test_answers_with_errors_are_computed_every_time(client: httpx.AsyncClient) -> None:
    document = '{ talk(id: "1", trackingNumber: "x") { id: databaseId } }'  # both: BAD_USER_INPUT
    for _ in range(2):
        body = (await post(client, document)).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await value(client, CACHE, outcome="miss") == 2
    assert await value(client, CACHE, outcome="hit") == 0


async def test_what_does_not_come_from_talks_is_never_cached(client: httpx.AsyncClient) -> None:
    # Dead letters are written without a talk changing: a cached list would go stale.
    letters = "{ deadLetters(first: 10) { totalCount } }"
    bad = await client.post(
        "/webhooks/talks", content=b"not json", headers={"X-Webhook-Token": WEBHOOK_SECRET}
    )
    assert bad.status_code == 400
    assert (await post(client, letters, key=ALL_KEY)).json()["data"]["deadLetters"] == {
        "totalCount": 1
    }
    await client.post("/webhooks/talks", content=b"[1", headers={"X-Webhook-Token": WEBHOOK_SECRET})
    assert (await post(client, letters, key=ALL_KEY)).json()["data"]["deadLetters"] == {
        "totalCount": 2
    }
    assert await value(client, CACHE, outcome="uncacheable") == 2


def test_documents_reaching_talkme_agent_statuses_or_admin_fields_are_not_store_only() -> None:
    from gateway.graphql.schema_assembly import build_schema

    cacheable = Cacheability(build_schema()._schema)
    assert cacheable("{ talks { totalCount } }").store_only
    assert cacheable("query Names { talks { totalCount } }").operation_name == "Names"
    for document in (
        '{ recording(protocol: "p") { url } }',
        "{ talks { edges { node { ...R } } } } fragment R on Talk { recording { url } }",
        "{ agents { edges { node { queueStatus { status } } } } }",
        '{ talk(id: "1") { rawPayloads } }',
        "{ deadLetters { totalCount } }",
        'mutation { agentLogout(login: "1") { status } }',
        "subscription { talkUpdated { id: databaseId } }",
        '{ talks { totalCount } } mutation M { agentLogout(login: "1") { status } }',
        "{ not parsable",
    ):
        assert not cacheable(document).store_only, document


async def test_a_get_query_carries_an_etag_and_gets_304_while_it_matches(
    client: httpx.AsyncClient,
) -> None:
    assert (await push(client, renamed(1, "Before"))).status_code == 202
    params = {"query": NAMES}
    first = await client.get("/graphql", params=params, headers=bearer(READ_KEY))
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    assert first.headers["vary"] == "Authorization, Accept"
    again = await client.get(
        "/graphql", params=params, headers={**bearer(READ_KEY), "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert (await push(client, renamed(1, "After"))).status_code == 202
    changed = await client.get(
        "/graphql", params=params, headers={**bearer(READ_KEY), "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert customer_names(changed) == ["After"]


async def test_a_304_is_given_when_a_recomputed_answer_is_the_same(
    client: httpx.AsyncClient,
) -> None:
    assert (await push(client, talk(1))).status_code == 202
    params = {"query": '{ talk(id: "1") { id: databaseId } }'}
    etag = (await client.get("/graphql", params=params, headers=bearer(READ_KEY))).headers["etag"]
    # Another talk arrives: the store moves on, this answer does not change.
    assert (await push(client, talk(2))).status_code == 202
    again = await client.get(
        "/graphql", params=params, headers={**bearer(READ_KEY), "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert await value(client, CACHE, outcome="miss") == 2


async def test_post_answers_carry_no_validators(client: httpx.AsyncClient) -> None:
    response = await post(client, NAMES)
    assert "etag" not in response.headers


async def test_the_cache_can_be_turned_off(tmp_path: Path) -> None:
    async with serving(create_app(make_settings(tmp_path, response_cache_mb=0))) as client:
        await post(client, NAMES)
        await post(client, NAMES)
        assert await value(client, CACHE, outcome="miss") == 0
        assert await value(client, CACHE, outcome="hit") == 0


async def test_replicas_share_answers_through_redis_until_the_store_moves_on(
    tmp_path: Path,
    redis_prefix: str,
) -> None:
    # Two replicas on one store (a SQLite file both open) and one Redis.
    settings = make_settings(tmp_path, redis_url=SecretStr(REDIS_URL))
    async with serving(create_app(settings)) as a, serving(create_app(settings)) as b:
        assert (await push(a, renamed(1, "Before"))).status_code == 202
        assert customer_names(await post(a, NAMES)) == ["Before"]
        assert customer_names(await post(b, NAMES)) == ["Before"]
        assert await value(b, CACHE, outcome="shared_hit") == 1
        assert (await push(a, renamed(1, "After"))).status_code == 202
        assert customer_names(await post(b, NAMES)) == ["After"]
        assert await value(b, CACHE, outcome="miss") == 1


async def test_unreachable_redis_leaves_each_replica_its_own_cache(
    tmp_path: Path, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path, redis_url=SecretStr(f"redis://127.0.0.1:{unused_tcp_port}/0")
    )
    with caplog.at_level(logging.WARNING, logger="talkgate.cache"):
        async with serving(create_app(settings)) as client:
            first = await post(client, NAMES)
            second = await post(client, NAMES)
            assert second.content == first.content
            assert await value(client, CACHE, outcome="hit") == 1
    said = [r for r in caplog.records if "shared response cache unreachable" in r.message]
    assert len(said) == 1


# -- the cache itself -----------------------------------------------------------------------


async def test_the_oldest_answers_go_first_when_the_bytes_run_out() -> None:
    cache = ResponseCache(max_bytes=800)
    assert await cache.get("a", "g1") is None
    for key in ("a", "b", "c"):
        await cache.put(key, "g1", b"x" * 100)
    await cache.get("a", "g1")  # used: now the most recent
    for key in ("d", "e", "f", "g", "h", "i"):  # nine of 100 bytes: one must go
        await cache.put(key, "g1", b"x" * 100)
    assert cache.size <= 800
    assert await cache.get("a", "g1") is not None
    assert await cache.get("b", "g1") is None


async def test_an_answer_computed_before_a_write_is_not_kept_after_it() -> None:
    cache = ResponseCache(max_bytes=10_000)
    assert await cache.get("slow", "g1") is None  # a request reads the store at g1...
    assert await cache.get("fast", "g2") is None  # ...a write; another request sees g2
    await cache.put("slow", "g1", b"old")
    assert await cache.get("slow", "g2") is None
    assert await cache.get("slow", "g1") is None  # and g1 is gone for good here


async def test_one_answer_may_not_take_more_than_an_eighth_of_the_cache() -> None:
    cache = ResponseCache(max_bytes=800)
    await cache.get("big", "g1")
    response = await cache.put("big", "g1", b"x" * 101)
    assert response.body == b"x" * 101
    assert cache.size == 0


def test_if_none_match_takes_lists_weak_tags_and_the_star() -> None:
    assert matches('"a"', '"a"')
    assert matches('"b", W/"a"', '"a"')
    assert matches("*", '"a"')
    assert not matches('"b"', '"a"')
    assert not matches(None, '"a"')


def test_the_key_depends_on_scopes_variables_and_the_schema() -> None:
    base: dict[str, Any] = {
        "schema_id": "s1",
        "document": "{ a }",
        "operation_name": None,
        "variables": {"x": 1, "y": 2},
        "scopes": frozenset({"talks:read"}),
    }
    key = cache_key(**base)
    assert cache_key(**{**base, "variables": {"y": 2, "x": 1}}) == key
    for change in (
        {"schema_id": "s2"},
        {"variables": {"x": 2, "y": 2}},
        {"scopes": frozenset({"talks:read", "customers:pii"})},
        {"operation_name": "A"},
    ):
        assert cache_key(**{**base, **change}) != key


# -- the store's generation -----------------------------------------------------------------


async def test_the_generation_moves_with_each_change_and_not_with_a_redelivery(
    store: TalkStore, settings: Settings
) -> None:
    ingestor = Ingestor(store, settings.zone)
    start = await store.generation()
    body = Body(orjson.dumps(talk(1)), "test")
    await ingestor.ingest(body)
    after_one = await store.generation()
    assert after_one != start
    await ingestor.ingest(body)
    assert await store.generation() == after_one


async def test_two_databases_never_share_a_generation(tmp_path: Path) -> None:
    from gateway.storage import open_store

    generations = []
    for name in ("one", "two"):
        opened = open_store(f"sqlite:///{tmp_path / name}.db")
        await opened.open()
        generations.append(await opened.generation())
        await opened.close()
    assert generations[0] != generations[1]


# -- bodies sent again byte for byte (cached_answers.BodyKeys) ---------------------------------


async def test_the_same_bytes_from_callers_of_other_scopes_get_their_own_answers(
    client: httpx.AsyncClient,
) -> None:
    """A body seen before skips its decoding, never the caller's scopes: the exact same bytes
    sent in turn by a key with PII access and one without each get their own answer."""
    assert (await push(client, talk(1))).status_code == 202
    body = orjson.dumps(
        {"query": "{ talks(first: 1) { edges { node { customer { documentNumber } } } } }"}
    )
    answers = []
    for key in (ALL_KEY, READ_KEY, ALL_KEY, READ_KEY, ALL_KEY):
        response = await client.post(
            "/graphql",
            content=body,
            headers={**bearer(key), "Content-Type": "application/json"},
        )
        answers.append(response.json())
    with_pii, without = answers[0], answers[1]
    assert "errors" not in with_pii
    assert without["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert answers == [with_pii, without, with_pii, without, with_pii]
    assert await value(client, CACHE, outcome="hit") == 2


async def test_a_persisted_hash_sent_again_after_it_is_registered_is_answered(
    client: httpx.AsyncClient,
) -> None:
    """The first time, only the hash: not found. Registered with its document, the same
    hash-only bytes are then answered, from the cache the second time."""
    document = "{ talks(first: 0) { totalCount } }"
    digest = hashlib.sha256(document.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    hash_only = orjson.dumps({"extensions": extensions})
    headers = {**bearer(READ_KEY), "Content-Type": "application/json"}

    first = await client.post("/graphql", content=hash_only, headers=headers)
    assert first.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = await client.post(
        "/graphql", json={"query": document, "extensions": extensions}, headers=bearer(READ_KEY)
    )
    assert registered.json() == {"data": {"talks": {"totalCount": 0}}}
    for _ in range(2):
        again = await client.post("/graphql", content=hash_only, headers=headers)
        assert again.json() == {"data": {"talks": {"totalCount": 0}}}


async def test_the_same_bytes_after_a_write_are_answered_from_the_new_store(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps({"query": NAMES})
    headers = {**bearer(READ_KEY), "Content-Type": "application/json"}
    assert (await push(client, renamed(1, "Before"))).status_code == 202
    for _ in range(2):
        before = await client.post("/graphql", content=body, headers=headers)
        assert customer_names(before) == ["Before"]
    assert (await push(client, renamed(1, "After"))).status_code == 202
    after = await client.post("/graphql", content=body, headers=headers)
    assert customer_names(after) == ["After"]


async def test_a_body_naming_a_persisted_query_is_resolved_every_time(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration (hash and document) sent again byte for byte is resolved again: the
    store may have forgotten the document since, and only resolving registers it anew."""
    from gateway.graphql.persisted import PersistedQueryPolicy

    document = "{ talks(first: 0) { totalCount } }"
    digest = hashlib.sha256(document.encode()).hexdigest()
    body = orjson.dumps(
        {"query": document, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    )
    resolved: list[object] = []
    resolve = PersistedQueryPolicy.resolve

    async def counted(self: PersistedQueryPolicy, *args: Any, **kwargs: Any) -> Any:
        resolved.append(args[0])
        return await resolve(self, *args, **kwargs)

    monkeypatch.setattr(PersistedQueryPolicy, "resolve", counted)
    headers = {**bearer(READ_KEY), "Content-Type": "application/json"}
    for _ in range(3):
        answer = await client.post("/graphql", content=body, headers=headers)
        assert answer.json() == {"data": {"talks": {"totalCount": 0}}}
    assert len(resolved) == 3
