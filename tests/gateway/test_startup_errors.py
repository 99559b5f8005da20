"""Start-up mistakes a user can make, each met as a user meets it: `talkgate serve` or
`talkgate ingest` run as a real process, one line on stderr naming what is wrong and what to
do, exit 2, no traceback (unless --debug), no password, and no banner before the port is
bound."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.startup import StartupError, listen, shown_url
from tests.backends import POSTGRES_URL, unavailable, with_database
from tests.support import env_for, talkgate

pytestmark = pytest.mark.slow

# A test value that must never be printed.
PASSWORD = "s3cret-in-the-url"
# A key entry, so that serving without --demo gets as far as the port.
A_KEY = '[{"name": "k", "sha256": "' + "0" * 64 + '", "scopes": ["talks:read"]}]'


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed start printed, after checking how it failed."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("talkgate: ")
    assert "explorer:" not in result.stderr + result.stdout  # no banner
    return result.stderr.strip()


def with_credentials(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_cases(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    """Store URLs a user can get wrong, and what the one line must say of each."""
    port = _free_port()  # nothing listens there
    return {
        "postgres down": (
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres",
            [f"PostgreSQL at 127.0.0.1:{port}", "cannot be reached", "connection refused"],
        ),
        "unknown database": (
            with_database(with_credentials(POSTGRES_URL, "postgres"), "talkgate_no_such_db"),
            ["has no database 'talkgate_no_such_db'", "createdb", "TALKGATE_DATABASE_URL"],
        ),
        "unknown role": (
            with_credentials(POSTGRES_URL, "talkgate_no_such_role"),
            ["refused role 'talkgate_no_such_role'", "does not exist", "TALKGATE_DATABASE_URL"],
        ),
        "unknown host": (
            f"postgres://postgres:{PASSWORD}@talkgate-no-such-host.invalid:5432/x",
            ["no such host 'talkgate-no-such-host.invalid'", "TALKGATE_DATABASE_URL"],
        ),
        "sqlite path is a directory": (
            f"sqlite:///{tmp_path}",
            [f"the SQLite file {tmp_path} is a directory", "TALKGATE_DATABASE_URL"],
        ),
        "sqlite path cannot be made": (
            "sqlite:////proc/talkgate/talks.db",
            ["the SQLite file /proc/talkgate/talks.db cannot be", "TALKGATE_DATABASE_URL"],
        ),
    }


CASES = [
    "postgres down",
    "unknown database",
    "unknown role",
    "unknown host",
    "sqlite path is a directory",
    "sqlite path cannot be made",
]


@pytest.fixture
def postgres_up() -> None:
    """The PostgreSQL cases that need a server to say no need it to be there."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
    except OSError as exc:
        unavailable(f"PostgreSQL is not listening on 127.0.0.1:5432: {exc}")


@pytest.mark.usefixtures("postgres_up")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["serve", "ingest"])
def test_a_store_mistake_is_one_line_naming_it(tmp_path: Path, case: str, command: str) -> None:
    url, says = store_cases(tmp_path)[case]
    env = env_for(tmp_path, TALKGATE_DATABASE_URL=url)
    if command == "serve":
        result = talkgate(tmp_path, "serve", "--demo", "--port", "0", env=env)
    else:
        talks = tmp_path / "talks.json"
        talks.write_text("{}")
        result = talkgate(tmp_path, "ingest", str(talks), env=env)
    line = one_line(result)
    for part in says:
        assert part in line


def test_debug_shows_the_traceback_before_the_line(tmp_path: Path) -> None:
    env = env_for(tmp_path, TALKGATE_DATABASE_URL=f"sqlite:///{tmp_path}")
    result = talkgate(tmp_path, "serve", "--demo", "--port", "0", "--debug", env=env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("talkgate: the SQLite file")


@pytest.fixture
def without_asyncpg(tmp_path: Path) -> str:
    """A PYTHONPATH on which `import asyncpg` fails as it does where it is not installed."""
    shim = tmp_path / "shim" / "asyncpg"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'asyncpg'\", name='asyncpg')\n"
    )
    return str(shim.parent)


@pytest.mark.parametrize("command", ["serve", "ingest"])
def test_a_postgres_url_without_its_driver_says_what_to_install(
    tmp_path: Path, without_asyncpg: str, command: str
) -> None:
    env = env_for(
        tmp_path,
        TALKGATE_DATABASE_URL=with_credentials(POSTGRES_URL, "postgres"),
        PYTHONPATH=without_asyncpg,
    )
    talks = tmp_path / "talks.json"
    talks.write_text("{}")
    args = ["serve", "--demo", "--port", "0"] if command == "serve" else ["ingest", str(talks)]
    line = one_line(talkgate(tmp_path, *args, env=env))
    assert "pip install 'talkgate[postgres]'" in line


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_and_no_banner(
    tmp_path: Path, held_port: int, workers: str
) -> None:
    args = ["serve", "--port", str(held_port), "--workers", workers]
    env = env_for(tmp_path)
    if workers == "1":
        args.append("--demo")
    else:  # --workers is not for the demo: give it a key
        env["TALKGATE_API_KEYS"] = A_KEY
    line = one_line(talkgate(tmp_path, *args, env=env))
    assert f"port {held_port} is in use on 127.0.0.1" in line
    assert "--port or TALKGATE_PORT" in line


