"""The `talkgate` command: serve, ingest, schema, keys, and the operator's commands
(gateway/operations/)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from gateway import VERSION
from gateway.garbage import collect_less
from gateway.settings import SCOPES, Settings
from gateway.startup import StartupError


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        _fail(f"invalid setting TALKGATE_{where.upper()}: {first['msg']}")
    return settings.model_copy(update=overrides) if overrides else settings


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"talkgate: {message}", file=sys.stderr)
    raise SystemExit(code)


def _fail_to_start(problem: StartupError, debug: bool) -> NoReturn:
    """A start-up mistake's one line, and exit 2; its traceback first when debugging."""
    if debug:
        traceback.print_exception(problem.__cause__ or problem, file=sys.stderr)
    _fail(str(problem))


def _debugging(args: argparse.Namespace, settings: Settings) -> bool:
    return bool(args.debug) or settings.log_level.upper() == "DEBUG"


# -- serve ----------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.demo:
        overrides["demo"] = True
    if args.debug:
        overrides["log_level"] = "DEBUG"
    settings = _settings(**overrides)
    from gateway.auth import is_loopback

    if settings.demo and not is_loopback(settings.host):
        _fail(
            f"--demo opens access without keys: it listens on localhost only, not {settings.host}"
        )
    reset = _demo_files(settings) if args.reset else None
    if not settings.demo and not settings.api_keys:
        _fail(
            "no API keys configured: set TALKGATE_API_KEYS (make one with 'talkgate keys new'),"
            " or try 'talkgate serve --demo'"
        )
    if args.workers > 1:
        _serve_workers(settings, args.workers, _debugging(args, settings))

    import uvicorn

    from gateway.graphql.persisted import ManifestError
    from gateway.http.app import create_app
    from gateway.http.server import uvicorn_config
    from gateway.logs import configure_logging

    sock = _ready_to_serve(settings, _debugging(args, settings), reset=reset)
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except ManifestError as exc:
        _fail(str(exc))
    if settings.demo:
        host, port = settings.host, sock.getsockname()[1]
        base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        print(
            f"talkgate demo: sample talks loaded; open access from this machine.\n"
            f"  explorer: {base}/explorer\n"
            f"  GraphiQL: {base}/graphql\n"
            f"  demo key (all scopes, this run only): {app.state.demo_key}\n"
            f"  webhook:  POST {base}/webhooks/talks\n"
            f"  Talk.me sandbox agents: 1001, 1002 and 1003, password demo-password",
            file=sys.stderr,
            flush=True,
        )
    collect_less()
    server = uvicorn.Server(uvicorn_config(app, settings))
    with sock, contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)  # uvicorn's exit status for a start-up failure


def _demo_files(settings: Settings) -> list[Path]:
    """`serve --demo --reset`: the demo's SQLite file and its journal files, which
    `_ready_to_serve` deletes once the port is bound (so that a reset while another demo
    serves on that port deletes nothing), and the demo starts again from its sample talks
    alone. Only for the demo, only for SQLite."""
    from gateway.storage.sqlite import sqlite_path

    if not settings.demo:
        _fail("--reset is for the demo: it deletes the demo's store (use it with --demo)")
    if not settings.database_url.startswith("sqlite:///"):
        _fail(
            "--reset deletes the demo's SQLite file, and TALKGATE_DATABASE_URL is not a SQLite"
            " URL: empty that store yourself, or name a sqlite:/// file for the demo"
        )
    path = Path(sqlite_path(settings.database_url))
    if path.is_dir():
        _fail(f"--reset: the SQLite path {path} is a directory, not the demo's file")
    return [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))]


def _ready_to_serve(
    settings: Settings, debug: bool, *, reset: list[Path] | None = None
) -> socket.socket:
    """The checks before serving, each mistake one line and exit 2 (gateway.startup): the
    drivers the settings need, the port (bound and listening here, and the socket returned
    for the server, so nothing is announced before it is bound), the files of `reset`
    deleted, then the store, opened once and closed."""
    from gateway.startup import check_driver, check_store, listen

    try:
        if settings.redis_url is not None:
            check_driver("redis")
        sock = listen(settings.host, settings.port)
    except StartupError as problem:
        _fail_to_start(problem, debug)
    for name in reset or ():
        try:
            name.unlink(missing_ok=True)
        except OSError as exc:
            sock.close()
            _fail(f"--reset cannot delete {name} ({exc.strerror or exc}): delete it yourself")
    try:
        asyncio.run(check_store(settings.database_url, migrate=settings.auto_migrate))
    except StartupError as problem:
        sock.close()
        _fail_to_start(problem, debug)
    return sock


