"""The `talkgate` command, run as users run it: a real process."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.auth import KeyRing
from gateway.settings import ApiKeyEntry
from gateway.storage.records import TalkQuery
from tests.factories import talk
from tests.support import (
    env_for,
    open_cli_store,
    talkgate,
)

ROOT = Path(__file__).resolve().parents[2]


# -- ingest ---------------------------------------------------------------------------------


async def test_ingest_loads_a_json_file_with_one_talk(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_bytes(orjson.dumps(talk(11), option=orjson.OPT_INDENT_2))
    result = talkgate(tmp_path, "ingest", str(path))
    assert result.returncode == 0, result.stderr
    assert "accepted 1, duplicates 0, rejected 0" in result.stdout
    store = await open_cli_store(tmp_path)
    try:
        assert list(await store.talks_by_id([11])) == [11]
    finally:
        await store.close()


async def test_ingest_loads_an_array_and_ndjson_and_reports_rejects(tmp_path: Path) -> None:
    array = tmp_path / "array.json"
    array.write_bytes(orjson.dumps([talk(1), talk(2)]))
    lines = [
        orjson.dumps(talk(3)),
        b"",
        b"{not json",
        orjson.dumps({"id": "x"}),
        orjson.dumps(talk(4)),
    ]
    ndjson = tmp_path / "talks.ndjson"
    ndjson.write_bytes(b"\n".join(lines) + b"\n")

    result = talkgate(tmp_path, "ingest", str(array), str(ndjson))

    assert result.returncode == 1  # some bodies were rejected
    assert "accepted 4, duplicates 0, rejected 2 (kept as dead letters)" in result.stdout
    assert "the body is not JSON" in result.stderr
    store = await open_cli_store(tmp_path)
    try:
        assert (await store.count_talks(query=TalkQuery()))[None] == 4
        sources = sorted(letter.source for letter in await store.dead_letters())
        assert sources == ["file:talks.ndjson:3", "file:talks.ndjson:4"]
    finally:
        await store.close()


def test_ingesting_the_same_file_twice_counts_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "talks.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(talk(i)) for i in range(1, 6)))
    assert talkgate(tmp_path, "ingest", str(path)).returncode == 0
    again = talkgate(tmp_path, "ingest", str(path))
    assert "accepted 0, duplicates 5, rejected 0" in again.stdout


def test_ingest_shows_progress_and_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "talks.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(talk(i)) for i in range(1, 30)))
    result = talkgate(tmp_path, "ingest", "--batch", "7", str(path))
    assert "100.0%" in result.stderr  # the final progress line
    assert "29 talks" in result.stderr
    assert "talks changed 29" in result.stdout


def test_ingest_of_a_missing_file_fails_with_a_reason(tmp_path: Path) -> None:
    result = talkgate(tmp_path, "ingest", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "no such file" in result.stderr


# -- schema and keys ------------------------------------------------------------------------


def test_schema_prints_the_committed_sdl(tmp_path: Path) -> None:
    result = talkgate(tmp_path, "schema")
    assert result.returncode == 0
    assert result.stdout == (ROOT / "schema.graphql").read_text()


def test_keys_new_prints_a_key_and_an_entry_that_accepts_it(tmp_path: Path) -> None:
    result = talkgate(tmp_path, "keys", "new", "--name", "crm", "--scopes", "talks:read,admin")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    key = lines[0].rsplit(" ", 1)[1]
    entry = ApiKeyEntry.model_validate(json.loads(lines[1].split(": ", 1)[1]))
    principal = KeyRing([entry]).authenticate(key)
    assert principal is not None
    assert principal.name == "crm"
    assert principal.scopes == {"talks:read", "admin"}


def test_keys_new_refuses_unknown_scopes(tmp_path: Path) -> None:
    result = talkgate(tmp_path, "keys", "new", "--name", "x", "--scopes", "talks:write")
    assert result.returncode == 2
    assert "unknown" in result.stderr


# -- serve ----------------------------------------------------------------------------------


def test_serve_without_keys_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    result = talkgate(tmp_path, "serve", "--port", "0", timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "TALKGATE_API_KEYS" in result.stderr


def test_demo_refuses_to_listen_beyond_localhost(tmp_path: Path) -> None:
    result = talkgate(tmp_path, "serve", "--demo", "--host", "0.0.0.0", timeout=30)  # noqa: S104
    assert result.returncode == 2
    assert "localhost only" in result.stderr


def test_invalid_settings_are_one_line_errors(tmp_path: Path) -> None:
    env = env_for(tmp_path, TALKGATE_SOURCE_TIMEZONE="Mars/Olympus")
    result = talkgate(tmp_path, "serve", "--demo", env=env, timeout=30)
    assert result.returncode == 2
    assert "TALKGATE_SOURCE_TIMEZONE" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serving_demo(
    tmp_path: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """`talkgate serve --demo [flags]` as a real process on a free loopback port, ready; its
    base URL and stderr file. It is stopped on leaving."""
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gateway.cli", "serve", "--demo", *flags, "--port", str(port)],
            cwd=tmp_path,
            env=env or env_for(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve --demo did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield base, log_path
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`talkgate serve --demo` as a real process on a free loopback port; its stderr file."""
    with _serving_demo(tmp_path) as served:
        yield served


