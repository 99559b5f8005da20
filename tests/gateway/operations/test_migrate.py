"""`talkgate --version` and `talkgate migrate [--check]`, run as an operator runs them (a real
process), on SQLite and PostgreSQL; and `serve`/`ingest` refusing a store with migrations
pending when TALKGATE_AUTO_MIGRATE is false."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gateway import VERSION
from gateway.storage.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from gateway.storage.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.backends import BACKENDS, empty_store_url
from tests.support import env_for, talkgate

MIGRATIONS = {"sqlite": SQLITE_MIGRATIONS, "postgres": POSTGRES_MIGRATIONS}
# `serve` wants keys before it looks at the store.
SOME_KEYS = json.dumps([{"name": "a", "sha256": "0" * 64, "scopes": ["talks:read"]}])


@pytest.fixture(params=BACKENDS)
async def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(backend, the environment of a talkgate command on a store not made yet)."""
    url = await empty_store_url(request.param, tmp_path, request)
    return request.param, env_for(tmp_path, TALKGATE_DATABASE_URL=url)


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    run = talkgate(tmp_path, "--version")
    assert run.returncode == 0
    assert run.stdout == f"talkgate {VERSION}\n"


def test_migrate_has_help(tmp_path: Path) -> None:
    run = talkgate(tmp_path, "migrate", "--help")
    assert run.returncode == 0
    assert "--check" in run.stdout
    assert "TALKGATE_AUTO_MIGRATE" in run.stdout


def test_check_lists_what_is_pending_then_migrate_applies_it(
    tmp_path: Path, store_env: tuple[str, dict[str, str]]
) -> None:
    backend, env = store_env
    migrations = MIGRATIONS[backend]
    check = talkgate(tmp_path, "migrate", "--check", env=env)
    assert check.returncode == 1, check.stderr
    lines = check.stdout.splitlines()
    assert lines[0].endswith(f"schema version 0 of {len(migrations)}")
    assert lines[1] == f"{len(migrations)} pending:"
    assert lines[2:] == [f"  {n}. {m.summary}" for n, m in enumerate(migrations, start=1)]
    assert not (tmp_path / "cli.db").exists()  # checking made nothing

    done = talkgate(tmp_path, "migrate", env=env)
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith(f"applied {len(migrations)} migrations in ")
    assert last.endswith(f"schema version {len(migrations)} of {len(migrations)}")

    again = talkgate(tmp_path, "migrate", "--check", env=env)
    assert again.returncode == 0
    assert again.stdout.splitlines()[1:] == ["no migration pending"]
    assert talkgate(tmp_path, "migrate", env=env).returncode == 0  # nothing to do, no error


def test_a_store_of_a_newer_talkgate_is_refused_in_one_line_and_left_unchanged(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path)
    assert talkgate(tmp_path, "migrate", env=env).returncode == 0
    path = tmp_path / "cli.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA user_version = {len(SQLITE_MIGRATIONS) + 1:d}")
        connection.commit()
    (tmp_path / "one.json").write_text("{}")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in (("migrate",), ("migrate", "--check"), ("serve",), ("ingest", "one.json")):
        run = talkgate(tmp_path, *args, env={**env, "TALKGATE_API_KEYS": SOME_KEYS})
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        [line] = run.stderr.splitlines()
        assert "newer than this talkgate's" in line
        assert "the store was not changed" in line
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("command", ["serve", "ingest"])
def test_without_auto_migrate_a_store_with_pending_migrations_is_refused(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "one.json").write_text("{}")
    env = env_for(
        tmp_path,
        TALKGATE_AUTO_MIGRATE="false",
        TALKGATE_API_KEYS=SOME_KEYS,
    )
    args = ("serve", "--port", "0") if command == "serve" else ("ingest", "one.json")
    run = talkgate(tmp_path, *args, env=env)
    assert run.returncode == 2, run.stdout
    assert run.stderr.splitlines() == [
        f"talkgate: the store sqlite:///{tmp_path / 'cli.db'} has {len(SQLITE_MIGRATIONS)}"
        f" pending migrations (schema version 0 of {len(SQLITE_MIGRATIONS)}) and"
        " TALKGATE_AUTO_MIGRATE is false: run `talkgate migrate` first"
    ]
    assert not (tmp_path / "cli.db").exists()
