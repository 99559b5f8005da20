"""The `talkgate` command: serve, ingest, schema, keys."""

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
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson
from pydantic import ValidationError

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
        asyncio.run(check_store(settings.database_url))
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


@dataclass
class _Tally:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    changed: int = 0
    rejections: list[str] = field(default_factory=list)


class _Progress:
    """A progress bar on a terminal; a line every few seconds elsewhere."""

    def __init__(self, total_bytes: int, stream: IO[str]) -> None:
        self.total = max(total_bytes, 1)
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.perf_counter()
        self.last = self.start

    def update(self, done_bytes: int, items: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        fraction = min(done_bytes / self.total, 1.0)
        rate = items / max(now - self.start, 1e-9)
        if self.tty:
            bar = "#" * int(fraction * 30)
            self.stream.write(f"\r[{bar:<30}] {fraction:6.1%}  {items} talks  {rate:,.0f}/s")
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(f"ingest: {fraction:6.1%}  {items} talks  {rate:,.0f}/s\n")
        self.stream.flush()


_READ_BLOCK = 4 << 20


def _bodies(path: Path) -> Iterator[tuple[bytes, str, int]]:
    """(body, source, bytes consumed so far) for each talk in a JSON or NDJSON file."""
    # Read in large blocks: each read lets go of the GIL, and the store's writer thread may
    # keep it a whole switch interval before this thread has it back.
    with path.open("rb", buffering=_READ_BLOCK) as handle:
        first_line = handle.readline()
        handle.seek(0)
        head = first_line.strip()
        ndjson = False
        if head.startswith(b"{"):
            try:
                orjson.loads(head)
                ndjson = True
            except orjson.JSONDecodeError:
                ndjson = False
        if ndjson:
            consumed = 0
            for number, line in enumerate(handle, start=1):
                consumed += len(line)
                if line.strip():
                    yield line.strip(), f"file:{path.name}:{number}", consumed
            return
        raw = handle.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Not JSON as a whole: ingest it as one body so it is dead-lettered with its reason.
        yield raw, f"file:{path.name}", len(raw)
        return
    items = data if isinstance(data, list) and data else [data]
    for index, item in enumerate(items):
        consumed = len(raw) * (index + 1) // len(items)
        yield _encoded(item), f"file:{path.name}[{index}]", consumed


def _encoded(item: object) -> bytes:
    """One talk of a JSON array file as a body of its own: orjson's text, or for a talk nested
    past the 254 levels orjson encodes, the standard library's (it is refused for its depth
    and kept as a dead letter, as the webhook keeps it)."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 4000))  # orjson decodes at most 1,024 levels
        try:
            return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        finally:
            sys.setrecursionlimit(limit)


async def _ingest_files(
    settings: Settings, paths: Sequence[Path], batch: int, workers: int
) -> _Tally:
    from gateway.ingest.ingestor import Body, BodyRejected, Ingestor
    from gateway.ingest.workers import CheckPool, decode
    from gateway.startup import opened_store
    from gateway.storage.records import DeliveryOutcome

    store = await opened_store(settings.database_url)
    tally = _Tally()
    announcer = _announcer(settings)
    try:
        # With Redis, running servers hear of the changed talks, as from their own webhook.
        ingestor = Ingestor(
            store,
            settings.zone,
            announcer.broker if announcer else None,
            max_depth=settings.max_json_depth,
        )
        total = sum(p.stat().st_size for p in paths)
        progress = _Progress(total, sys.stderr)
        done_before = 0
        pending: list[Body] = []
        items = 0
        # Batches are checked (parsed, validated) by worker processes while this one stores
        # earlier batches, in file order. A few batches at most are in hand, so memory stays
        # bounded: a batch being stored, one decoded before it is, one per worker and one more.
        checking: deque[tuple[list[Body], asyncio.Future[str]]] = deque()
        storing: asyncio.Task[list[DeliveryOutcome | BodyRejected]] | None = None

        def count(outcomes: list[DeliveryOutcome | BodyRejected]) -> None:
            for outcome in outcomes:
                if isinstance(outcome, BodyRejected):
                    tally.rejected += 1
                    tally.rejections.append(
                        f"{outcome.reason} (dead letter {outcome.dead_letter_id})"
                    )
                elif outcome.duplicate:
                    tally.duplicates += 1
                else:
                    tally.accepted += 1
                    tally.changed += len(outcome.changed_ids)

        async def store_oldest() -> None:
            nonlocal storing
            bodies, answer = checking.popleft()
            # Decoded while the store's writer thread stores the batch before it.
            checks = decode(await answer)
            task = asyncio.create_task(ingestor.ingest_checked(bodies, checks))
            previous, storing = storing, task
            if previous is not None:
                count(await previous)

        async def flush() -> None:
            nonlocal pending
            checking.append((pending, pool.check([body.raw for body in pending])))
            pending = []
            if len(checking) > workers + 1:
                await store_oldest()

        with CheckPool(settings.zone, workers, settings.max_json_depth) as pool:
            try:
                for path in paths:
                    consumed = 0
                    for body, source, consumed in _bodies(path):
                        pending.append(Body(body, source))
                        items += 1
                        if len(pending) >= batch:
                            await flush()
                        progress.update(done_before + consumed, items)
                    done_before += path.stat().st_size
                if pending:
                    await flush()
                while checking:
                    await store_oldest()
                if storing is not None:
                    count(await storing)
                    storing = None
            finally:
                for _, answer in checking:  # a failure above: these batches are dropped
                    _discard(answer)
                if storing is not None:  # let the batch in hand finish first
                    await asyncio.gather(storing, return_exceptions=True)
        progress.update(total, items, final=True)
    finally:
        await store.close()
        if announcer is not None:
            await announcer.client.aclose()
    return tally


def _discard(answer: asyncio.Future[Any]) -> None:
    """Drop a worker's answer nobody will wait for, without a 'never retrieved' warning."""
    if answer.done() and not answer.cancelled():
        answer.exception()
    else:
        answer.cancel()


def _default_workers() -> int:
    """A worker per CPU this process may use; one or two.

    A worker checks a talk in more CPU time than this process takes to store it. Workers
    run at a lower priority (`WORKER_NICENESS`), so on two CPUs two of them use what this
    process leaves of both without ever slowing it; more would only take memory (some
    60 MB each).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 2))


@dataclass
class _Announcer:
    client: Any
    broker: Any


def _announcer(settings: Settings) -> _Announcer | None:
    """A publish-only broker on TALKGATE_REDIS_URL, if set."""
    if settings.redis_url is None:
        return None
    from redis.asyncio import Redis

    from gateway.replicas.pubsub import LocalFanout
    from gateway.replicas.redis_shared import RedisBroker

    client = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=2.0)
    return _Announcer(client, RedisBroker(client, LocalFanout()))


def ingest(args: argparse.Namespace) -> None:
    workers: int = args.workers or _default_workers()
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
        tally = asyncio.run(_ingest_files(settings, paths, args.batch, workers))
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
    commands = parser.add_subparsers(dest="command", required=True)

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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
