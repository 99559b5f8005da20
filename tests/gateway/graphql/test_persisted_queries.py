"""Persisted queries over HTTP: Apollo's automatic persisted queries and the allow-list mode."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from gateway.graphql.persisted import LocalPersistedQueries, ManifestError
from gateway.graphql.schema_assembly import build_schema
from gateway.http.app import create_app
from gateway.settings import Settings
from tests.backends import REDIS_URL
from tests.resolvers.helpers import codes, talk_of
from tests.support import NO_SCOPE_KEY, READ_KEY, make_settings, push, serving

BEARER = {"Authorization": f"Bearer {READ_KEY}"}
COUNT = "{ talks(first: 0) { totalCount } }"
BY_ID = "query One($id: ID!) { talk(id: $id) { id: databaseId } }"
UNLISTED = "{ talks(first: 1) { totalCount } }"


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(document)}}


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], key: str = READ_KEY
) -> httpx.Response:
    return await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {key}"})


async def get(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return await client.get("/graphql", params=encoded, headers=BEARER)


def manifest(tmp_path: Path, *documents: str, wrong: bool = False) -> Path:
    path = tmp_path / "persisted.json"
    entries = {sha(d + ("x" if wrong else "")): d for d in documents}
    path.write_bytes(orjson.dumps(entries))
    return path


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway with APQ on (the default) and one talk."""
    async with serving(create_app(make_settings(tmp_path))) as c:
        assert (await push(c, talk_of(700_001))).status_code == 202
        yield c


