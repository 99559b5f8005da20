"""`talkgate ingest` checks talks in worker processes: the same outcomes, in file order."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.ingest.coercers import DEFAULT_ZONE
from gateway.ingest.ingestor import Invalid, Valid, check_body
from gateway.ingest.workers import WORKER_NICENESS, _check_batch, decode
from gateway.storage.records import TalkQuery
from tests.factories import snapshot, talk
from tests.support import env_for, open_cli_store, talkgate


def ndjson(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("workers", ["1", "3"])
async def test_bodies_are_stored_in_file_order_across_batches(tmp_path: Path, workers: str) -> None:
    # Talk 7 arrives nine times, unchanged but for its tracking number: every snapshot has
    # the same rank but its arrival, so the last line wins only if stored last.
    lines = [orjson.dumps(snapshot(7, [1, 2], tracking_number=f"SNAPSHOT{n}")) for n in range(9)]
    path = ndjson(tmp_path / "talks.ndjson", lines)

    result = talkgate(tmp_path, "ingest", "--batch", "2", "--workers", workers, str(path))

    assert result.returncode == 0, result.stderr
    assert "accepted 9, duplicates 0, rejected 0" in result.stdout
    store = await open_cli_store(tmp_path)
    try:
        assert await store.raw_deliveries(talk_id=7) == lines
        assert (await store.talks_by_id([7]))[7]["tracking_number"] == "SNAPSHOT8"
    finally:
        await store.close()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_good_duplicate_and_bad_bodies_count_and_dead_letter_as_before(
    tmp_path: Path, workers: str
) -> None:
    good = [orjson.dumps(talk(i)) for i in range(1, 6)]
    not_json = b"{not json"
    not_a_talk = orjson.dumps({"id": "x"})
    lines = [good[0], not_json, good[1], good[0], good[2], not_a_talk, good[3], good[4], good[1]]
    path = ndjson(tmp_path / "mixed.ndjson", lines)

    result = talkgate(tmp_path, "ingest", "--batch", "3", "--workers", workers, str(path))

    assert result.returncode == 1  # some bodies were rejected
    assert "accepted 5, duplicates 2, rejected 2 (kept as dead letters)" in result.stdout
    assert "talks changed 5" in result.stdout
    assert "the body is not JSON (dead letter 1)" in result.stderr
    assert "the body is not a valid talk (dead letter 2)" in result.stderr
    store = await open_cli_store(tmp_path)
    try:
        assert (await store.count_talks(query=TalkQuery()))[None] == 5
        letters = sorted(await store.dead_letters(), key=lambda letter: letter.id)
        assert [(d.source, d.body) for d in letters] == [
            ("file:mixed.ndjson:2", not_json),
            ("file:mixed.ndjson:6", not_a_talk),
        ]
        assert letters[1].errors  # the validation errors are kept with the body
    finally:
        await store.close()


def test_a_json_array_file_is_checked_by_the_workers_too(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_bytes(orjson.dumps([talk(1), {"id": "x"}, talk(2)]))
    result = talkgate(tmp_path, "ingest", "--workers", "2", "--batch", "1", str(path))
    assert result.returncode == 1
    assert "accepted 2, duplicates 0, rejected 1" in result.stdout


@pytest.mark.parametrize(
    ("workers", "reason"), [("0", "must be at least 1, not 0"), ("two", "not a whole number")]
)
def test_workers_must_be_a_whole_number_from_one(tmp_path: Path, workers: str, reason: str) -> None:
    path = ndjson(tmp_path / "talks.ndjson", [orjson.dumps(talk(1))])
    result = talkgate(tmp_path, "ingest", "--workers", workers, str(path))
    assert result.returncode == 2
    assert reason in result.stderr


def _worker_of(pid: int) -> int | None:
    """The pid of a spawned worker process of `pid`, once there is one."""
    workers = _workers_of(pid)
    return workers[0] if workers else None


def _workers_of(pid: int) -> list[int]:
    """The pids of the spawned worker processes of `pid`."""
    workers = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in command:
                workers.append(int(child))
    return workers


@contextlib.contextmanager
def _ingesting(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`talkgate ingest` of 3,000 talks in batches of 50, running; killed if it still runs
    when the block ends."""
    path = ndjson(tmp_path / "talks.ndjson", [orjson.dumps(talk(i)) for i in range(1, 3001)])
    process = subprocess.Popen(  # noqa: S603 - our own console entry point
        [sys.executable, "-m", "gateway.cli", "ingest", "--batch", "50", str(path)],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_that_dies_stops_the_ingest_with_a_reason(tmp_path: Path) -> None:
    with _ingesting(tmp_path) as process:
        deadline = time.monotonic() + 30
        worker = None
        while worker is None and process.poll() is None and time.monotonic() < deadline:
            worker = _worker_of(process.pid)
            time.sleep(0.005)
        assert worker is not None, "no worker process appeared"
        os.kill(worker, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 3, stderr
    assert "a worker process checking the talks died" in stderr
    assert "accepted" not in stdout  # no summary: the ingest did not finish


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_ingest_is_killed(tmp_path: Path) -> None:
    # Whatever ends the ingest, no worker is left waiting for work (and holding its pipes).
    with _ingesting(tmp_path) as process:
        deadline = time.monotonic() + 30
        while not _workers_of(process.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.5)  # past their start
        workers = _workers_of(process.pid)
        assert workers, "no worker process appeared"
        process.kill()
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_state(w) not in ("gone", "Z") for w in workers):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        alive = [w for w in workers if _state(w) not in ("gone", "Z")]
        for worker in alive:
            os.kill(worker, signal.SIGKILL)
        process.communicate(timeout=30)

    assert not alive, "workers outlived the ingest that started them"


def _state(pid: int) -> str:
    with contextlib.suppress(FileNotFoundError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[0]
    return "gone"


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])  # the 19th field, after the name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_run_at_a_lower_priority_than_the_storing_process(tmp_path: Path) -> None:
    # The storing process must never wait for a CPU the workers hold: they take what it leaves.
    with _ingesting(tmp_path) as process:
        own = _niceness(process.pid)
        wanted = min(own + WORKER_NICENESS, 19)
        seen: int | None = None
        deadline = time.monotonic() + 30
        while seen != wanted and process.poll() is None and time.monotonic() < deadline:
            worker = _worker_of(process.pid)
            if worker is not None:
                with contextlib.suppress(FileNotFoundError):  # gone already
                    seen = _niceness(worker)  # the worker lowers it as it starts
            time.sleep(0.005)
        stdout, stderr = process.communicate(timeout=120)

    assert seen == wanted, f"a worker's niceness was {seen}, its parent's {own}"
    assert process.returncode == 0, stderr
    assert "accepted 3000" in stdout


def test_a_batch_decoded_from_a_worker_equals_the_checks_made_here(tmp_path: Path) -> None:
    raws = [
        orjson.dumps(talk(1)),
        orjson.dumps([snapshot(2, [5, 6], finished=True), talk(3, customer=None)]),
        b"{not json",
        orjson.dumps({"id": "x"}),
        orjson.dumps(talk(4, latitude=-23.5, not_in_the_schema={"ratio": 7.25, "n": [1, None]})),
    ]
    expected = [check_body(raw, DEFAULT_ZONE) for raw in raws]
    assert [type(c) for c in expected] == [Valid, Valid, Invalid, Invalid, Valid]
    assert decode(_check_batch(raws, DEFAULT_ZONE, 64, str(tmp_path))) == expected
    assert list(tmp_path.iterdir()) == []  # the answer was read once, and removed
