"""Replaying dead letters once a parser fix has landed, as an operator does it: with
`talkgate dead-letters list|replay` (a real process) and with the admin GraphQL fields
`deadLetters` (pages, a reason filter, totalCount) and `replayDeadLetters`. A body an older
talkgate refused but this one reads is made by putting a valid talk in the dead letters, as
that talkgate would have left it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.http.app import create_app
from gateway.storage import TalkStore, open_store
from tests.factories import talk
from tests.support import ALL_KEY, READ_KEY, env_for, gql, make_settings, serving, talkgate

REFUSED_BY_AN_OLDER_PARSER = "the body is not a valid talk (an older talkgate's parser)"


async def letter(store: TalkStore, body: bytes, reason: str, *, truncated: bool = False) -> int:
    return await store.add_dead_letter(
        source="webhook",
        reason=reason,
        errors=[{"loc": "", "msg": reason}],
        body=body,
        body_size=len(body) * (3 if truncated else 1),
        truncated=truncated,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TalkStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'cli.db'}")
    await opened.open()
    yield opened
    await opened.close()


async def test_replay_takes_in_what_now_reads_and_keeps_the_rest_with_its_reason(
    tmp_path: Path, store: TalkStore
) -> None:
    fixed = await letter(store, orjson.dumps(talk(4101)), REFUSED_BY_AN_OLDER_PARSER)
    still_bad = await letter(store, b'{"id": "not a number"}', "the body is not a valid talk")
    partial = await letter(store, b'{"id": 41', "the body is over 1000 bytes", truncated=True)
    env = env_for(tmp_path)

    listed = await asyncio.to_thread(talkgate, tmp_path, "dead-letters", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == "3 dead letters; the 3 most recent:"
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [
        str(partial),
        str(still_bad),
        str(fixed),
    ]

    run = await asyncio.to_thread(talkgate, tmp_path, "dead-letters", "replay", "--all", env=env)
    assert run.returncode == 1, run.stderr  # some were refused again
    lines = run.stdout.splitlines()
    assert lines[0].startswith("replayed 3: accepted 1 (now deliveries; they left the dead")
    assert "refused again 2 (kept, with their reason now)" in lines[0]
    assert sorted(lines[1:]) == sorted(
        [
            f"  refused again: the body is not a valid talk (dead letter {still_bad})",
            f"  refused again: only the start of the body was kept (dead letter {partial})",
        ]
    )
    assert "replay: 100.0%  3 dead letters" in run.stderr

    # The fixed one is a talk now, its body kept raw like any delivery; the others stay.
    assert 4101 in await store.talks_by_id([4101])
    assert await store.raw_deliveries(talk_id=4101) == [orjson.dumps(talk(4101))]
    left = {x.id: x for x in await store.dead_letters()}
    assert set(left) == {still_bad, partial}
    assert left[still_bad].errors[0]["loc"] == "id"  # its reason now: this parser's
    assert left[partial].reason == "the body is over 1000 bytes"  # as it was

    again = await asyncio.to_thread(
        talkgate, tmp_path, "dead-letters", "replay", "--id", str(fixed), env=env
    )
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"talkgate: no dead letter {fixed}: nothing was replayed"
        " (talkgate dead-letters list shows them)"
    ]


def test_replay_wants_ids_or_all(tmp_path: Path) -> None:
    for args in ((), ("--all", "--id", "1")):
        run = talkgate(tmp_path, "dead-letters", "replay", *args)
        assert run.returncode == 2
        assert run.stderr.splitlines() == [
            "talkgate: dead-letters replay: give --id N (one or more) or --all"
        ]


PAGE = """
query ($after: String, $reason: String) {
  deadLetters(first: 2, after: $after, reason: $reason) {
    totalCount
    edges { cursor node { id reason } }
    pageInfo { hasNextPage endCursor }
  }
}"""
REPLAY = """
mutation ($ids: [ID!]) {
  replayDeadLetters(ids: $ids) { accepted stillRefused { id reason } }
}"""


@pytest.fixture
async def admin(tmp_path: Path, store: TalkStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'cli.db'}"))
    async with serving(app) as client:
        yield client


async def pages(client: httpx.AsyncClient, reason: str | None = None) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(client, PAGE, {"after": after, "reason": reason}, key=ALL_KEY)
        assert "errors" not in body, body
        letters = body["data"]["deadLetters"]
        seen += [edge["node"] for edge in letters["edges"]]
        if not letters["pageInfo"]["hasNextPage"]:
            assert letters["totalCount"] == len(seen)
            return seen
        after = letters["pageInfo"]["endCursor"]


async def test_dead_letters_are_paged_with_a_reason_filter_and_a_total(
    admin: httpx.AsyncClient, store: TalkStore
) -> None:
    ids = [await letter(store, b"x", r) for r in ["not JSON", "not a talk", "NOT json"] * 2]
    assert [int(x["id"]) for x in await pages(admin)] == ids[::-1]
    json_ones = await pages(admin, "json")
    assert [int(x["id"]) for x in json_ones] == [i for n, i in enumerate(ids) if n % 3 != 1][::-1]
    refused = await gql(admin, PAGE, {"after": "bm90IGEgY3Vyc29y"}, key=ALL_KEY)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_replay_dead_letters_over_graphql(admin: httpx.AsyncClient, store: TalkStore) -> None:
    fixed = await letter(store, orjson.dumps(talk(4201)), REFUSED_BY_AN_OLDER_PARSER)
    bad = await letter(store, b"[1", "the body is not JSON")

    forbidden = await gql(admin, REPLAY, {"ids": [str(fixed)]}, key=READ_KEY)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unknown = await gql(admin, REPLAY, {"ids": [str(fixed), "999"]}, key=ALL_KEY)
    assert unknown["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "no dead letter 999" in unknown["errors"][0]["message"]
    assert len(await store.dead_letters()) == 2  # nothing was replayed

    done = await gql(admin, REPLAY, {"ids": [str(fixed)]}, key=ALL_KEY)
    assert done == {"data": {"replayDeadLetters": {"accepted": [str(fixed)], "stillRefused": []}}}
    talk_answer = await gql(admin, '{ talk(id: "4201") { databaseId } }', key=READ_KEY)
    assert talk_answer["data"]["talk"] == {"databaseId": "4201"}

    everything = await gql(admin, REPLAY, {"ids": None}, key=ALL_KEY)
    assert everything["data"]["replayDeadLetters"] == {
        "accepted": [],
        "stillRefused": [{"id": str(bad), "reason": "the body is not JSON"}],
    }
    assert json.dumps(await pages(admin)).count('"id"') == 1
