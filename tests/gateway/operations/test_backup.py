"""`talkgate backup PATH` and `talkgate restore PATH` on SQLite, run as an operator runs them
(real processes against a store a served gateway writes to), and the operator guide's
pg_dump / pg_restore commands on PostgreSQL: a copy answers every query as the store it was
taken from did."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from gateway.http.app import create_app
from gateway.storage import open_store
from gateway.storage.sqlite_schema import MIGRATIONS
from tests.backends import POSTGRES_URL, create_database, drop_database, with_database
from tests.factories import talk
from tests.gateway.operations.support import answers
from tests.gateway.storage.support import delivery
from tests.support import WEBHOOK_SECRET, env_for, live_server, make_settings, talkgate


async def run(tmp_path: Path, *args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = env_for(tmp_path, TALKGATE_DATABASE_URL=url)
    return await asyncio.to_thread(talkgate, tmp_path, *args, env=env)


GUIDE = Path(__file__).resolve().parents[3] / "docs" / "operator-guide.md"


def guide_pg_commands() -> list[str]:
    """The operator guide's pg_dump and pg_restore commands, as written there."""
    chapter = GUIDE.read_text().split("## 13. Backup and restore", 1)[1]
    block = chapter.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith(("pg_dump", "pg_restore"))]


def beside(path: Path) -> list[Path]:
    return list(path.parent.glob(path.name + "-*"))