@pytest.fixture
async def allow_listed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway in allow-list mode whose manifest holds COUNT and BY_ID."""
    settings = make_settings(
        tmp_path,
        persisted_queries_file=manifest(tmp_path, COUNT, BY_ID),
        persisted_queries_only=True,
    )
    async with serving(create_app(settings)) as c:
        assert (await push(c, talk_of(700_001))).status_code == 202
        yield c


# -- automatic persisted queries -------------------------------------------------------------


async def test_an_unknown_hash_answers_persisted_query_not_found_with_200(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"extensions": persisted(COUNT)})
    assert response.status_code == 200
    body = response.json()
    assert codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"


async def test_a_document_sent_with_its_hash_registers_and_then_runs_by_hash(
    client: httpx.AsyncClient,
) -> None:
    first = await post(client, {"query": COUNT, "extensions": persisted(COUNT)})
    assert first.json() == {"data": {"talks": {"totalCount": 1}}}
    again = await post(client, {"extensions": persisted(COUNT)})
    assert again.status_code == 200
    assert again.json() == {"data": {"talks": {"totalCount": 1}}}


async def test_a_registered_document_runs_by_hash_over_get(client: httpx.AsyncClient) -> None:
    missed = await get(client, extensions=persisted(COUNT))
    assert codes(missed.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = await get(client, query=COUNT, extensions=persisted(COUNT))
    assert registered.json() == {"data": {"talks": {"totalCount": 1}}}
    response = await get(client, extensions=persisted(COUNT))
    assert response.status_code == 200
    assert response.json() == {"data": {"talks": {"totalCount": 1}}}


async def test_a_hash_that_does_not_match_its_document_is_refused_with_400(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"query": COUNT, "extensions": persisted(UNLISTED)})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert response.json()["errors"][0]["message"] == "provided sha does not match query"
    missed = await post(client, {"extensions": persisted(UNLISTED)})
    assert codes(missed.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_malformed_persisted_query_extension_is_bad_user_input(
    client: httpx.AsyncClient,
) -> None:
    bad = {"persistedQuery": {"version": 2, "sha256Hash": sha(COUNT)}}
    response = await post(client, {"extensions": bad})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_document_run_by_hash_takes_its_variables_and_operation_name(
    client: httpx.AsyncClient,
) -> None:
    await post(client, {"query": BY_ID, "variables": {"id": "1"}, "extensions": persisted(BY_ID)})
    response = await post(
        client,
        {"variables": {"id": "700001"}, "operationName": "One", "extensions": persisted(BY_ID)},
    )
    assert response.json() == {"data": {"talk": {"id": "700001"}}}


async def test_registrations_belong_to_one_gateway_without_redis(tmp_path: Path) -> None:
    first = create_app(make_settings(tmp_path))
    second = create_app(make_settings(tmp_path))
    async with serving(first) as one, serving(second) as other:
        await post(one, {"query": COUNT, "extensions": persisted(COUNT)})
        assert codes((await post(one, {"extensions": persisted(COUNT)})).json()) == []
        missed = await post(other, {"extensions": persisted(COUNT)})
        assert codes(missed.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_registrations_are_shared_by_replicas_through_redis(
    tmp_path: Path,
    redis_prefix: str,
) -> None:
    settings = make_settings(tmp_path, redis_url=SecretStr(REDIS_URL))
    document = "{ talks(first: 0) { totalCount } } # " + redis_prefix  # fresh key each run
    async with serving(create_app(settings)) as one, serving(create_app(settings)) as other:
        await post(one, {"query": document, "extensions": persisted(document)})
        response = await post(other, {"extensions": persisted(document)})
    assert response.json() == {"data": {"talks": {"totalCount": 0}}}


async def test_with_apq_off_a_hash_answers_persisted_query_not_supported(
    tmp_path: Path,
) -> None:
    async with serving(create_app(make_settings(tmp_path, persisted_queries=False))) as c:
        response = await post(c, {"query": COUNT, "extensions": persisted(COUNT)})
        assert response.status_code == 200
        assert codes(response.json()) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
        assert (await post(c, {"query": COUNT})).json() == {"data": {"talks": {"totalCount": 0}}}


# -- limits and scopes still apply -----------------------------------------------------------


async def test_a_persisted_document_still_meets_the_query_limits(tmp_path: Path) -> None:
    deep = "{ talks(first: 1) { edges { node { customer { talks(first: 1) { totalCount } } } } } }"
    async with serving(create_app(make_settings(tmp_path, max_query_depth=3))) as c:
        await post(c, {"query": deep, "extensions": persisted(deep)})
        response = await post(c, {"extensions": persisted(deep)})
    assert codes(response.json()) == ["QUERY_TOO_COMPLEX"]


async def test_a_persisted_document_still_needs_its_scopes(client: httpx.AsyncClient) -> None:
    await post(client, {"query": COUNT, "extensions": persisted(COUNT)})
    response = await post(client, {"extensions": persisted(COUNT)}, key=NO_SCOPE_KEY)
    assert codes(response.json()) == ["FORBIDDEN"]


async def test_a_hash_without_a_key_is_unauthenticated(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"extensions": persisted(COUNT)})
    assert response.status_code == 401


async def test_persisted_requests_count_against_the_rate_limit(tmp_path: Path) -> None:
    async with serving(create_app(make_settings(tmp_path, rate_limit_per_minute=2))) as c:
        await post(c, {"query": COUNT, "extensions": persisted(COUNT)})
        await post(c, {"extensions": persisted(COUNT)})
        response = await post(c, {"extensions": persisted(COUNT)})
    assert response.status_code == 429


# -- allow-list mode -------------------------------------------------------------------------


async def test_a_listed_document_runs_by_hash(allow_listed: httpx.AsyncClient) -> None:
    response = await post(
        allow_listed, {"variables": {"id": "700001"}, "extensions": persisted(BY_ID)}
    )
    assert response.json() == {"data": {"talk": {"id": "700001"}}}
    over_get = await get(allow_listed, extensions=persisted(COUNT))
    assert over_get.json() == {"data": {"talks": {"totalCount": 1}}}


async def test_a_listed_document_runs_by_its_full_text(allow_listed: httpx.AsyncClient) -> None:
    response = await post(allow_listed, {"query": COUNT})
    assert response.json() == {"data": {"talks": {"totalCount": 1}}}


async def test_an_unlisted_document_is_refused(allow_listed: httpx.AsyncClient) -> None:
    response = await post(allow_listed, {"query": UNLISTED})
    assert response.status_code == 400
    assert codes(response.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]
    over_get = await get(allow_listed, query=UNLISTED)
    assert codes(over_get.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]


async def test_apq_registration_is_refused_in_allow_list_mode(
    allow_listed: httpx.AsyncClient,
) -> None:
    registering = await post(allow_listed, {"query": UNLISTED, "extensions": persisted(UNLISTED)})
    assert codes(registering.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]
    by_hash = await post(allow_listed, {"extensions": persisted(UNLISTED)})
    assert codes(by_hash.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]


async def test_allow_list_mode_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TALKGATE_PERSISTED_QUERIES_FILE"):
        make_settings(tmp_path, persisted_queries_only=True)


async def test_manifest_documents_run_by_hash_alongside_apq(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, persisted_queries_file=manifest(tmp_path, COUNT))
    async with serving(create_app(settings)) as c:
        assert (await post(c, {"extensions": persisted(COUNT)})).json() == {
            "data": {"talks": {"totalCount": 0}}
        }
        assert (await post(c, {"query": UNLISTED})).json() == {"data": {"talks": {"totalCount": 0}}}


def test_a_manifest_with_a_wrong_hash_stops_the_app_with_one_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, persisted_queries_file=manifest(tmp_path, COUNT, wrong=True))
    with pytest.raises(ManifestError, match="does not hash to its key") as raised:
        create_app(settings)
    assert "\n" not in str(raised.value)


def test_serve_refuses_to_start_on_a_manifest_that_does_not_verify(tmp_path: Path) -> None:
    path = manifest(tmp_path, COUNT, wrong=True)
    settings: Settings = make_settings(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env |= {
        "TALKGATE_DATABASE_URL": settings.database_url,
        "TALKGATE_API_KEYS": json.dumps([e.model_dump(mode="json") for e in settings.api_keys]),
        "TALKGATE_PERSISTED_QUERIES_FILE": str(path),
        "TALKGATE_PERSISTED_QUERIES_ONLY": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "does not hash to its key" in result.stderr


# -- the in-process store --------------------------------------------------------------------


async def test_the_in_process_store_stays_bounded_by_entries_and_bytes() -> None:
    documents = LocalPersistedQueries(max_entries=3, max_bytes=100)
    for n in range(10):
        await documents.put(f"{n:064x}", f"{{ a{n} }}")
    assert len(documents) == 3
    assert await documents.get(f"{0:064x}") is None
    assert await documents.get(f"{9:064x}") == "{ a9 }"
    await documents.put("f" * 64, "x" * 95)
    assert documents.size_bytes <= 100
    assert await documents.get("f" * 64) == "x" * 95


async def test_the_least_recently_used_document_goes_first() -> None:
    documents = LocalPersistedQueries(max_entries=2)
    await documents.put("a" * 64, "{ a }")
    await documents.put("b" * 64, "{ b }")
    await documents.get("a" * 64)
    await documents.put("c" * 64, "{ c }")
    assert await documents.get("a" * 64) == "{ a }"
    assert await documents.get("b" * 64) is None


async def test_allow_list_mode_holds_on_every_transport_not_only_http(tmp_path: Path) -> None:
    # WebSocket operations reach the schema without the HTTP endpoint's check.
    schema = build_schema(make_settings(tmp_path), allow_list={sha(COUNT): COUNT})
    result = await schema.execute(UNLISTED)
    assert result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "PERSISTED_QUERY_NOT_ALLOWED"}]