def _serve_workers(settings: Settings, workers: int, debug: bool) -> NoReturn:
    if settings.demo:
        _fail(
            "--demo runs in one process (its sample store, sandbox and key are made per"
            " process): leave out --workers"
        )
    if settings.metrics_port is not None:
        _fail(
            "TALKGATE_METRICS_PORT is one port for one process: with --workers, leave it unset"
            " and scrape /metrics on the main port (any worker answers for all)"
        )
    from gateway.graphql.persisted import ManifestError, PersistedQueryPolicy
    from gateway.logs import configure_logging
    from gateway.replicas.workers import serve_workers

    try:  # here, where it can be one line, rather than N tracebacks from the workers
        PersistedQueryPolicy.from_settings(settings)
    except ManifestError as exc:
        _fail(str(exc))
    sock = _ready_to_serve(settings, debug)
    configure_logging(settings.log_level)
    with sock:
        raise SystemExit(serve_workers(settings, workers, sock))


# -- ingest ---------------------------------------------------------------------------------


def ingest(args: argparse.Namespace) -> None:
    from gateway.ingest.files import default_workers, ingest_files

    workers: int = args.workers or default_workers()
    paths = [Path(p) for p in args.files]
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        _fail(
            f"{', '.join(folders)}: a directory, not a file; name the files in it"
            f" (talkgate ingest {folders[0].rstrip('/')}/*.json)"
        )
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        _fail(f"no such file: {', '.join(missing)}")
    settings = _settings(**({"log_level": "DEBUG"} if args.debug else {}))
    from gateway.logs import configure_logging
    from gateway.startup import check_driver, shown_url

    # Rejections are reported in the summary; the log keeps only what goes wrong beyond that.
    configure_logging("DEBUG" if args.debug else "ERROR")
    start = time.perf_counter()
    collect_less()
    try:
        if settings.redis_url is not None:
            check_driver("redis")
        tally = asyncio.run(ingest_files(settings, paths, args.batch, workers))
    except StartupError as problem:
        _fail_to_start(problem, _debugging(args, settings))
    except BrokenProcessPool:
        _fail(
            "ingest stopped: a worker process checking the talks died; the talks stored so far"
            " are kept, and running the same command again finishes the job",
            code=3,
        )
    elapsed = time.perf_counter() - start
    for line in tally.rejections[:10]:
        print(f"  rejected: {line}", file=sys.stderr)
    if len(tally.rejections) > 10:
        print(f"  ... and {len(tally.rejections) - 10} more rejections", file=sys.stderr)
    print(
        f"accepted {tally.accepted}, duplicates {tally.duplicates}, rejected {tally.rejected}"
        f" (kept as dead letters), talks changed {tally.changed}, in {elapsed:.1f}s,"
        f" into {shown_url(settings.database_url)}"
    )
    if tally.rejected:
        raise SystemExit(1)


# -- schema, keys ---------------------------------------------------------------------------


def schema(args: argparse.Namespace) -> None:
    from gateway.graphql.schema_assembly import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")


def keys_new(args: argparse.Namespace) -> None:
    from gateway.auth import key_digest, new_key

    scopes = sorted({s.strip() for s in args.scopes.split(",") if s.strip()})
    unknown = sorted(set(scopes) - SCOPES)
    if unknown or not scopes:
        _fail(f"unknown or no scopes {unknown}; choose from {', '.join(sorted(SCOPES))}")
    key = new_key()
    entry = {"name": args.name, "sha256": key_digest(key), "scopes": scopes}
    print(f"key (shown once, give it to the client): {key}")
    print(f"entry for TALKGATE_API_KEYS: {json.dumps(entry)}")


