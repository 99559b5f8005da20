"""Where store tests run: a SQLite file, or a fresh schema in a throwaway PostgreSQL database;
and the Redis server the sharing tests use.

The servers are TALKGATE_TEST_POSTGRES_URL and TALKGATE_TEST_REDIS_URL (`.ci/run` exports
them and starts the servers), or the local defaults. A test that needs one that cannot be
reached is skipped with the reason on a developer's machine, and fails in CI (`CI` set):
a skip there would prove nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from gateway.startup import shown_url as shown
from gateway.storage import TalkStore, open_store

T = TypeVar("T")

POSTGRES_URL = os.environ.get(
    "TALKGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TALKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ("sqlite", "postgres")

# What "the server is not there" looks like, as opposed to a bug in the tests.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def with_schema(url: str, schema: str) -> str:
    """`url` whose connections work in `schema` (asyncpg sends unknown query keys as settings)."""
    parts = urlsplit(url)
    query = f"{parts.query}&search_path={schema}" if parts.query else f"search_path={schema}"
    return urlunsplit(parts._replace(query=query))


def unavailable(message: str) -> NoReturn:
    """End a test that lacks something it needs (a server, a browser, a built asset): a skip
    saying why on a developer's machine, a failure in CI, which must provide it."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def node_packages(folder: Path, what: str) -> str:
    """The path of `node`, once `folder`'s npm packages are installed from its lock file
    (`npm ci`, which .ci/run runs there); `unavailable` when node, npm or they are missing."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        unavailable(f"node and npm are needed to run {what}")
    if not (folder / "node_modules" / ".package-lock.json").is_file():
        unavailable(f"{what} is not installed: cd {folder} && npm ci")
    return found


def unreachable(service: str, url: str, problem: str) -> NoReturn:
    """End a test whose `service` cannot be reached at `url` (see `unavailable`)."""
    unavailable(f"{service} not reachable at {shown(url)}: {problem}")


async def require_redis(url: str = REDIS_URL) -> None:
    """Return when Redis answers PING at `url`; else `unreachable`."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        await client.ping()
    except Exception as exc:  # any failure to reach it
        unreachable("Redis", url, f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()


def run_apart(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` on an event loop of its own thread, whatever loop this thread runs."""

    async def main() -> T:
        return await work()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


async def _execute(url: str, sql: str) -> None:
    """Run one statement on a connection of its own to `url`."""
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def create_database(admin_url: str) -> str:
    """A new, empty database on the server of `admin_url`; returns its name."""
    name = f"talkgate_test_{secrets.token_hex(6)}"
    await _execute(admin_url, f'CREATE DATABASE "{name}"')
    return name


async def drop_database(admin_url: str, name: str) -> None:
    await _execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def throwaway_database() -> Iterator[str]:
    """The URL of a new, empty database on the server of POSTGRES_URL, dropped on leaving;
    without PostgreSQL, the test skips, saying why (`unreachable`)."""
    try:
        name = run_apart(lambda: create_database(POSTGRES_URL))
    except UNREACHABLE as exc:
        unreachable("PostgreSQL", POSTGRES_URL, repr(exc))
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        run_apart(lambda: drop_database(POSTGRES_URL, name))


async def fresh_schema(database_url: str) -> str:
    """The URL of a new, empty schema in the database of `database_url`."""
    schema = f"t_{secrets.token_hex(6)}"
    await _execute(database_url, f'CREATE SCHEMA "{schema}"')
    return with_schema(database_url, schema)


async def empty_store_url(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty store of `backend`: a new SQLite file, or a new schema."""
    if backend == "sqlite":
        return f"sqlite:///{directory / f's-{secrets.token_hex(4)}.db'}"
    database_url: str = request.getfixturevalue("postgres_database")
    return await fresh_schema(database_url)


@asynccontextmanager
async def opened_store(
    backend: str, directory: Path, request: pytest.FixtureRequest
) -> AsyncIterator[TalkStore]:
    """An empty, open store of `backend`, closed on the way out."""
    store = open_store(await empty_store_url(backend, directory, request))
    await store.open()
    try:
        yield store
    finally:
        await store.close()
