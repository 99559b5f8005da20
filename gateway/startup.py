"""Start-up mistakes as one line each: what is wrong and what to do about it.

`talkgate serve` and `talkgate ingest` meet the same mistakes before they do any work: a
store URL whose driver is not installed, a PostgreSQL server that is not there, a database or
role it does not know, a SQLite path that cannot be written, a port another process holds.
Each becomes a `StartupError` whose message is that one line; the command prints it and exits
2 (`gateway.cli`). Nothing here prints or exits, and no message holds a password: URLs are
shown by `shown_url`.

The checks run before the server starts: the port is bound here and handed to uvicorn (so
the banner is printed only once it is bound), and the store is opened once and closed (so a
store mistake is never a traceback from inside the application's lifespan).
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gateway.storage import open_store
from gateway.storage.migrations import StoreSchemaError
from gateway.storage.protocol import StoreUnavailable, TalkStore

DATABASE_SETTING = "TALKGATE_DATABASE_URL"
_DRIVERS = {
    "asyncpg": ("TALKGATE_DATABASE_URL is a PostgreSQL URL", "postgres"),
    "redis": ("TALKGATE_REDIS_URL is set", "redis"),
}


class StartupError(Exception):
    """A start-up mistake; its message is the one line a user reads."""


# Query parameters a driver takes a secret from (asyncpg: `?password=`).
_SECRET_PARAMETERS = frozenset({"password", "passfile", "sslpassword", "sslkey"})


def shown_url(url: str) -> str:
    """`url` as it may be printed: its password, in the user part or in the query, replaced
    by ***."""
    parts = urlsplit(url)
    shown = url  # edited as text: urlunsplit would drop sqlite:///'s empty host
    if parts.password is not None:
        shown = shown.replace(f":{parts.password}@", ":***@", 1)
    if parts.query:
        base, _, rest = shown.partition("?")
        query, hash_mark, fragment = rest.partition("#")
        pairs = [pair.partition("=") for pair in query.split("&")]
        query = "&".join(
            f"{name}={'***' if unquote(name).lower() in _SECRET_PARAMETERS else value}"
            if equals
            else name
            for name, equals, value in pairs
        )
        shown = f"{base}?{query}{hash_mark}{fragment}"
    return shown


def missing_driver(exc: ModuleNotFoundError) -> StartupError | None:
    """The line for a store or broker driver that is not installed; None for another module."""
    known = _DRIVERS.get((exc.name or "").partition(".")[0])
    if known is None:
        return None
    why, extra = known
    return StartupError(
        f"{why}, but its driver ({exc.name}) is not installed: pip install 'talkgate[{extra}]'"
    )


def check_driver(module: str) -> None:
    """StartupError (`missing_driver`) unless `module` can be imported."""
    try:
        __import__(module)
    except ModuleNotFoundError as exc:
        problem = missing_driver(exc)
        if problem is None:
            raise
        raise problem from exc


def store_at(url: str, *, doc_cache_mb: int = 32) -> TalkStore:
    """The store at `url`, not opened; StartupError when its driver is not installed."""
    try:
        return open_store(url, doc_cache_mb=doc_cache_mb)
    except ModuleNotFoundError as exc:
        problem = missing_driver(exc)
        if problem is None:
            raise
        raise problem from exc


@contextmanager
def store_problems(url: str, setting: str = DATABASE_SETTING) -> Iterator[None]:
    """What opening or reading the store at `url` raises, as a StartupError with its line;
    `setting` is where the URL came from (what the line says to fix)."""
    try:
        yield
    except StoreSchemaError as exc:
        raise StartupError(exc.at(f"the store {shown_url(url)}")) from exc
    except (StoreUnavailable, OSError, sqlite3.Error) as exc:
        raise store_problem(url, exc, setting) from exc
    except (ValueError, OverflowError) as exc:  # the driver refused the URL's own parts
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StartupError(
            f"{setting} is not a URL the driver can use ({reason}): see {shown_url(url)}"
        ) from exc
    except Exception as exc:
        if type(exc).__name__ not in ("ClientConfigurationError", "InterfaceError"):
            raise
        raise StartupError(
            f"{setting} is not a URL the driver can use ({exc}): see {shown_url(url)}"
        ) from exc


async def opened_store(
    url: str, *, doc_cache_mb: int = 32, migrate: bool = True, setting: str = DATABASE_SETTING
) -> TalkStore:
    """The store at `url`, opened (its file or tables made, as the server would make them,
    unless not `migrate`); StartupError with the line for what stopped it, naming `setting`
    as where the URL came from."""
    store = store_at(url, doc_cache_mb=doc_cache_mb)
    with store_problems(url, setting):
        await store.open(migrate=migrate)
    return store


async def check_store(url: str, *, migrate: bool = True) -> None:
    """`opened_store`, closed again: what `serve` checks before it starts."""
    store = await opened_store(url, doc_cache_mb=0, migrate=migrate)
    await store.close()


def store_problem(url: str, exc: BaseException, setting: str = DATABASE_SETTING) -> StartupError:
    """The line for a store at `url` (given in `setting`) that could not be opened with
    `exc`."""
    cause = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ else exc
    if url.startswith("sqlite:///"):
        return _sqlite_problem(url.removeprefix("sqlite:///"), cause, setting)
    return _postgres_problem(url, cause, setting)


def _sqlite_problem(name: str, cause: BaseException, setting: str) -> StartupError:
    path = Path(name)
    where = f"the SQLite file {path}"
    fix = f"name a file in a directory this user can write in {setting}"
    try:
        if path.is_dir():
            return StartupError(f"{where} is a directory: {fix}")
        # The nearest directory that exists: the file, its -wal and -shm files, and any
        # missing directories are made there.
        parent = next((p for p in (path.parent, *path.parent.parents) if p.is_dir()), None)
        denied = (path.exists() and not os.access(path, os.W_OK)) or (
            parent is not None and not os.access(parent, os.W_OK)
        )
    except PermissionError:  # a directory on the way that this user may not look into
        denied = True
    if denied or isinstance(cause, PermissionError):
        return StartupError(f"{where} cannot be written (permission denied): {fix}")
    if isinstance(cause, OSError) and cause.strerror:
        return StartupError(f"{where} cannot be made ({cause.strerror.lower()}): {fix}")
    reason = str(cause).removeprefix("SQLite: ") or type(cause).__name__
    return StartupError(f"{where} cannot be opened ({reason}): {fix}")


def _postgres_problem(url: str, cause: BaseException, setting: str) -> StartupError:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    database = unquote(parts.path.lstrip("/")) or unquote(parts.username or "") or "postgres"
    role = unquote(parts.username or "") or os.environ.get("USER", "")
    at = f"PostgreSQL at {host}:{port}"
    kind = type(cause).__name__
    if kind == "InvalidCatalogNameError":
        return StartupError(
            f"{at} has no database {database!r}: create it (createdb -h {host} -p {port}"
            f" {database}) or name another in {setting}"
        )
    if kind in ("InvalidAuthorizationSpecificationError", "InvalidPasswordError"):
        said = str(cause).rstrip(".")
        return StartupError(
            f"{at} refused role {role!r} ({said}): create the role or give another user and"
            f" password in {setting}"
        )
    if isinstance(cause, socket.gaierror):
        return StartupError(f"{at}: no such host {host!r}: check the host in {setting}")
    if isinstance(cause, (OSError, TimeoutError)):
        number = getattr(cause, "errno", None)
        reason = os.strerror(number) if number else str(cause) or "no answer in time"
        return StartupError(
            f"{at} cannot be reached ({reason.lower()}): start it, or fix the host and port in"
            f" {setting}"
        )
    reason = str(cause).removeprefix("PostgreSQL: ") or kind
    return StartupError(f"{at} could not be used ({reason}): check {setting}")


# uvicorn's default backlog; its server listens on the socket again with its own.
BACKLOG = 2048


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` and listening, as uvicorn makes one, for uvicorn
    to serve on; StartupError when the address cannot be taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening at once: two sockets with SO_REUSEADDR may both bind one address until
        # one of them listens, and a second `serve` would find out only inside uvicorn.
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise _address_problem(host, port, exc) from exc
    sock.set_inheritable(True)
    return sock


def _address_problem(host: str, port: int, exc: OSError) -> StartupError:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    choose = "choose another with --port or TALKGATE_PORT"
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"port {port} is in use on {host} (another server?): {choose}")
    if exc.errno == errno.EACCES:
        return StartupError(f"listening on {address} is not permitted for this user: {choose}")
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"cannot listen on {address}: {host!r} is not an address of this machine; set"
            " --host or TALKGATE_HOST"
        )
    reason = (exc.strerror or str(exc)).lower()
    return StartupError(f"cannot listen on {address} ({reason}): {choose}")