def migrate(args: argparse.Namespace) -> None:
    from gateway.operations.migrate import migrate as run

    _run_operation(args, lambda settings: run(settings.database_url, check=args.check))


def backup(args: argparse.Namespace) -> None:
    from gateway.operations.backup import backup as run

    _run_operation(args, lambda settings: run(settings.database_url, Path(args.path)))


def restore(args: argparse.Namespace) -> None:
    from gateway.operations.backup import restore as run

    _run_operation(args, lambda settings: run(settings.database_url, Path(args.path)))


def purge(args: argparse.Namespace) -> None:
    from gateway.operations.purge import purge as run

    _run_operation(args, lambda settings: run(settings, before=args.before, dry=args.dry_run))


def copy(args: argparse.Namespace) -> None:
    from gateway.operations.copy import copy as run

    _run_operation(args, lambda settings: run(settings, args.to))


def dead_letters_list(args: argparse.Namespace) -> None:
    from gateway.operations.dead_letters import list_letters

    _run_operation(args, lambda s: list_letters(s, reason=args.reason, limit=args.limit))


def dead_letters_replay(args: argparse.Namespace) -> None:
    from gateway.operations.dead_letters import replay

    if bool(args.id) == args.all:
        _fail("dead-letters replay: give --id N (one or more) or --all")
    _run_operation(args, lambda s: replay(s, ids=args.id or [], every=args.all, reason=args.reason))


def _run_operation(
    args: argparse.Namespace, operation: Callable[[Settings], Coroutine[Any, Any, int]]
) -> NoReturn:
    """An operator's command on the configured store: its exit code, or a start-up mistake's
    one line and exit 2."""
    settings = _settings()
    try:
        code = asyncio.run(operation(settings))
    except StartupError as problem:
        _fail_to_start(problem, _debugging(args, settings))
    raise SystemExit(code)


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"talkgate {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    _serving_commands(commands)
    _operator_commands(commands)
    return parser


def _serving_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """serve, ingest, schema and keys."""
    p = commands.add_parser("serve", help="run the gateway")
    p.add_argument("--demo", action="store_true", help="sample talks, open access on localhost")
    p.add_argument(
        "--reset",
        action="store_true",
        help="with --demo: delete the demo's SQLite file first, so it starts from the samples only",
    )
    p.add_argument("--host", default=None, help="overrides TALKGATE_HOST")
    p.add_argument("--port", type=int, default=None, help="overrides TALKGATE_PORT")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help=(
            "processes answering on the port (default 1). They share the store; events reach"
            " subscribers on every worker, through Redis when TALKGATE_REDIS_URL is set. Without"
            " Redis each worker keeps its own rate limits (up to N times the limit in all)."
            " Not with --demo or TALKGATE_METRICS_PORT"
        ),
    )
    p.add_argument(
        "--debug", action="store_true", help="log at DEBUG, with the traceback of a start-up error"
    )
    p.set_defaults(run=serve)

    p = commands.add_parser("ingest", help="load talk payloads from JSON or NDJSON files")
    p.add_argument("files", nargs="+", help="JSON (one talk or an array) or NDJSON files")
    p.add_argument("--batch", type=int, default=500, help="talks per transaction")
    p.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="processes that parse and validate talks (default: the CPUs, at most 2)",
    )
    p.add_argument(
        "--debug", action="store_true", help="log at DEBUG, with the traceback of a start-up error"
    )
    p.set_defaults(run=ingest)

    p = commands.add_parser("schema", help="print the GraphQL SDL")
    p.set_defaults(run=schema)

    p = commands.add_parser("keys", help="manage API keys")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("new", help="make a new API key")
    k.add_argument("--name", required=True)
    k.add_argument("--scopes", required=True, help="comma-separated, e.g. talks:read")
    k.set_defaults(run=keys_new)


