"""Documents that cost too much before execution: each worst-case shape the token limit lets
through (3000 tokens) is answered with its error code in bounded time, memory and loop stall.

Before the fix: 5 spreads x 9 levels of fragments held the loop 6.8 s (x 11 levels: minutes),
`customer { name }` x 700 1.2 s ('Validation aborted.', BAD_USER_INPUT), a 1 MiB document of
500k tokens 10.7 s (parsed whole by the response cache), 900 `__typename` aliases answered.
After, without tracemalloc: 7 ms, 42 ms, 87-147 ms, refused in 49 ms. tracemalloc (which the
bounds use) makes parsing 3000 tokens several times slower: the 5 s bound is ~10x the
slowest shape measured under it on a loaded 2-CPU machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gateway.http.app import create_app
from tests.abuse.bounds import bounded
from tests.support import PROTOCOL, READ_KEY, GraphQLSocket, live_server, make_settings, serving

BEARER = {"Authorization": f"Bearer {READ_KEY}"}


def fan_out(levels: int, spreads: int = 5) -> str:
    """The report's shape: fragments spreading the previous one `spreads` times."""
    definitions = ["fragment F0 on Query { talks(first: 0) { totalCount } }"]
    for level in range(1, levels + 1):
        body = " ".join([f"...F{level - 1}"] * spreads)
        definitions.append(f"fragment F{level} on Query {{ {body} }}")
    return f"{{ ...F{levels} }} " + " ".join(definitions)


def fan_out_through_fields(levels: int, spreads: int = 5) -> str:
    """Fragments spreading the previous one `spreads` times under a field each: nothing
    is wide, the expansion is 5**levels fields deep down."""
    definitions = ["fragment F0 on Talk { id: databaseId }"]
    for level in range(1, levels + 1):
        body = " ".join([f"...F{level - 1}"] * spreads)
        definitions.append(
            f"fragment F{level} on Talk {{ customer {{ talks(first: 1) {{ edges {{ node"
            f" {{ {body} }} }} }} }} }}"
        )
    return f'{{ talk(id: "7") {{ ...F{levels} }} }} ' + " ".join(definitions)


def cousins(copies: int, width: int) -> str:
    """`copies` fields of one name with `width` fields each: merged, copies x width."""
    return '{ talk(id: "7") { ' + ("customer { " + "name " * width + "} ") * copies + "} }"


def many_operations(count: int) -> str:
    """`count` operations spreading one fragment; validation checks them all."""
    operations = " ".join(f"query Q{i} {{ ...F }}" for i in range(count))
    return operations + " fragment F on Query { talks(first: 1) { totalCount } }"


def deep_inline(levels: int) -> str:
    return "{ " + "... on Query { " * levels + "__typename" + " }" * levels + " }"