def talks_in(path: Path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as copy:
        (count,) = copy.execute("SELECT count(*) FROM talks").fetchone()
        (check,) = copy.execute("PRAGMA integrity_check").fetchone()
    assert check == "ok"
    return int(count)


async def test_a_backup_taken_while_deliveries_arrive_is_one_consistent_state(
    tmp_path: Path,
) -> None:
    live = f"sqlite:///{tmp_path / 'live.db'}"
    app = create_app(make_settings(tmp_path, database_url=live))
    async with live_server(app) as address:
        base = f"http://{address}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            headers = {"X-Webhook-Token": WEBHOOK_SECRET}
            for talk_id in range(1, 41):
                await client.post("/webhooks/talks", json=talk(talk_id), headers=headers)
            arriving = True

            async def deliveries() -> int:
                sent = 40
                while arriving:
                    sent += 1
                    await client.post("/webhooks/talks", json=talk(sent), headers=headers)
                return sent

            sender = asyncio.create_task(deliveries())
            await asyncio.sleep(0.2)
            copied = await run(tmp_path, "backup", str(tmp_path / "backup.db"), url=live)
            arriving = False
            sent = await sender
    assert copied.returncode == 0, copied.stderr
    [summary] = copied.stdout.splitlines()
    assert summary.startswith(f"backed up {live} to {tmp_path / 'backup.db'} in ")
    assert "backup: 100.0%" in copied.stderr  # its progress, then the summary
    held = talks_in(tmp_path / "backup.db")
    assert 40 <= held <= sent
    assert f": {held:,} talks, {held:,} deliveries, 0 dead letters" in summary
    assert not beside(tmp_path / "backup.db")  # one file: no -wal, no -shm

    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    put_back = await run(tmp_path, "restore", str(tmp_path / "backup.db"), url=restored)
    assert put_back.returncode == 0, put_back.stderr
    # The copy answers as the store did when the copy was taken: that is, as the live store
    # does for the same talks (every delivery here is a new talk, none changes another).
    app = create_app(make_settings(tmp_path, database_url=restored))
    async with live_server(app) as address:
        copy_answers = await answers(f"http://{address}")
    app = create_app(make_settings(tmp_path, database_url=live))
    async with live_server(app) as address:
        live_answers = await answers(f"http://{address}")
    copy_talks = [e for page in copy_answers for e in page["talks"]["edges"]]
    live_talks = {e["node"]["id"]: e for page in live_answers for e in page["talks"]["edges"]}
    assert len(copy_talks) == held
    assert all(edge == live_talks[edge["node"]["id"]] for edge in copy_talks)


async def test_restore_refuses_a_store_a_running_gateway_has_open(tmp_path: Path) -> None:
    live = f"sqlite:///{tmp_path / 'live.db'}"
    app = create_app(make_settings(tmp_path, database_url=live))
    async with live_server(app) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            headers = {"X-Webhook-Token": WEBHOOK_SECRET}
            await client.post("/webhooks/talks", json=talk(1), headers=headers)
        backup = await run(tmp_path, "backup", str(tmp_path / "one.db"), url=live)
        assert backup.returncode == 0, backup.stderr
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            await client.post("/webhooks/talks", json=talk(2), headers=headers)
        before = await answers(f"http://{address}")
        refused = await run(tmp_path, "restore", str(tmp_path / "one.db"), url=live)
        assert refused.returncode == 2
        assert refused.stderr.splitlines() == [
            f"talkgate: another process has the store {tmp_path / 'live.db'} open (a running"
            " serve?): stop it first; nothing was changed"
        ]
        assert await answers(f"http://{address}") == before
    # Stopped: the restore goes through, and the store is the backup's again (one talk).
    done = await run(tmp_path, "restore", str(tmp_path / "one.db"), url=live)
    assert done.returncode == 0, done.stderr
    assert talks_in(tmp_path / "live.db") == 1


@pytest.mark.parametrize(
    ("command", "target", "line"),
    [
        ("backup", "exists.db", "exists.db exists: name a new file (a backup never overwrites)"),
        ("restore", "missing.db", "missing.db is not a file"),
        ("restore", "not-sqlite.db", "not-sqlite.db is not a talkgate store"),
        ("restore", "newer.db", "newer.db has schema version 99, newer than this talkgate's"),
    ],
)
async def test_refusals_are_one_line(tmp_path: Path, command: str, target: str, line: str) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    opened = open_store(store)
    await opened.open()
    await opened.ingest([delivery(talk(5))])
    await opened.close()
    (tmp_path / "exists.db").write_bytes(b"precious")
    (tmp_path / "not-sqlite.db").write_bytes(b"this is no database" * 100)
    with closing(sqlite3.connect(tmp_path / "newer.db")) as newer:
        newer.execute("CREATE TABLE talks (id INTEGER)")
        newer.execute("CREATE TABLE deliveries (id INTEGER)")
        newer.execute("CREATE TABLE dead_letters (id INTEGER)")
        newer.execute("PRAGMA user_version = 99")
        newer.commit()
    before = (tmp_path / "store.db").read_bytes()
    result = await run(tmp_path, command, str(tmp_path / target), url=store)
    assert result.returncode == 2
    [shown] = result.stderr.splitlines()
    assert shown.startswith("talkgate: ")
    assert line in shown
    assert (tmp_path / "exists.db").read_bytes() == b"precious"
    assert (tmp_path / "store.db").read_bytes() == before
    assert len(MIGRATIONS) < 99


@pytest.mark.parametrize("command", ["backup", "restore"])
async def test_a_postgresql_store_is_pointed_to_pg_dump(tmp_path: Path, command: str) -> None:
    result = await run(
        tmp_path, command, str(tmp_path / "x.db"), url="postgresql://u:pw@127.0.0.1/db"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"talkgate: {command} copies a SQLite store; postgresql://u:***@127.0.0.1/db is"
        ' PostgreSQL: use pg_dump and pg_restore (docs/operator-guide.md, "Backup and restore")'
    ]


async def test_the_guide_s_pg_dump_and_pg_restore_give_a_store_that_answers_the_same(
    tmp_path: Path,
) -> None:
    try:
        names = [await create_database(POSTGRES_URL) for _ in range(2)]
    except (OSError, asyncpg.PostgresError) as exc:  # pragma: no cover - CI has PostgreSQL
        pytest.fail(f"PostgreSQL is needed: {exc!r}")
    source, target = (with_database(POSTGRES_URL, name) for name in names)
    try:
        app = create_app(make_settings(tmp_path, database_url=source))
        async with live_server(app) as address:
            async with httpx.AsyncClient(base_url=f"http://{address}") as client:
                headers = {"X-Webhook-Token": WEBHOOK_SECRET}
                for talk_id in range(1, 26):
                    await client.post("/webhooks/talks", json=talk(talk_id), headers=headers)
                await client.post("/webhooks/talks", content=b"[{", headers=headers)
            expected = await answers(f"http://{address}")
        commands = guide_pg_commands()
        assert [c.split()[0] for c in commands] == ["pg_dump", "pg_restore"]
        environment = {
            **os.environ,
            "TALKGATE_DATABASE_URL": source,
            "RESTORED_DATABASE_URL": target,
        }
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euc", "\n".join(commands)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        app = create_app(make_settings(tmp_path, database_url=target))
        async with live_server(app) as address:
            assert await answers(f"http://{address}") == expected
        assert json.dumps(expected).count('"reason"') == 1  # the dead letter came along
    finally:
        for name in names:
            await drop_database(POSTGRES_URL, name)