def _operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The operator's commands over a store (gateway/operations/)."""
    p = commands.add_parser(
        "migrate",
        help="bring the store's schema to this talkgate's, then exit",
        description=(
            "Apply the store's pending migrations (TALKGATE_DATABASE_URL) and exit. `serve`"
            " migrates by itself unless TALKGATE_AUTO_MIGRATE=false; with replicas, migrate"
            " once, then roll them. A store written by a newer talkgate is refused, unchanged."
        ),
    )
    p.add_argument(
        "--check", action="store_true", help="change nothing: list what is pending, exit 1 if any"
    )
    p.add_argument("--debug", action="store_true", help="the traceback of a start-up error too")
    p.set_defaults(run=migrate)

    p = commands.add_parser(
        "backup",
        help="copy the SQLite store to a file while serve runs",
        description=(
            "Write a consistent copy of the SQLite store (TALKGATE_DATABASE_URL) to PATH, one"
            " file, while serve keeps running. For PostgreSQL use pg_dump (operator guide)."
        ),
    )
    p.add_argument("path", help="the backup file to write (it must not exist)")
    p.add_argument("--debug", action="store_true", help="the traceback of a failure too")
    p.set_defaults(run=backup)

    p = commands.add_parser(
        "restore",
        help="replace the SQLite store by a backup (no process may have it open)",
        description=(
            "Replace the SQLite store (TALKGATE_DATABASE_URL) by the backup at PATH. Refused,"
            " changing nothing, while another process (a serve) has the store open."
        ),
    )
    p.add_argument("path", help="a file `talkgate backup` wrote")
    p.add_argument("--debug", action="store_true", help="the traceback of a failure too")
    p.set_defaults(run=restore)

    p = commands.add_parser(
        "copy",
        help="copy the store into an empty one (SQLite to PostgreSQL)",
        description=(
            "Copy the store (TALKGATE_DATABASE_URL) into the empty store at --to: the delivery"
            " log through ingest's checks and merge, dead letters, queue statuses and login"
            " links. The copy answers the same queries. Stop serve first, or deliveries that"
            " arrive meanwhile stay behind."
        ),
    )
    p.add_argument("--to", required=True, help="the empty store, e.g. postgresql://...")
    p.add_argument("--debug", action="store_true", help="the traceback of a failure too")
    p.set_defaults(run=copy)
    _dead_letter_commands(commands)


def _dead_letter_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """dead-letters list and dead-letters replay; purge."""
    p = commands.add_parser(
        "purge",
        help="remove talks finished before a date, and what only they held",
        description=(
            "Remove the talks finished before --before with their messages, events and search"
            " words, the raw deliveries and the customers and agents left with no talk, and"
            " the dead letters received before it. `serve` does it daily when"
            " TALKGATE_RETENTION_DAYS is set."
        ),
    )
    p.add_argument(
        "--before",
        required=True,
        help="a date (its midnight in TALKGATE_SOURCE_TIMEZONE) or an ISO 8601 date and time",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    p.add_argument("--debug", action="store_true", help="the traceback of a failure too")
    p.set_defaults(run=purge)

    p = commands.add_parser(
        "dead-letters",
        help="list the bodies talkgate refused, or replay them through ingest",
        description=(
            "The dead letters: bodies the webhook or `ingest` refused, kept with their reason."
            " `replay` sends bodies through the webhook's ingest again (after a parser fix):"
            " accepted ones become deliveries and leave the dead letters; refused ones stay,"
            " with their new reason."
        ),
    )
    letters = p.add_subparsers(dest="dead_letters_command", required=True)
    d = letters.add_parser("list", help="the most recent dead letters, with their reasons")
    d.add_argument("--reason", help="only those whose reason contains this (any case)")
    d.add_argument("--limit", type=_positive, default=50, help="how many (default 50)")
    d.add_argument("--debug", action="store_true", help="the traceback of a failure too")
    d.set_defaults(run=dead_letters_list)
    d = letters.add_parser(
        "replay",
        help="send dead letters through ingest again",
        description=(
            "Send each chosen dead letter's body through the webhook's ingest again. Exit 0"
            " when every one was accepted, 1 when some were refused again."
        ),
    )
    d.add_argument("--id", type=_positive, action="append", help="a dead letter (repeatable)")
    d.add_argument("--all", action="store_true", help="every dead letter")
    d.add_argument("--reason", help="with --all: only those whose reason contains this")
    d.add_argument("--debug", action="store_true", help="the traceback of a failure too")
    d.set_defaults(run=dead_letters_replay)


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