def aliases_spread_out(count: int) -> str:
    """`count` aliases, at most 30 per selection set."""
    groups = [
        f'g{g}: talk(id: "7") {{ {" ".join(f"a{i}: id" for i in range(30))} }}'
        for g in range(count // 30)
    ]
    return "{ " + " ".join(groups) + " }"


# name: (document, operation name, expected code, reason or None)
SHAPES: dict[str, tuple[str, str | None, str, str | None]] = {
    "fan-out-5x11": (fan_out(11), None, "QUERY_TOO_COMPLEX", "fields"),
    "fan-out-3x60": (fan_out(60, spreads=3), None, "QUERY_TOO_COMPLEX", "fields"),
    # merged, the 5 spreads of each level multiply: 125 fields two levels down
    "fan-out-through-fields-5x11": (
        fan_out_through_fields(11),
        None,
        "QUERY_TOO_COMPLEX",
        "fields",
    ),
    "wide-700": (cousins(700, 1), None, "QUERY_TOO_COMPLEX", "fields"),
    "wide-2998": ("{ " + "__typename " * 2997 + "}", None, "QUERY_TOO_COMPLEX", "fields"),
    "cousins-40x40": (cousins(40, 40), None, "QUERY_TOO_COMPLEX", "fields"),
    "cousins-11x10": (cousins(11, 10), None, "QUERY_TOO_COMPLEX", "fields"),
    "cousins-10x10": (cousins(10, 10), None, "OK", None),  # at the limit
    "typename-aliases-900": (
        "{ " + " ".join(f"t{i}: __typename" for i in range(900)) + " }",
        None,
        "QUERY_TOO_COMPLEX",
        "fields",
    ),
    "aliases-spread-out-90": (aliases_spread_out(90), None, "QUERY_TOO_COMPLEX", "aliases"),
    "inline-fragments-500": (
        "{ " + "... on Query { __typename } " * 499 + "}",
        None,
        "QUERY_TOO_COMPLEX",
        "fields",
    ),
    "deep-inline-fragments-150": (deep_inline(150), None, "OK", None),
    "operations-400": (many_operations(400), "Q0", "OK", None),
    "tokens-500k-1mib": ("{ " + "a " * 500_000 + "}", None, "QUERY_TOO_COMPLEX", "tokens"),
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(make_settings(tmp_path))) as c:
        yield c


def outcome(body: dict[str, Any]) -> tuple[str, str | None]:
    errors = body.get("errors")
    if not errors:
        return "OK", None
    assert len(errors) == 1 or {e["extensions"]["code"] for e in errors} == {"BAD_USER_INPUT"}
    extensions = errors[0]["extensions"]
    return extensions["code"], extensions.get("reason")


@pytest.mark.parametrize("name", list(SHAPES))
async def test_a_costly_document_is_answered_in_bounded_time(
    client: httpx.AsyncClient, name: str
) -> None:
    document, operation, code, reason = SHAPES[name]
    payload: dict[str, Any] = {"query": document}
    if operation is not None:
        payload["operationName"] = operation
    async with bounded(name, seconds=5, peak_mib=64) as figures:
        response = await client.post("/graphql", json=payload, headers=BEARER)
        health = await client.get("/healthz")
    figures.extra["tokens"] = len(document.split())
    assert response.status_code == 200, response.text
    assert health.status_code == 200
    assert outcome(response.json()) == (code, reason), response.text


async def test_varying_comments_does_not_force_validation_again(
    client: httpx.AsyncClient,
) -> None:
    """A wide (but allowed) document sent 50 times with a different comment each time."""
    document = '{ talk(id: "7") { ' + "customer { name } " * 99 + "} }"
    assert outcome((await client.post("/graphql", json={"query": document}, headers=BEARER))
                   .json()) == ("OK", None)  # fmt: skip
    async with bounded("comment-varied-x50", seconds=6, peak_mib=64, stall_ms=1500):
        for index in range(50):
            varied = f"# {index}\n{document} # {index}"
            response = await client.post("/graphql", json={"query": varied}, headers=BEARER)
            assert outcome(response.json()) == ("OK", None)


async def test_a_mebibyte_of_comment_is_parsed_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response cache's analysis and the operation share one parse (the lexer reads a
    mebibyte of comment in ~0.2 s)."""
    parses = _counting_parses(monkeypatch)
    document = "#" + "x" * (1024 * 1024 - 100) + "\n{ __typename }"
    response = await client.post("/graphql", json={"query": document}, headers=BEARER)
    assert response.json() == {"data": {"__typename": "Query"}}
    assert len(parses) == 1


@pytest.mark.parametrize(
    ("name", "document", "reason"),
    [
        ("ws-wide-subscription", "subscription { talkUpdated { " + "id " * 700 + "} }", "fields"),
        ("ws-fan-out-query", fan_out(11), "fields"),
    ],
)
async def test_a_costly_document_over_a_websocket_is_refused_in_bounded_time(
    tmp_path: Path, name: str, document: str, reason: str
) -> None:
    async with (
        live_server(create_app(make_settings(tmp_path))) as address,
        connect(f"ws://{address}/graphql", subprotocols=[Subprotocol(PROTOCOL)]) as ws,
    ):
        socket = GraphQLSocket(ws)
        assert (await socket.init(READ_KEY))["type"] == "connection_ack"
        async with bounded(name, seconds=3, peak_mib=64):
            await socket.subscribe(document)
            answer = await socket.receive()
        errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["QUERY_TOO_COMPLEX"], answer
        assert errors[0]["extensions"]["reason"] == reason


# Every way a document arrives: each is parsed once per request, whatever reads it (the
# response cache's analysis, the operation's checks, strawberry, a subscription's sharing
# key), and not at all when it comes again.
_HTTP_FORMS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "{ talks(first: 1) { totalCount } }", {}),
    (
        "POST",
        "query A { __typename } query B { talks(first: 0) { totalCount } }",
        {"operationName": "B"},
    ),
    ("POST", "query Q($n: Int!) { talks(first: $n) { totalCount } }", {"variables": {"n": 2}}),
    ("POST", "mutation { __typename }", {}),
    ("POST", "{ talks(first: 1) { totalCount } nope }", {}),  # invalid: refused by validation
    ("GET", "{ talks(first: 1) { totalCount } }", {}),
    ("GET", "query B { __typename }", {"operationName": "B"}),
]


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from gateway.graphql import parsing

    parses: list[str] = []
    real = graphql.parse

    def counted(text: str, **options: Any) -> Any:
        parses.append(text)
        return real(text, **options)

    monkeypatch.setattr(parsing, "parse", counted)
    return parses


@pytest.mark.parametrize("cache_mb", [16, 0], ids=["cache-on", "cache-off"])
@pytest.mark.parametrize(("method", "document", "extra"), _HTTP_FORMS)
async def test_a_document_over_http_is_parsed_once_per_request(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache_mb: int,
    method: str,
    document: str,
    extra: dict[str, Any],
) -> None:
    parses = _counting_parses(monkeypatch)
    # A comment of its own: no other test has parsed this text.
    text = f"# {tmp_path.name}\n{document}"
    settings = make_settings(tmp_path, response_cache_mb=cache_mb)
    async with serving(create_app(settings)) as client:
        for expected in (1, 0):  # the second time, the parse is the cache's
            parses.clear()
            if method == "POST":
                params: dict[str, Any] = {"query": text, **extra}
                response = await client.post("/graphql", json=params, headers=BEARER)
            else:
                query = {"query": text, **extra}
                response = await client.get("/graphql", params=query, headers=BEARER)
            assert response.status_code == 200, response.text
            assert len(parses) == expected, (method, document)


@pytest.mark.parametrize(
    "document", ["subscription { talkUpdated { id } }", "{ talks(first: 1) { totalCount } }"]
)
async def test_a_document_over_a_websocket_is_parsed_once_per_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, document: str
) -> None:
    parses = _counting_parses(monkeypatch)
    text = f"# {tmp_path.name}\n{document}"
    async with (
        live_server(create_app(make_settings(tmp_path))) as address,
        connect(f"ws://{address}/graphql", subprotocols=[Subprotocol(PROTOCOL)]) as ws,
    ):
        socket = GraphQLSocket(ws)
        assert (await socket.init(READ_KEY))["type"] == "connection_ack"
        parses.clear()
        for op_id in ("1", "2"):  # the second operation's parse is the cache's
            await socket.subscribe(text, op_id=op_id)
            if document.startswith("subscription"):
                await socket.send({"id": op_id, "type": "complete"})
            else:
                answer = await socket.receive()
                assert answer["type"] == "next", answer
                assert (await socket.receive())["type"] == "complete"
        # What the socket answers next follows both operations.
        await socket.send({"type": "ping"})
        assert (await socket.receive())["type"] == "pong"
        assert len(parses) == 1, parses
