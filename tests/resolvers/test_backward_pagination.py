"""Relay's backward pagination over HTTP: every connection takes `last`/`before` besides
`first`/`after`, and its PageInfo says where the page begins and ends.

On the demo's sample data: each connection is read whole forward, then walked backward from
its end, `last` items at a time, following `startCursor` while `hasPreviousPage`: the walk
must give the same items and cursors, in the same order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from tests.support import gql, live_server, make_settings

PAGE = "edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
# (name, the document with {args} where the connection's arguments go, path to it)
CONNECTIONS = [
    *[
        (f"talks {order}", f"{{ talks(orderBy: {order}{{args}}) {{ {PAGE} }} }}", ["talks"])
        for order in ("CREATED_AT_DESC", "CREATED_AT_ASC", "ID_DESC", "ID_ASC")
    ],
    (
        "talks filtered",
        f"{{ talks(filter: {{status: FINISHED}}{{args}}) {{ {PAGE} }} }}",
        ["talks"],
    ),
    ("customers", f"{{ customers({{args}}) {{ {PAGE} }} }}", ["customers"]),
    ("agents", f"{{ agents({{args}}) {{ {PAGE} }} }}", ["agents"]),
    (
        "Talk.histories",
        f'{{ talk(id: "200000") {{ histories({{args}}) {{ {PAGE} }} }} }}',
        ["talk", "histories"],
    ),
    (
        "Customer.talks",
        f'{{ customer(id: "500000") {{ talks({{args}}) {{ {PAGE} }} }} }}',
        ["customer", "talks"],
    ),
    (
        "Agent.talks",
        f'{{ agent(login: "1001") {{ talks({{args}}) {{ {PAGE} }} }} }}',
        ["agent", "talks"],
    ),
]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    app = create_app(make_settings(tmp_path, demo=True, api_keys=()))
    async with (
        live_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as client,
    ):
        yield client, app.state.demo_key


async def read(
    client: httpx.AsyncClient, key: str, document: str, path: list[str], args: str
) -> dict[str, Any]:
    filled = document.replace("{args}", args)
    if "(" + ", " in filled or "()" in filled:
        filled = filled.replace("(, ", "(").replace("()", "")
    body = await gql(client, filled, key=key)
    assert "errors" not in body, (filled, body)
    found: Any = body["data"]
    for step in path:
        found = found[step]
    assert found is not None, filled
    return dict(found)


def items(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(edge["node"]["id"], edge["cursor"]) for edge in page["edges"]]


@pytest.mark.parametrize(("name", "document", "path"), CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
@pytest.mark.parametrize("size", [1, 3, 7])
async def test_walking_back_from_the_end_gives_the_list_read_forward(
    demo: tuple[httpx.AsyncClient, str], name: str, document: str, path: list[str], size: int
) -> None:
    client, key = demo
    whole = await read(client, key, document, path, ", first: 100")
    forward = items(whole)
    assert len(forward) >= 2, f"{name}: the demo should hold a list worth paging"
    info = whole["pageInfo"]
    assert (info["hasPreviousPage"], info["hasNextPage"]) == (False, False)
    assert (info["startCursor"], info["endCursor"]) == (forward[0][1], forward[-1][1])

    walked: list[tuple[str, str]] = []
    before: str | None = None
    for _ in range(len(forward) + 1):
        args = f", last: {size}" + (f', before: "{before}"' if before else "")
        page = await read(client, key, document, path, args)
        got = items(page)
        info = page["pageInfo"]
        assert len(got) == min(size, len(forward) - len(walked))
        assert info["hasNextPage"] is (before is not None)  # the items from `before` on
        assert (info["startCursor"], info["endCursor"]) == (got[0][1], got[-1][1])
        walked = got + walked
        if not info["hasPreviousPage"]:
            break
        before = info["startCursor"]
    assert walked == forward


@pytest.mark.parametrize(("name", "document", "path"), CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
async def test_a_forward_page_after_a_cursor_says_items_precede_it(
    demo: tuple[httpx.AsyncClient, str], name: str, document: str, path: list[str]
) -> None:
    client, key = demo
    first = await read(client, key, document, path, ", first: 1")
    assert first["pageInfo"]["hasPreviousPage"] is False
    after = first["pageInfo"]["endCursor"]
    second = await read(client, key, document, path, f', first: 1, after: "{after}"')
    assert second["pageInfo"]["hasPreviousPage"] is True
    # ... and the page before the second one is the first.
    before = second["pageInfo"]["startCursor"]
    back = await read(client, key, document, path, f', last: 1, before: "{before}"')
    assert items(back) == items(first)
    assert back["pageInfo"]["hasPreviousPage"] is False


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        ("first: 2, last: 2", "last"),
        ('last: 2, after: "x"', "after"),
        ('first: 2, before: "x"', "before"),
        ('before: "x"', "before"),
        ("last: 101", "last"),
        ("last: -1", "last"),
    ],
)
async def test_arguments_of_both_directions_or_out_of_range_are_bad_user_input(
    demo: tuple[httpx.AsyncClient, str], args: str, argument: str
) -> None:
    client, key = demo
    for document in (
        f"{{ talks({args}) {{ edges {{ node {{ id }} }} }} }}",
        f'{{ talk(id: "200000") {{ histories({args}) {{ edges {{ node {{ id }} }} }} }} }}',
    ):
        body = await gql(client, document, key=key)
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
        assert error["extensions"]["argument"] == argument, body


async def test_a_cursor_of_another_list_is_refused_backward_too(
    demo: tuple[httpx.AsyncClient, str],
) -> None:
    client, key = demo
    agents = await gql(client, "{ agents(first: 1) { pageInfo { endCursor } } }", key=key)
    foreign = agents["data"]["agents"]["pageInfo"]["endCursor"]
    body = await gql(
        client,
        f'{{ talks(last: 2, before: "{foreign}") {{ edges {{ node {{ id }} }} }} }}',
        key=key,
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert foreign not in str(body)


async def test_no_page_size_given_reads_the_default_page(
    demo: tuple[httpx.AsyncClient, str],
) -> None:
    client, key = demo
    for args in ("", "(first: null)", "(last: null)", "(first: null, last: null)"):
        body = await gql(client, f"{{ talks{args} {{ edges {{ node {{ id }} }} }} }}", key=key)
        assert len(body["data"]["talks"]["edges"]) == 20, args