def _demo_answer(
    tmp_path: Path,
    query: str,
    *flags: str,
    env: dict[str, str] | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """What `talkgate serve --demo [flags]` (on cli.db) answers to `query`; then it stops."""
    with _serving_demo(tmp_path, *flags, env=env) as (base, _):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        answer = httpx.post(f"{base}/graphql", json={"query": query}, headers=headers)
    body: dict[str, Any] = answer.json()
    return body


def _demo_talks(tmp_path: Path, *flags: str) -> int:
    """How many talks `talkgate serve --demo [flags]` answers in cli.db."""
    answer = _demo_answer(tmp_path, "{ talks { totalCount } }", *flags)
    return int(answer["data"]["talks"]["totalCount"])


@pytest.mark.slow
def test_the_demo_checks_a_configured_key_with_fewer_scopes(tmp_path: Path) -> None:
    """The partner guide's "Trying it on the demo": a key from `keys new`, its entry in
    TALKGATE_API_KEYS alongside --demo, gets FORBIDDEN where the demo's open access does not."""
    made = talkgate(tmp_path, "keys", "new", "--name", "partner", "--scopes", "talks:read")
    assert made.returncode == 0, made.stderr
    key = re.search(r"^key \(shown once, give it to the client\): (\S+)$", made.stdout, re.M)
    entry = re.search(r"^entry for TALKGATE_API_KEYS: (.+)$", made.stdout, re.M)
    assert key is not None, made.stdout
    assert entry is not None, made.stdout
    env = env_for(tmp_path, TALKGATE_API_KEYS=f"[{entry.group(1)}]")
    query = '{ talk(id: "200001") { customer { name documentNumber } } }'
    limited = _demo_answer(tmp_path, query, env=env, key=key.group(1))
    assert limited["data"]["talk"]["customer"] == {"name": "MARIA SILVA", "documentNumber": None}
    assert [e["extensions"]["code"] for e in limited["errors"]] == ["FORBIDDEN"]
    assert "errors" not in _demo_answer(tmp_path, query, env=env)


@pytest.mark.slow
def test_a_second_demo_keeps_the_first_ones_writes_and_reset_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "extra.json"
    path.write_bytes(orjson.dumps(talk(11)))
    assert talkgate(tmp_path, "ingest", str(path)).returncode == 0
    assert _demo_talks(tmp_path) == 41  # the samples again (duplicates) and the talk kept
    assert _demo_talks(tmp_path, "--reset") == 40
    assert _demo_talks(tmp_path) == 40


def test_reset_refuses_a_store_that_is_not_sqlite_and_a_serve_without_demo(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path, TALKGATE_DATABASE_URL="postgresql://demo@127.0.0.1:1/demo")
    result = talkgate(tmp_path, "serve", "--demo", "--reset", env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "not a SQLite URL" in result.stderr
    (tmp_path / "cli.db").write_bytes(b"kept")
    result = talkgate(tmp_path, "serve", "--reset", timeout=30)
    assert result.returncode == 2
    assert "--reset is for the demo" in result.stderr
    assert (tmp_path / "cli.db").read_bytes() == b"kept"


@pytest.mark.slow
def test_serve_demo_answers_graphql_from_localhost_without_a_key(
    demo_server: tuple[str, Path],
) -> None:
    base, _ = demo_server
    response = httpx.post(
        f"{base}/graphql",
        json={
            "query": "{ talks(first: 5) { totalCount edges { node { id: databaseId"
            " createdAt } } } }"
        },
        timeout=10,
    )
    assert response.status_code == 200
    talks = response.json()["data"]["talks"]
    assert talks["totalCount"] == 40
    assert all(edge["node"]["createdAt"].endswith("Z") for edge in talks["edges"])
    assert response.headers["x-request-id"]


@pytest.mark.slow
def test_serve_demo_prints_the_graphiql_url_and_logs_json_lines(
    demo_server: tuple[str, Path],
) -> None:
    base, log_path = demo_server
    httpx.get(f"{base}/healthz", timeout=5, headers={"X-Request-ID": "probe-1"})
    deadline = time.monotonic() + 10
    while '"probe-1"' not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    stderr = log_path.read_text()
    assert f"GraphiQL: {base}/graphql" in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "talkgate.access"]
    assert {"path": "/healthz", "request_id": "probe-1", "status": 200}.items() <= next(
        r for r in access if r.get("request_id") == "probe-1"
    ).items()


def test_a_placeholder_secret_is_refused_naming_its_variable(tmp_path: Path) -> None:
    env = env_for(tmp_path, TALKGATE_WEBHOOK_SECRET="changethis")
    result = talkgate(tmp_path, "serve", "--demo", env=env, timeout=30)
    assert result.returncode == 2
    assert "TALKGATE_WEBHOOK_SECRET" in result.stderr
    assert "changethis" not in result.stderr


@pytest.mark.slow
def test_serve_demo_prints_the_explorer_url_and_a_demo_key_that_works(
    demo_server: tuple[str, Path],
) -> None:
    base, log_path = demo_server
    stderr = log_path.read_text()
    assert f"explorer: {base}/explorer" in stderr
    found = re.search(r"demo key \(all scopes, this run only\): (\S+)", stderr)
    assert found is not None, stderr
    response = httpx.post(
        f"{base}/graphql",
        json={"query": '{ customer(id: "144527") { telephones { number } } }'},
        headers={"Authorization": f"Bearer {found.group(1)}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert "errors" not in response.json()
