"""The ruler (bench/ruler.py) against a real server: wrk sends what the Load says, numbered
bodies are each sent once, the answers it counts as bad are the bad ones, and the CPU it
reports is the server's. No figure here is asserted against a speed: only what the ruler
says it sent, saw and read."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.ruler import ID_MARK, Load, Measure, Wrk
from tests.backends import unavailable

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    base: str
    pid: int

    def seen(self) -> list[str]:
        return list(httpx.get(f"{self.base}/seen").json())

    def forget(self) -> None:
        httpx.post(f"{self.base}/forget")


@pytest.fixture(scope="module")
def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        unavailable("wrk is absent: install Debian's wrk (apt-get install wrk)")
    return found


@pytest.fixture(scope="module")
def target(wrk_binary: str) -> Iterator[Target]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - uvicorn on our own test app
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.ruler_target:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the ruler's target did not start")
        yield Target(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def numbers(bodies: list[str]) -> list[int]:
    return [int(n) for body in bodies for n in re.findall(r"n=(\d+)", body)]


def numbered(first_id: int, span: int | None = None, *, wraps: bool = False) -> Load:
    bodies = [f"a n={ID_MARK};".encode(), f"b n={ID_MARK};".encode()]
    return Load("/sink", bodies, numbered=True, first_id=first_id, span=span, wraps=wraps)


def test_numbered_bodies_are_each_sent_once_and_runs_go_on_numbering(target: Target) -> None:
    wrk = Wrk(connections=2)
    target.forget()
    load = numbered(first_id=1_000)
    first = wrk.run(target.base, target.pid, load, 1)
    second = wrk.run(target.base, target.pid, load, 1)
    seen = numbers(target.seen())
    # Every number once, all past first_id: the second run did not start again. (wrk asks
    # the script for one request it never sends, so a number or two may be missing.)
    assert len(seen) == len(set(seen))
    assert 1_000 < min(seen) <= 1_002
    # wrk counts answers; the server may have been sent a few more when the run stopped.
    assert first.requests + second.requests <= len(seen)
    assert len(seen) <= first.requests + second.requests + 2 * wrk.connections
    # The templates take turns: a number's body comes from its template.
    for body in target.seen():
        number = numbers([body])[0]
        assert body.startswith("a " if (number - 1_000) % 2 == 1 else "b ")


def test_a_bounded_span_starts_again_for_a_floor_and_fails_for_the_gateway(
    target: Target,
) -> None:
    wrk = Wrk(connections=1)
    target.forget()
    wrk.run(target.base, target.pid, numbered(first_id=10, span=5, wraps=True), 1)
    seen = numbers(target.seen())
    assert set(seen) == {11, 12, 13, 14, 15}
    with pytest.raises(RuntimeError, match="sent twice"):
        wrk.run(target.base, target.pid, numbered(first_id=20, span=5), 1)


def test_listed_bodies_go_in_turn(target: Target) -> None:
    wrk = Wrk(connections=1)
    target.forget()
    got = wrk.run(target.base, target.pid, Load("/sink", [b"one", b"two", b"three"]), 1)
    bodies = target.seen()
    assert got.requests >= 3
    following = {"one": "two", "two": "three", "three": "one"}
    assert all(following[a] == b for a, b in itertools.pairwise(bodies))


@pytest.mark.parametrize(
    ("body", "check_errors", "all_bad"),
    [
        (b"fine", True, False),
        (b"fail", False, True),  # a status other than the expected one
        (b"errs", True, True),  # 200, but the answer holds "errors"
        (b"errs", False, False),  # errors not looked for
    ],
)
def test_answers_it_counts_as_bad_are_the_bad_ones(
    target: Target, body: bytes, check_errors: bool, all_bad: bool
) -> None:
    got = Wrk(connections=2).run(
        target.base, target.pid, Load("/sink", [body], check_errors=check_errors), 1
    )
    assert got.requests > 0
    assert got.bad == (got.requests if all_bad else 0)


def test_it_reads_the_servers_cpu_and_its_own(target: Target) -> None:
    got = Wrk(connections=2).run(target.base, target.pid, Load("/sink", [b"fine"]), 2)
    # The server answered every request with its own CPU: some of it is on record, and
    # less than it had (two CPUs at most for the run).
    assert 0 < got.server_cpu < 2 * got.seconds + 1
    assert got.client_cpu > 0
    assert got.server_cpu_per_request > 0


def test_a_run_is_client_bound_when_wrk_is_busy_and_the_server_is_not() -> None:
    assert Measure(seconds=1, server_cpu=0.5, client_cpu=0.95).client_bound
    assert not Measure(seconds=1, server_cpu=0.99, client_cpu=0.95).client_bound
    assert not Measure(seconds=1, server_cpu=0.5, client_cpu=0.5).client_bound


def test_a_load_refuses_what_wrk_cannot_send() -> None:
    with pytest.raises(ValueError, match="one line"):
        Load("/sink", [b"two\nlines"])
    with pytest.raises(ValueError, match="each hold"):
        Load("/sink", [b"no mark"], numbered=True)
    with pytest.raises(ValueError, match="at least one"):
        Load("/sink", [ID_MARK.encode()], numbered=True, span=0)
    with pytest.raises(ValueError, match="at least one body"):
        Load("/sink", [])