def test_a_host_that_is_not_this_machines_is_one_line(tmp_path: Path) -> None:
    env = env_for(tmp_path, TALKGATE_API_KEYS=A_KEY)
    line = one_line(talkgate(tmp_path, "serve", "--host", "192.0.2.1", "--port", "0", env=env))
    assert "192.0.2.1" in line
    assert "TALKGATE_HOST" in line


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may look into (pytest's own are for their owner only)."""
    made = Path(tempfile.mkdtemp(prefix="talkgate-startup-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.mark.parametrize("where", ["its directory", "a directory above it"])
def test_a_sqlite_path_that_cannot_be_written_says_permission_denied(
    tmp_path: Path, open_dir: Path, where: str
) -> None:
    locked = open_dir / "locked"
    locked.mkdir()
    if where == "a directory above it":
        locked.chmod(0o700)  # another user may not even look in
        locked = locked / "below"
        locked.mkdir()
    else:
        locked.chmod(0o555)
    url = f"sqlite:///{locked / 'talks.db'}"
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", "0"]
    if os.geteuid() != 0 and where == "a directory above it":
        (open_dir / "locked").chmod(0o000)
    if os.geteuid() == 0:  # root writes anywhere: run as nobody, as a service would run
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            unavailable("setpriv (util-linux) is needed to run the check as another user")
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    env = env_for(tmp_path, TALKGATE_DATABASE_URL=url, HOME=str(open_dir))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    try:
        result = subprocess.run(  # noqa: S603 - our own entry point
            argv, cwd=open_dir, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        (open_dir / "locked").chmod(0o755)  # for the clean-up
    line = one_line(result)
    assert f"the SQLite file {locked / 'talks.db'} cannot be written (permission denied)" in line


def test_ingest_of_a_directory_says_it_is_one(tmp_path: Path) -> None:
    line = one_line(talkgate(tmp_path, "ingest", str(tmp_path)))
    assert f"{tmp_path}: a directory, not a file" in line
    assert f"talkgate ingest {tmp_path}/*.json" in line


def test_ingest_names_the_store_it_wrote_to(tmp_path: Path) -> None:
    talks = tmp_path / "talks.json"
    talks.write_text('{"id": 1}')
    result = talkgate(tmp_path, "ingest", str(talks))
    assert f"into sqlite:///{tmp_path / 'cli.db'}" in result.stdout


def test_an_unknown_url_scheme_names_the_three_it_takes(tmp_path: Path) -> None:
    env = env_for(tmp_path, TALKGATE_DATABASE_URL="mysql://localhost/talks")
    line = one_line(talkgate(tmp_path, "serve", "--demo", env=env))
    assert "sqlite:///, postgresql:// or postgres://" in line


# -- the parts, without a process ---------------------------------------------------------


def test_shown_url_hides_only_the_password() -> None:
    assert shown_url(f"postgresql://u:{PASSWORD}@h:5/d") == "postgresql://u:***@h:5/d"
    assert shown_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert shown_url("sqlite:///./talkgate.db") == "sqlite:///./talkgate.db"


def test_listen_binds_the_port_it_is_given_and_refuses_a_taken_one() -> None:
    with listen("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        sock.listen()
        with pytest.raises(StartupError, match=f"port {port} is in use"):
            listen("127.0.0.1", port)


def test_shown_url_hides_a_password_in_the_query_too() -> None:
    url = f"postgresql://u@h/d?sslmode=require&password={PASSWORD}&passfile=/x"
    assert shown_url(url) == "postgresql://u@h/d?sslmode=require&password=***&passfile=***"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql://bob:{PASSWORD}@127.0.0.1:5432/db?sslmode=bogus", "`sslmode` parameter"),
        (f"postgresql://bob:{PASSWORD}@127.0.0.1:99999/db", "port must be 0-65535"),
    ],
)
def test_a_url_the_driver_refuses_is_one_line(tmp_path: Path, url: str, says: str) -> None:
    env = env_for(tmp_path, TALKGATE_DATABASE_URL=url)
    line = one_line(talkgate(tmp_path, "serve", "--demo", "--port", "0", env=env))
    assert "TALKGATE_DATABASE_URL is not a URL the driver can use" in line
    assert says in line


def test_a_second_server_on_a_bound_port_is_refused_before_it_announces(
    tmp_path: Path,
) -> None:
    # The first has bound (and so listens: a bound socket that does not listen yet would let
    # a second bind the same address, and fail only inside uvicorn).
    with listen("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        line = one_line(talkgate(tmp_path, "serve", "--demo", "--port", str(port)))
    assert f"port {port} is in use" in line


def test_a_reset_refused_for_its_port_deletes_nothing(tmp_path: Path, held_port: int) -> None:
    store = tmp_path / "cli.db"
    store.write_bytes(b"the running demo's file")
    result = talkgate(tmp_path, "serve", "--demo", "--reset", "--port", str(held_port))
    one_line(result)
    assert store.read_bytes() == b"the running demo's file"
