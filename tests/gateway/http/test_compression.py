"""Compressed answers: the codec a client's Accept-Encoding asks for, Vary on every answer
whose form depends on it, and a cached answer compressed once."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.graphql.response_cache import CachedResponse
from gateway.http.app import create_app
from gateway.http.compression import choose, encode, with_vary
from tests.factories import talk
from tests.support import READ_KEY, WEBHOOK_SECRET, make_settings, serving

BEARER = {"Authorization": f"Bearer {READ_KEY}"}
PAGE = {
    "query": "{ talks(first: 50) { edges { node { id: databaseId createdAt trackingNumber } } } }"
}


def decoded(response: httpx.Response) -> Any:
    """The JSON of an answer, decoded by hand: httpx is asked to keep the raw bytes."""
    raw = response.content
    encoding = response.headers.get("content-encoding")
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "br":
        raw = brotli.decompress(raw)
    else:
        assert encoding is None, encoding
    return orjson.loads(raw)


async def fill(client: httpx.AsyncClient, count: int = 30) -> None:
    for n in range(count):
        answer = await client.post(
            "/webhooks/talks", json=talk(8000 + n), headers={"X-Webhook-Token": WEBHOOK_SECRET}
        )
        assert answer.status_code == 202


async def post(client: httpx.AsyncClient, accept_encoding: str | None) -> httpx.Response:
    headers = {**BEARER, "Accept-Encoding": accept_encoding or "identity"}
    # httpx would decode gzip and br itself: the raw stream shows what was sent.
    request = client.build_request("POST", "/graphql", json=PAGE, headers=headers)
    response = await client.send(request, stream=True)
    response._content = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response


@pytest.mark.parametrize(
    ("accept_encoding", "codec"),
    [("gzip", "gzip"), ("br", "br"), ("gzip, deflate, br", "br"), ("br;q=0.5, gzip", "gzip")],
)
@pytest.mark.parametrize("cache_mb", [0, 64], ids=["uncached", "cached"])
async def test_a_large_answer_comes_in_the_codec_asked_for(
    tmp_path: Path, accept_encoding: str, codec: str, cache_mb: int
) -> None:
    app = create_app(make_settings(tmp_path, response_cache_mb=cache_mb))
    async with serving(app) as client:
        await fill(client)
        plain = await post(client, None)
        first = await post(client, accept_encoding)
        again = await post(client, accept_encoding)  # a cache hit when the cache is on
    assert plain.headers.get("content-encoding") is None
    for answer in (first, again):
        assert answer.headers["content-encoding"] == codec
        assert "accept-encoding" in answer.headers["vary"].lower()
        assert int(answer.headers["content-length"]) == len(answer.content)
        assert len(answer.content) < len(plain.content) / 3
        assert decoded(answer) == decoded(plain)


async def test_a_small_answer_or_no_ask_is_sent_as_it_is(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    async with serving(app) as client:
        small = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={**BEARER, "Accept-Encoding": "gzip"},
        )
    assert small.headers.get("content-encoding") is None
    assert small.json() == {"data": {"__typename": "Query"}}


async def test_compression_off_sends_every_answer_as_it_is(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, compression=False))
    async with serving(app) as client:
        await fill(client)
        answer = await post(client, "gzip, br")
    assert answer.headers.get("content-encoding") is None
    assert "accept-encoding" not in answer.headers.get("vary", "").lower()
    assert decoded(answer)["data"]["talks"]["edges"]


async def test_a_cached_get_has_a_tag_per_form(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    query = {"query": PAGE["query"]}
    async with serving(app) as client:
        await fill(client)
        plain = await client.get(
            "/graphql", params=query, headers={**BEARER, "Accept-Encoding": "identity"}
        )
        zipped = await client.get(
            "/graphql", params=query, headers={**BEARER, "Accept-Encoding": "gzip"}
        )
        revalidated = await client.get(
            "/graphql",
            params=query,
            headers={**BEARER, "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]},
        )
        crossed = await client.get(
            "/graphql",
            params=query,
            headers={
                **BEARER,
                "Accept-Encoding": "identity",
                "If-None-Match": zipped.headers["etag"],
            },
        )
    assert plain.headers["etag"] != zipped.headers["etag"]
    assert "accept-encoding" in plain.headers["vary"].lower()  # a GET: caches keep it
    assert revalidated.status_code == 304
    assert crossed.status_code == 200  # the gzip form's tag is not the plain form's
    assert {v.strip().lower() for v in zipped.headers["vary"].split(",")} >= {
        "authorization",
        "accept-encoding",
    }


def test_a_cached_answer_compresses_each_form_once() -> None:
    kept = CachedResponse(b'{"data":' + b"1," * 5000 + b"1}")
    first = kept.encoded("gzip")
    assert kept.encoded("gzip") is first
    assert kept.encoded("br") is not first
    assert gzip.decompress(first) == kept.body
    assert brotli.decompress(kept.encoded("br")) == kept.body


# -- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "codec"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),  # a tie: brotli
        ("gzip;q=1.0, br;q=0.8", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0, br;q=0", None),
        ("*", "br"),
        ("*;q=0.5, gzip", "gzip"),
        ("*, br;q=0", "gzip"),
        ("deflate, zstd", None),
        ("gzip;q=abc", None),
        (" gzip ; q=0.5 ", "gzip"),
    ],
)
def test_the_codec_follows_the_header(header: str | None, codec: str | None) -> None:
    assert choose(header) == codec


@given(st.text(max_size=200))
def test_any_header_chooses_a_known_codec_or_none(header: str) -> None:
    assert choose(header) in (None, "br", "gzip")


@given(st.binary(max_size=5000))
def test_encoding_gives_the_body_back(body: bytes) -> None:
    assert gzip.decompress(encode(body, "gzip")) == body
    assert brotli.decompress(encode(body, "br")) == body


def test_vary_names_each_header_once() -> None:
    headers = [(b"content-type", b"x"), (b"vary", b"Authorization")]
    assert with_vary(headers, b"Accept-Encoding")[-1] == (
        b"vary",
        b"Authorization, Accept-Encoding",
    )
    again = with_vary(with_vary(headers, b"Accept-Encoding"), b"accept-encoding")
    assert [v for n, v in again if n == b"vary"] == [b"Authorization, Accept-Encoding"]
