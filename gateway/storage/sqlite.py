"""The embedded store: one SQLite file in WAL mode.

One writer thread owns the only write connection (SQLite allows one writer at a time, so a
queue in front of it is cheaper than lock contention); a few reader threads each keep their
own connection, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson

from gateway.storage import cursor, merge
from gateway.storage.docs import DecodedDocs
from gateway.storage.documents import MAX_ERRORS, Doc, talk_status
from gateway.storage.migrations import SchemaState, newer_store, pending_migrations
from gateway.storage.protocol import ReadsById, StoreUnavailable, TalkGroup
from gateway.storage.records import (
    ID_CONFLICT,
    ROW_GROUP,
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    Page,
    PageRequest,
    Purged,
    Refusal,
    StoredDelivery,
    StoreOrder,
    TalkPages,
    TalkQuery,
    dead_letter_reason,
    refuse_repeats,
)
from gateway.storage.sqlite_schema import MIGRATIONS
from gateway.storage.text import bounded_search, match_words, search_key
from gateway.storage.wal import WalIndexHeader
from gateway.utc import now_iso

T = TypeVar("T")

# ORDER BY clause, keyset condition, and how many sort values the cursor carries.
_TALK_ORDERS: dict[StoreOrder, tuple[str, str, int]] = {
    StoreOrder.CREATED_AT_DESC: ("created_us DESC, id DESC", "(created_us, id) < (?, ?)", 2),
    StoreOrder.CREATED_AT_ASC: ("created_us ASC, id ASC", "(created_us, id) > (?, ?)", 2),
    StoreOrder.ID_DESC: ("id DESC", "id < ?", 1),
    StoreOrder.ID_ASC: ("id ASC", "id > ?", 1),
}
# The same orders in Python, on rows (group, created_us, id, ...): the values sorted on, and
# whether descending.
_TALK_SORTS: dict[StoreOrder, tuple[Callable[[Sequence[int]], Any], bool]] = {
    StoreOrder.CREATED_AT_DESC: (itemgetter(1, 2), True),
    StoreOrder.CREATED_AT_ASC: (itemgetter(1, 2), False),
    StoreOrder.ID_DESC: (itemgetter(2), True),
    StoreOrder.ID_ASC: (itemgetter(2), False),
}


def _joined(
    c: sqlite3.Connection, sql: str, params: Sequence[Any], columns: Sequence[str]
) -> list[list[str]]:
    """The `columns` of the rows of `sql`, as text, in no particular order, fetched in one
    step of one statement: SQLite joins the rows into one value and they are split here.

    Fetching row by row, each step lets go of the GIL and takes it back, and under load the
    event loop keeps it up to a switch interval each time: a page of 100 talks waited for it
    a hundred times. The columns are integers or JSON text, and JSON text never holds the
    separators (two control characters) unescaped. None of them may be NULL.
    """
    fields = " || char(31) || ".join(columns)
    row = c.execute(f"SELECT group_concat({fields}, char(30)) FROM ({sql})", params).fetchone()  # noqa: S608
    joined: str | None = row[0]
    return [] if joined is None else [record.split("\x1f") for record in joined.split("\x1e")]


def _integers(
    c: sqlite3.Connection, sql: str, params: Sequence[Any], columns: Sequence[str]
) -> list[list[int]]:
    """The `columns` of the rows of `sql`, integers all (none NULL), in no particular order,
    fetched in one step of one statement as `_joined` does (and for its reason), but as one
    JSON array of arrays that orjson reads as lists of ints: for a page of 100 talks this
    took a third of the CPU of `_joined`'s text, split and int() per value (~130 against
    ~360 us, as little as fetchall's row by row)."""
    fields = ", ".join(columns)
    sql = f"SELECT json_group_array(json_array({fields})) FROM ({sql})"  # noqa: S608
    rows: list[list[int]] = orjson.loads(c.execute(sql, params).fetchone()[0])
    return rows


def _micros(iso: str | None) -> int | None:
    if iso is None:
        return None
    moment = datetime.fromisoformat(iso)
    return int(moment.timestamp() * 1_000_000)


def _micros_of(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# SQLite's primary result codes that say "not now" (the file is busy, locked, full, away or
# unreadable), as opposed to a statement SQLite refuses (SQLITE_ERROR, SQLITE_TOOBIG...),
# which is no outage: reported as one, it would tell a client to retry what cannot work.
_NOT_NOW = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


def _not_now(exc: sqlite3.OperationalError) -> bool:
    """Whether `exc` says the file cannot be used now (StoreUnavailable); otherwise it is
    raised as it is, an INTERNAL_SERVER_ERROR: a statement the store should not have built,
    which the inputs' bounds (gateway/storage/text.py) keep from happening."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is None or code & 0xFF in _NOT_NOW


def sqlite_path(url: str) -> str:
    """The file path inside `sqlite:///PATH` (relative) or `sqlite:////PATH` (absolute)."""
    if not url.startswith("sqlite:///"):
        raise ValueError("a SQLite URL starts with sqlite:///")
    path = url.removeprefix("sqlite:///")
    if not path or path.startswith(":memory:"):
        raise ValueError("talkgate needs a SQLite file (WAL mode), not an in-memory database")
    return path


_GENERATION = "SELECT (SELECT id FROM store_identity), (SELECT max(seq) FROM deliveries)"

# A read on the event loop (SQLiteStore._read) may run this many times _STEPS_PER_CALL
# SQLite virtual-machine steps: about a millisecond here. A page of 100 talks with their
# customers takes a tenth of it.
_STEPS_PER_CALL = 1000
LOOP_READ_STEPS = 100
# Interrupted past the budget, or the file busy: the read goes to a reader thread.
_RETRY_ON_A_THREAD = frozenset(
    {sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
)
_TOO_LONG = object()
# What says another process holds the file (a read past the budget, SQLITE_INTERRUPT, does
# not: it only goes to a thread itself).
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL})
# A file found busy (locked by another process) sends reads to the reader threads for this
# long: there SQLite may retry and sleep for seconds, which on the loop would stall every
# request; the threads wait for the busy timeout and answer StoreUnavailable.
BUSY_PAUSE_S = 1.0
# How long opening the writer tries again while another process holds the new file's lock.
OPEN_RETRY_S = 5.0


class SQLiteStore(ReadsById):
    """TalkStore on a SQLite file."""

    def __init__(self, url: str, *, readers: int = 4, doc_cache_bytes: int = 32 * 2**20) -> None:
        self._path = sqlite_path(url)
        self._readers = readers
        # Documents of talks, messages, events, customers, agents and channels as last read.
        self.docs = DecodedDocs(doc_cache_bytes)
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._generation_reader: sqlite3.Connection | None = None
        # The loop reader's view of the commits, and the generation last read after a view.
        self._wal_header: WalIndexHeader | None = None
        self._wal_tried = False
        self._generation_seen: tuple[bytes | None, str] = (None, "")
        # Until when reads skip the event loop: the file was found busy (`BUSY_PAUSE_S`).
        self._busy_until = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        if not migrate:
            # Nothing is made or changed: a store not at this talkgate's schema is refused.
            state = await self.schema_state()
            if state.newer:
                raise newer_store(state)
            if state.pending:
                raise pending_migrations(state)
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="talkgate-sqlite-w")
        self._read_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="talkgate-sqlite-r")
        try:
            await self._write(self._open_writer)
        except BaseException:
            await self.close()
            raise

    async def schema_state(self) -> SchemaState:
        return await asyncio.to_thread(self._read_schema_state)

    def _read_schema_state(self) -> SchemaState:
        if not Path(self._path).exists():  # read without making the file
            return SchemaState.of(0, MIGRATIONS)
        connection = self._connect()
        try:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
        finally:
            connection.close()
        return SchemaState.of(int(version), MIGRATIONS)

    async def close(self) -> None:
        # Closed to reads first: a generation() while the writer closes below would map the
        # wal-index header again, past the connections it relies on.
        read_pool, self._read_pool = self._read_pool, None
        if self._wal_header is not None:  # before the connection it relies on closes
            self._wal_header.close()
        self._wal_header = None
        self._wal_tried = False
        self._generation_seen = (None, "")
        if self._write_pool is not None:
            await self._write(self._close_writer)
            self._write_pool.shutdown(wait=True)
        if read_pool is not None:
            read_pool.shutdown(wait=True)
        with self._lock:
            for connection in self._reader_connections:
                connection.close()
            self._reader_connections.clear()
        self._generation_reader = None
        # Whatever mapped the header meanwhile goes too, and the next open maps it anew.
        if self._wal_header is not None:
            self._wal_header.close()
        self._wal_header = None
        self._wal_tried = False
        self._generation_seen = (None, "")
        self._write_pool = None

    async def ping(self) -> None:
        # `SELECT 1` never opens the file: read its schema so a lock that stops readers shows.
        await self._read(
            lambda c: c.execute("SELECT count(*) FROM sqlite_master").fetchone(), on_a_thread=True
        )

    async def generation(self) -> str:
        # Deliveries are numbered by one writer in commit order (AUTOINCREMENT: never reused).
        # Read on the event loop: this runs on every cacheable request, and two index lookups
        # cost less than a hop to a reader thread. It never waits for a lock (busy_timeout 0):
        # a busy file is StoreUnavailable, and the caller goes on without the cache.
        # Between commits it is the same: while the wal-index header holds the bytes it held
        # before the generation was last read, no commit has ended since (storage/wal.py),
        # and that generation is still the store's, whoever writes (another process too).
        if self._read_pool is None:
            raise StoreUnavailable("the store is not open")
        wal = self._wal_header
        header = wal.read() if wal is not None else None
        if header is not None and header == self._generation_seen[0]:
            return self._generation_seen[1]
        try:
            reader = self._loop_reader()
            row = reader.execute(_GENERATION).fetchone()
            if wal is None and not self._wal_tried:
                # After a read: the connection has the -shm file open (and keeps it).
                self._wal_tried = True
                self._wal_header = WalIndexHeader.of(reader, self._path)
        except sqlite3.OperationalError as exc:
            self._busy_until = time.monotonic() + BUSY_PAUSE_S
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        generation = f"{row[0]}.{row[1] or 0}"
        # The header read before the statement: a commit between them changed it since.
        self._generation_seen = (header, generation)
        return generation

    def _loop_reader(self) -> sqlite3.Connection:
        if self._generation_reader is None:
            connection = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0
            )
            connection.execute("PRAGMA query_only = ON")
            with self._lock:
                self._reader_connections.append(connection)
            self._generation_reader = connection
        return self._generation_reader

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        connection.execute("PRAGMA busy_timeout = 5000")
        return connection

    def _open_writer(self) -> None:
        # Several processes opening a new file at once (`serve --workers N`): the switch to
        # WAL takes the file's exclusive lock, for which SQLite does not always wait (it
        # answers BUSY at once rather than risk a deadlock), so it is tried again here, for
        # as long as the busy timeout would have waited.
        deadline = time.monotonic() + OPEN_RETRY_S
        while True:
            connection = self._connect()
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                # FULL: a 202 promises the delivery survives a power cut, not only a crash.
                connection.execute("PRAGMA synchronous = FULL")
                self._migrate(connection)
            except sqlite3.OperationalError as exc:
                connection.close()
                code = getattr(exc, "sqlite_errorcode", None)
                busy = code is not None and code & 0xFF in _BUSY
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            self._writer = connection
            return

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.execute("PRAGMA optimize")
            self._writer.close()
            self._writer = None

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        """Bring the file to the latest schema; a file of a newer schema is refused as it is.
        Several processes may open a new file at once (`serve --workers N`): each step reads
        the version under the write lock, so a step another process has just applied is not
        applied again."""
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise newer_store(SchemaState.of(version, MIGRATIONS))
        while version < len(MIGRATIONS):
            connection.execute("BEGIN IMMEDIATE")
            try:
                (version,) = connection.execute("PRAGMA user_version").fetchone()
                if version < len(MIGRATIONS):
                    for statement in _statements(MIGRATIONS[version].sql):
                        connection.execute(statement)
                    version += 1
                    connection.execute(f"PRAGMA user_version = {version:d}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            connection.execute("PRAGMA query_only = ON")
            self._local.connection = connection
            with self._lock:
                self._reader_connections.append(connection)
        return connection

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        if self._write_pool is None:
            raise StoreUnavailable("the store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._write_pool, partial(work, *args))
        except sqlite3.OperationalError as exc:
            if _not_now(exc):
                raise StoreUnavailable(f"SQLite: {exc}") from exc
            raise

    async def _read(
        self, work: Callable[[sqlite3.Connection], T], *, on_a_thread: bool = False
    ) -> T:
        """`work` on a reader connection: first on the event loop within a budget of
        SQLite steps (`_on_the_loop`), else, past the budget, on a reader thread. Counts and
        the health check ask for a thread (`on_a_thread`): SQLite counts a table's rows in
        one step, which the budget cannot interrupt, and a health check may wait on a lock.
        Every read goes to a thread for BUSY_PAUSE_S after the file was found busy.

        Most reads are a page or a batch by index: a few hundred microseconds. Handing one
        to a thread and back cost more than the read itself (65 µs of CPU for the hop alone
        on the CI machines, and the GIL's handover on top: a cold one-talk page took 0.81 ms
        through a thread and 0.60 on the loop). A read that scans (a count, a filter no
        index serves) is interrupted at the budget and runs on a thread, so it never holds
        the loop for more than about a millisecond of SQLite work."""
        if self._read_pool is None:
            raise StoreUnavailable("the store is not open")
        threaded = on_a_thread or time.monotonic() < self._busy_until
        quick = _TOO_LONG if threaded else self._on_the_loop(work)
        if quick is not _TOO_LONG:
            return cast("T", quick)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_pool, lambda: work(self._reader()))
        except sqlite3.OperationalError as exc:
            if _not_now(exc):
                raise StoreUnavailable(f"SQLite: {exc}") from exc
            raise

    def _on_the_loop(self, work: Callable[[sqlite3.Connection], T]) -> T | object:
        """`work` on the loop's own reader connection; _TOO_LONG when it took more than
        LOOP_READ_STEPS (it is then interrupted, and nothing it did is kept: reads only) or
        the file was busy (that connection does not wait: the reader threads' do)."""
        connection = self._loop_reader()
        left = LOOP_READ_STEPS

        def step() -> bool:
            nonlocal left
            left -= 1
            return left < 0  # true interrupts the statement

        connection.set_progress_handler(step, _STEPS_PER_CALL)
        try:
            return work(connection)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _BUSY:
                self._busy_until = time.monotonic() + BUSY_PAUSE_S
            if code is not None and code & 0xFF in _RETRY_ON_A_THREAD:
                return _TOO_LONG
            if _not_now(exc):
                raise StoreUnavailable(f"SQLite: {exc}") from exc
            raise
        finally:
            connection.set_progress_handler(None, 0)
            if connection.in_transaction:  # interrupted inside _consistently's BEGIN
                connection.execute("ROLLBACK")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._writer
        if connection is None:
            raise StoreUnavailable("the store is not open")
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- writes ----------------------------------------------------------------------------

    async def ingest(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        return await self._write(self._ingest, deliveries)

    def _ingest(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        received_at = now_iso()
        with self._transaction() as c:
            accepted: list[tuple[int, Delivery, int]] = []
            outcomes: list[DeliveryOutcome] = []
            for index, delivery in enumerate(deliveries):
                # A known key, or a body received before under any key, is a redelivery.
                inserted = c.execute(
                    "INSERT INTO deliveries (key, source, received_at, body_sha256, body)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING seq",
                    (
                        delivery.key,
                        delivery.source,
                        received_at,
                        delivery.body_sha256,
                        delivery.body,
                    ),
                ).fetchone()
                talk_ids = [t.id for t in delivery.talks]
                outcomes.append(DeliveryOutcome(delivery.key, inserted is None, talk_ids, []))
                if inserted is not None:
                    accepted.append((index, delivery, inserted[0]))
            if not accepted:
                return outcomes
            # The whole batch is planned from a few bulk reads and written with a few bulk
            # statements: the snapshots merge in arrival order as if stored one at a time.
            batch = merge.Batch()
            _load(c, batch, merge.wanted(t for _, d, _ in accepted for t in d.talks))
            stored: list[tuple[int, Delivery, int]] = []
            for index, delivery, sequence in accepted:
                errors, count = batch.id_conflicts(delivery.talks, MAX_ERRORS)
                if count:
                    c.execute("DELETE FROM deliveries WHERE seq = ?", (sequence,))
                    outcomes[index] = self._refuse(c, delivery, outcomes[index], errors, count)
                    continue
                stored.append((index, delivery, sequence))
                outcomes[index].changed_ids.extend(batch.merge_body(delivery.talks, sequence))
            refuse_repeats(deliveries, outcomes)
            _insert_rows(
                c,
                "delivery_talks",
                ("seq", "talk_id"),
                sorted({(s, t.id) for _, d, s in stored for t in d.talks}),
                " ON CONFLICT DO NOTHING",
            )
            self._write_batch(c, batch)
        return outcomes

    @staticmethod
    def _refuse(
        c: sqlite3.Connection,
        delivery: Delivery,
        outcome: DeliveryOutcome,
        errors: list[dict[str, str]],
        count: int,
    ) -> DeliveryOutcome:
        """`delivery` dead-lettered for the id conflicts found (`merge.Batch.id_conflicts`)."""
        reason = dead_letter_reason(ID_CONFLICT, len(errors), count)
        dead_letter_id = _add_dead_letter(
            c, delivery.source, reason, errors, delivery.body, len(delivery.body), False
        )
        refusal = Refusal(ID_CONFLICT, errors, count, dead_letter_id)
        return DeliveryOutcome(outcome.key, False, outcome.talk_ids, [], refusal)

    def _write_batch(self, c: sqlite3.Connection, batch: merge.Batch) -> None:
        """Write the rows a batch left changed, each once, in id order."""
        new_talks: list[tuple[Any, ...]] = []
        full: list[tuple[Any, ...]] = []
        ranked: list[tuple[Any, ...]] = []
        for talk_id, talk in sorted(batch.talks.items()):
            if not talk.dirty:
                continue
            ranks = _rank_columns(talk.rank)
            if not talk.stored:
                assert talk.source is not None
                columns = self._talk_columns(talk.source.doc.fields)
                new_talks.append((talk_id, *columns, *ranks, talk.version, talk.doc))
            elif talk.source is not None:
                columns = self._talk_columns(talk.source.doc.fields)
                full.append((*columns, *ranks, talk.version, talk.doc, talk_id))
            else:
                ranked.append((*ranks, talk.version, talk_id))
        _insert_rows(c, "talks", _TALK_COLUMNS, new_talks)
        _update_rows(
            c,
            "UPDATE talks SET customer_id = ?, agent_id = ?, queue_id = ?, channel_id = ?,"
            " tracking_number = ?, external_protocol = ?, created_us = ?, status = ?,"
            " was_success = ?, is_critical = ?, rank_finished = ?, rank_message = ?,"
            " rank_arrival = ?, version = ?, doc = ? WHERE id = ?",
            full,
        )
        _update_rows(
            c,
            "UPDATE talks SET rank_finished = ?, rank_message = ?, rank_arrival = ?,"
            " version = ? WHERE id = ?",
            ranked,
        )

        def message(row_id: int, row: merge.RankedRow) -> tuple[Any, ...]:
            item = row.item
            assert item is not None
            return (row.talk_id, item.fields["user_id"], item.fields["message"])

        _write_ranked(c, "messages", _MESSAGE_COLUMNS, batch.messages, message)
        _write_ranked(c, "events", _EVENT_COLUMNS, batch.events, lambda i, r: (r.talk_id,))

        def customer(row_id: int, row: merge.DocRow) -> tuple[Any, ...]:
            if row.item is None:
                return (row_id, None, None, None, 1, row.version, row.doc)
            name = row.item.fields["name"]
            external_id = row.item.fields["external_id"]
            return (row_id, name, search_key(name), external_id, 0, row.version, row.doc)

        _write_documents(c, "customers", _CUSTOMER_COLUMNS, batch.customers, customer)

        def agent(row_id: int, row: merge.DocRow) -> tuple[Any, ...]:
            if row.item is None:
                return (row_id, None, 1, row.doc)
            return (row_id, row.item.fields["login"], 0, row.doc)

        _write_documents(c, "agents", _AGENT_COLUMNS, batch.agents, agent)
        _write_documents(c, "channels", ("id", "doc"), batch.channels, lambda i, r: (i, r.doc))

    @staticmethod
    def _talk_columns(fields: Doc) -> tuple[Any, ...]:
        """The talk's columns, from its `Document.fields`."""
        return (
            fields["customer_id"],
            fields["agent_id"],
            fields["queue_id"],
            fields["channel_id"],
            fields["tracking_number"],
            fields["external_protocol"],
            _micros(fields["created_at"]),
            talk_status(fields),
            int(bool(fields["was_success"])),
            int(bool(fields["is_critical"])),
        )

    async def add_dead_letter(
        self,
        *,
        source: str,
        reason: str,
        errors: list[dict[str, str]],
        body: bytes,
        body_size: int,
        truncated: bool = False,
        received_at: str | None = None,
    ) -> int:
        def work() -> int:
            with self._transaction() as c:
                return _add_dead_letter(
                    c, source, reason, errors, body, body_size, truncated, received_at
                )

        return await self._write(work)

    # -- reads -----------------------------------------------------------------------------

    async def dead_letters(
        self, *, limit: int = 100, before_id: int | None = None, reason: str | None = None
    ) -> list[DeadLetter]:
        where, params = _dead_letter_filter(before_id, reason)
        # Fixed fragments only; the values are parameters.
        sql = f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters{where} ORDER BY id DESC LIMIT ?"  # noqa: S608

        def work(c: sqlite3.Connection) -> list[DeadLetter]:
            return [_dead_letter(r) for r in c.execute(sql, (*params, limit)).fetchall()]

        return await self._read(work)

    async def count_dead_letters(self, *, reason: str | None = None) -> int:
        where, params = _dead_letter_filter(None, reason)
        sql = f"SELECT count(*) FROM dead_letters{where}"  # noqa: S608 - fixed fragments

        def work(c: sqlite3.Connection) -> int:
            return int(c.execute(sql, params).fetchone()[0])

        return await self._read(work)

    async def dead_letters_by_id(self, ids: Sequence[int]) -> list[DeadLetter]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []

        def work(c: sqlite3.Connection) -> list[DeadLetter]:
            found: dict[int, DeadLetter] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id IN ({marks})"  # noqa: S608
                found.update((r[0], _dead_letter(r)) for r in c.execute(sql, chunk))
            return [found[i] for i in wanted if i in found]

        return await self._read(work)

    async def update_dead_letter(
        self, letter_id: int, *, reason: str, errors: list[dict[str, str]]
    ) -> None:
        def work() -> None:
            with self._transaction() as c:
                c.execute(
                    "UPDATE dead_letters SET reason = ?, errors = ? WHERE id = ?",
                    (reason, orjson.dumps(errors).decode(), letter_id),
                )

        await self._write(work)

    async def remove_dead_letters(self, ids: Sequence[int]) -> int:
        wanted = list(dict.fromkeys(ids))

        def work() -> int:
            removed = 0
            with self._transaction() as c:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = f"DELETE FROM dead_letters WHERE id IN ({marks})"  # noqa: S608
                    removed += c.execute(sql, chunk).rowcount
            return removed

        return await self._write(work) if wanted else 0

    async def raw_deliveries(self, *, talk_id: int) -> list[bytes]:
        def work(c: sqlite3.Connection) -> list[bytes]:
            rows = c.execute(
                "SELECT d.body FROM delivery_talks dt JOIN deliveries d ON d.seq = dt.seq"
                " WHERE dt.talk_id = ? ORDER BY dt.seq",
                (talk_id,),
            ).fetchall()
            return [bytes(r[0]) for r in rows]

        return await self._read(work)

    async def purge(self, *, before: str, limit: int | None = 500, dry: bool = False) -> Purged:
        def work() -> Purged:
            connection = self._writer
            if connection is None:
                raise StoreUnavailable("the store is not open")
            # Freed content is overwritten with zeros, not only unlinked (a purge or an
            # erasure leaves nothing to find in the file).
            connection.execute("PRAGMA secure_delete = ON")
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    purged = _purge(connection, before, None if dry else limit)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("ROLLBACK" if dry else "COMMIT")
                if not dry and purged.messages:
                    # The text index keeps removed words in its segments until they merge.
                    connection.execute(
                        "INSERT INTO messages_fts (messages_fts) VALUES ('optimize')"
                    )
            finally:
                connection.execute("PRAGMA secure_delete = OFF")
            return purged

        return await self._write(work)

    async def count_finished_before(self, before: str) -> int:
        sql = f"SELECT count(*) FROM talks WHERE {_FINISHED_BEFORE}"  # noqa: S608 - fixed
        return await self._read(lambda c: int(c.execute(sql, (before,)).fetchone()[0]))

    async def checkpoint(self) -> None:
        """Write the WAL back into the file and empty it (after a purge: nothing of what went
        stays in the -wal file); a reader still in a transaction may keep part of it."""
        writer = self._writer
        if writer is not None:
            await self._write(lambda: writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    async def stored_deliveries(
        self, *, after_seq: int = 0, limit: int = 500
    ) -> list[StoredDelivery]:
        sql = "SELECT seq, key, source, body FROM deliveries WHERE seq > ? ORDER BY seq LIMIT ?"
        return await self._read(
            lambda c: [
                StoredDelivery(r[0], r[1], r[2], bytes(r[3]))
                for r in c.execute(sql, (after_seq, limit)).fetchall()
            ],
            on_a_thread=True,
        )

    async def count_deliveries(self) -> int:
        return await self._read(
            lambda c: int(c.execute("SELECT count(*) FROM deliveries").fetchone()[0])
        )

    async def agent_status_rows(self) -> list[tuple[str, str, str]]:
        sql = "SELECT login, status, changed_at FROM agent_status ORDER BY login"
        return await self._read(lambda c: [(r[0], r[1], r[2]) for r in c.execute(sql).fetchall()])

    async def login_rows(self, *, now: datetime) -> list[tuple[str, str, datetime]]:
        sql = "SELECT digest, sealed, expires_us FROM login_tickets WHERE expires_us >= ?"
        return await self._read(
            lambda c: [
                (r[0], r[1], datetime.fromtimestamp(r[2] / 1e6, UTC))
                for r in c.execute(sql, (_micros_of(now),)).fetchall()
            ]
        )

    async def _docs_by_id(self, table: str, ids: Sequence[int]) -> dict[int, Doc]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        if table in _VERSIONED:
            attempt = partial(self._versioned_by_id, table=table, ids=wanted)
            return await self._read(partial(_consistently, attempt))

        def work(c: sqlite3.Connection) -> dict[int, Doc]:
            marks = ",".join("?" * len(wanted))
            sql = f"SELECT id, doc FROM {table} WHERE id IN ({marks})"  # noqa: S608
            rows = _joined(c, sql, wanted, ("id", "doc"))
            decode = self.docs.decode
            return {int(i): decode(table, int(i), doc) for i, doc in rows}

        return await self._read(work)

    def _versioned_by_id(
        self, c: sqlite3.Connection, table: str, ids: Sequence[int]
    ) -> dict[int, Doc] | None:
        """The documents of `table`'s rows `ids`, read by version (see `_versioned_docs`)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        sql = f"SELECT id, version FROM {table} WHERE id IN ({marks})"  # noqa: S608
        stamps = [(i, v) for i, v in _integers(c, sql, ids, ("id", "version"))]
        return self._versioned_docs(c, table, stamps)

    def _versioned_docs(
        self,
        c: sqlite3.Connection,
        table: str,
        stamps: Sequence[tuple[int, int]],
    ) -> dict[int, Doc] | None:
        """The documents of `table`'s rows at the versions in `stamps` ((id, version) pairs
        just read): those the cache holds at that version, and the others' text read now.
        None when one of them moved to another version in between (see `_consistently`).
        Messages and events are read so by their `_STAMPS` column."""
        docs, missing = self.docs.cached_many(table, stamps)
        if not missing:
            return docs
        stamp = _STAMPS.get(table, "version")
        wanted = list(missing)
        read: list[list[str]] = []
        for start in range(0, len(wanted), _VARIABLES):
            chunk = wanted[start : start + _VARIABLES]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, {stamp}, doc FROM {table} WHERE id IN ({marks})"  # noqa: S608
            read += _joined(c, sql, chunk, ("id", stamp, "doc"))
        return self.docs.read_at(table, docs, missing, [(int(i), int(v), t) for i, v, t in read])

    async def talk_by_tracking_number(self, tracking_number: str) -> Doc | None:
        def work(c: sqlite3.Connection) -> Doc | None:
            row = c.execute(
                "SELECT doc FROM talks WHERE tracking_number = ? ORDER BY id LIMIT 1",
                (tracking_number,),
            ).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._read(work)

    async def agent_by_login(self, login: str) -> Doc | None:
        def work(c: sqlite3.Connection) -> Doc | None:
            row = c.execute(
                "SELECT doc FROM agents WHERE login = ? ORDER BY id LIMIT 1", (login,)
            ).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._read(work)

    async def talk_pages(
        self,
        *,
        query: TalkQuery,
        page: PageRequest,
        order: StoreOrder,
        group: TalkGroup | None = None,
        group_ids: Sequence[int] = (),
        with_customers: bool = False,
    ) -> dict[int | None, Page]:
        if group is not None and not group_ids:
            return {}
        kind = f"talk:{order.value}"  # the list's, whichever way the page is read
        read = page.read_order(order)
        order_by, keyset, size = _TALK_ORDERS[read]
        where, params = _talk_where(query, group, group_ids)
        if page.cursor is not None:
            where.append(keyset)
            params.extend(cursor.decode(kind, page.cursor, size))
        sql_where = " AND ".join(where) or "1"
        if group is None:
            sql = (
                f"SELECT 0 AS grp, created_us, id, version, customer_id"  # noqa: S608
                f" FROM talks WHERE {sql_where} ORDER BY {order_by} LIMIT ?"
            )
        else:
            sql = (
                f"SELECT grp, created_us, id, version, customer_id FROM (SELECT {group} AS grp,"  # noqa: S608
                f" created_us, id, version, customer_id, ROW_NUMBER() OVER (PARTITION BY"
                f" {group} ORDER BY {order_by}) AS rn FROM talks WHERE {sql_where})"
                f" WHERE rn <= ?"
            )
        params.append(page.size + 1)
        # With the customers, each talk's row brings its customer's version (-1 for none
        # stored): their documents are then read by version, with no statement of their own.
        # A join after the page's LIMIT (a lookup by primary key per row), a little cheaper
        # than the same lookup as a correlated subquery.
        owned = "-1"
        if with_customers:
            sql = (
                "SELECT p.*, ifnull(c.version, -1) AS customer_version"  # noqa: S608
                f" FROM ({sql}) AS p LEFT JOIN customers c ON c.id = p.customer_id"
            )
            owned = "customer_version"
        columns = ("grp", "created_us", "id", "version", "customer_id", owned)
        sort_key, descending = _TALK_SORTS[read]

        def attempt(c: sqlite3.Connection) -> dict[int | None, Page] | None:
            rows = _integers(c, sql, params, columns)
            # As the statement orders them: by group, then in the page's order (a stable
            # sort keeps that order within each group).
            rows.sort(key=sort_key, reverse=descending)
            if group is not None:
                rows.sort(key=ROW_GROUP)
            pages = TalkPages(page, kind, size, None if group is None else group_ids)
            pages.place(rows)
            # Of every row: the one past a full page only adds a customer read for nothing.
            owners = {row[4]: row[5] for row in rows if row[5] >= 0}
            docs = self._versioned_docs(c, "talks", pages.stamps)
            if docs is None:
                return None
            customers: dict[int, Doc] = {}
            if owners:
                try:
                    read = self._versioned_docs(c, "customers", list(owners.items()))
                except sqlite3.Error as exc:  # left to customers_by_id, which reports it
                    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT:
                        raise  # past the loop's budget: the whole read goes to a thread
                    read = {}
                if read is None:
                    return None
                customers = read
            return pages.filled(docs, customers)

        return await self._read(partial(_consistently, attempt))

    async def count_talks(
        self, *, query: TalkQuery, group: TalkGroup | None = None, group_ids: Sequence[int] = ()
    ) -> dict[int | None, int]:
        if group is not None and not group_ids:
            return {}
        where, params = _talk_where(query, group, group_ids)
        sql_where = " AND ".join(where) or "1"
        select = "NULL" if group is None else group
        sql = f"SELECT {select}, COUNT(*) FROM talks WHERE {sql_where} GROUP BY 1"  # noqa: S608

        def work(c: sqlite3.Connection) -> dict[int | None, int]:
            counts: dict[int | None, int] = (
                {None: 0} if group is None else dict.fromkeys(group_ids, 0)
            )
            counts.update({r[0]: r[1] for r in c.execute(sql, params)})
            return counts

        return await self._read(work, on_a_thread=True)

    async def message_pages(self, *, talk_ids: Sequence[int], page: PageRequest) -> dict[int, Page]:
        ids = sorted(set(talk_ids))
        if not ids:
            return {}
        params: list[Any] = list(ids)
        ascending = page.ascending(True)  # oldest first, unless read backward
        keyset = ""
        if page.cursor is not None:
            (from_id,) = cursor.decode("message", page.cursor, 1)
            keyset = " AND id > ?" if ascending else " AND id < ?"
            params.append(from_id)
        params.append(page.size + 1)
        marks = ",".join("?" * len(ids))
        # Each page's ids and stamps (`_STAMPS`); the documents come from the cache, and
        # only the text of those it does not hold at their stamp is read (`_versioned_docs`).
        sql = (
            "SELECT talk_id, id, rank_arrival FROM (SELECT talk_id, id, rank_arrival,"  # noqa: S608
            " ROW_NUMBER() OVER (PARTITION BY talk_id ORDER BY"
            f" id {'ASC' if ascending else 'DESC'}) AS rn FROM messages"
            f" WHERE talk_id IN ({marks}){keyset}) WHERE rn <= ?"
        )
        first = page.size

        def attempt(c: sqlite3.Connection) -> dict[int, Page] | None:
            rows = _integers(c, sql, params, ("talk_id", "id", "rank_arrival"))
            rows.sort(reverse=not ascending)  # by talk, then in the order read
            pages = {i: Page("message") for i in ids}
            placed: list[tuple[Page, list[list[int]]]] = []
            stamps: list[tuple[int, int]] = []
            more: set[int] = set()
            for talk_id, run in groupby(rows, _TALK_OF_ROW):
                target, taken = pages[talk_id], list(run)
                if len(taken) > first:
                    more.add(talk_id)
                    del taken[first:]
                placed.append((target, taken))
                stamps.extend(map(_ROW_STAMP, taken))
            docs = self._versioned_docs(c, "messages", stamps)
            if docs is None:
                return None
            for target, taken in placed:
                message_ids = list(map(_ROW_ID, taken))
                target.keys.extend([(message_id,) for message_id in message_ids])
                target.docs.extend(map(docs.__getitem__, message_ids))
            for talk_id, target in pages.items():
                target.settle(page, talk_id in more)
            return pages

        return await self._read(partial(_consistently, attempt))

    async def count_messages(self, talk_ids: Sequence[int]) -> dict[int, int]:
        ids = sorted(set(talk_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))

        def work(c: sqlite3.Connection) -> dict[int, int]:
            counts = dict.fromkeys(ids, 0)
            counts.update(
                c.execute(
                    f"SELECT talk_id, COUNT(*) FROM messages WHERE talk_id IN ({marks})"  # noqa: S608
                    " GROUP BY talk_id",
                    ids,
                ).fetchall()
            )
            return counts

        return await self._read(work, on_a_thread=True)

    async def events_by_talk(self, talk_ids: Sequence[int]) -> dict[int, list[Doc]]:
        ids = sorted(set(talk_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        # By stamp, as `message_pages` reads messages.
        sql = f"SELECT talk_id, id, rank_arrival FROM events WHERE talk_id IN ({marks})"  # noqa: S608

        def attempt(c: sqlite3.Connection) -> dict[int, list[Doc]] | None:
            rows = _integers(c, sql, ids, ("talk_id", "id", "rank_arrival"))
            rows.sort()  # by talk, then oldest first
            docs = self._versioned_docs(c, "events", list(map(_ROW_STAMP, rows)))
            if docs is None:
                return None
            events: dict[int, list[Doc]] = {i: [] for i in ids}
            for talk_id, run in groupby(rows, _TALK_OF_ROW):
                events[talk_id] = list(map(docs.__getitem__, map(_ROW_ID, run)))
            return events

        return await self._read(partial(_consistently, attempt))

    async def customer_page(self, *, search: str | None, page: PageRequest) -> Page:
        where, params = _customer_where(search)
        seek, order = _by_id(page)
        if page.cursor is not None:
            where.append(seek)
            params.extend(cursor.decode("customer", page.cursor, 1))
        sql_where = " AND ".join(where) or "1"
        sql = f"SELECT id, doc FROM customers WHERE {sql_where} ORDER BY {order} LIMIT ?"  # noqa: S608
        params.append(page.size + 1)
        return await self._read(lambda c: Page.of_rows("customer", c.execute(sql, params), page))

    async def count_customers(self, *, search: str | None) -> int:
        where, params = _customer_where(search)
        sql = f"SELECT COUNT(*) FROM customers WHERE {' AND '.join(where) or '1'}"  # noqa: S608
        return await self._read(
            lambda c: int(c.execute(sql, params).fetchone()[0]), on_a_thread=True
        )

    async def agent_page(self, *, page: PageRequest) -> Page:
        params: list[Any] = []
        where = "1"
        seek, order = _by_id(page)
        if page.cursor is not None:
            where = seek
            params.extend(cursor.decode("agent", page.cursor, 1))
        params.append(page.size + 1)
        sql = f"SELECT id, doc FROM agents WHERE {where} ORDER BY {order} LIMIT ?"  # noqa: S608
        return await self._read(lambda c: Page.of_rows("agent", c.execute(sql, params), page))

    async def count_agents(self) -> int:
        return await self._read(
            lambda c: int(c.execute("SELECT COUNT(*) FROM agents").fetchone()[0]), on_a_thread=True
        )

    # -- agent control ---------------------------------------------------------------------

    async def set_agent_status(self, *, login: str, status: str, changed_at: str) -> None:
        def work() -> None:
            with self._transaction() as c:
                c.execute(
                    "INSERT INTO agent_status (login, status, changed_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (login) DO UPDATE SET status = excluded.status,"
                    " changed_at = excluded.changed_at",
                    (login, status, changed_at),
                )

        await self._write(work)

    async def agent_statuses(self, logins: Sequence[str]) -> dict[str, tuple[str, str]]:
        wanted = sorted(set(logins))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        sql = f"SELECT login, status, changed_at FROM agent_status WHERE login IN ({marks})"  # noqa: S608
        return await self._read(
            lambda c: {r[0]: (r[1], r[2]) for r in c.execute(sql, wanted).fetchall()}
        )

    async def put_ticket(self, *, digest: str, sealed: str, expires_at: datetime) -> None:
        await self._put_login_row(digest, sealed, expires_at)

    async def take_ticket(self, *, digest: str, now: datetime) -> str | None:
        def work() -> str | None:
            with self._transaction() as c:
                row = c.execute(
                    "DELETE FROM login_tickets WHERE digest = ? RETURNING sealed, expires_us",
                    (digest,),
                ).fetchone()
            if row is None or row[1] < _micros_of(now):
                return None
            return str(row[0])

        return await self._write(work)

    async def put_revocation(self, *, digest: str, mark: str, expires_at: datetime) -> None:
        await self._put_login_row(digest, mark, expires_at)

    async def _put_login_row(self, digest: str, value: str, expires_at: datetime) -> None:
        """Keep `value` under `digest` until `expires_at` (tickets and revocations share the
        table); a row already there is replaced only by one that expires later. Expired rows
        are swept on the way."""
        expires_us = _micros_of(expires_at)

        def work() -> None:
            with self._transaction() as c:
                c.execute(
                    "DELETE FROM login_tickets WHERE expires_us < ?", (_micros_of(_utcnow()),)
                )
                c.execute(
                    "INSERT INTO login_tickets (digest, sealed, expires_us) VALUES (?, ?, ?)"
                    " ON CONFLICT (digest) DO UPDATE SET sealed = excluded.sealed,"
                    " expires_us = excluded.expires_us"
                    " WHERE excluded.expires_us > login_tickets.expires_us",
                    (digest, value, expires_us),
                )

        await self._write(work)

    async def revocation_marks(self, *, digests: Sequence[str], now: datetime) -> list[str]:
        wanted = sorted(set(digests))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        sql = (
            f"SELECT sealed FROM login_tickets WHERE digest IN ({marks})"  # noqa: S608
            " AND expires_us >= ?"
        )
        return await self._read(
            lambda c: [str(r[0]) for r in c.execute(sql, [*wanted, _micros_of(now)]).fetchall()]
        )


_RANK_COLUMNS = ("rank_finished", "rank_message", "rank_arrival")
_TALK_COLUMNS = (
    "id",
    "customer_id",
    "agent_id",
    "queue_id",
    "channel_id",
    "tracking_number",
    "external_protocol",
    "created_us",
    "status",
    "was_success",
    "is_critical",
    *_RANK_COLUMNS,
    "version",
    "doc",
)
# Without id, ranks and doc: the columns a message or event takes from its snapshot.
_MESSAGE_COLUMNS = ("talk_id", "user_id", "message")
_EVENT_COLUMNS = ("talk_id",)
_CUSTOMER_COLUMNS = ("id", "name", "name_key", "external_id", "stub", "version", "doc")
_AGENT_COLUMNS = ("id", "login", "stub", "doc")
# Most values one statement binds (SQLite's default limit since 3.32 is 32766).
_VARIABLES = 32_000


# Tables whose rows carry a version that moves with every change of their document
# (`merge.Batch`): their documents are cached by version, and read only when not cached.
_VERSIONED = frozenset({"talks", "customers"})
# Messages and events have no version, but their `rank_arrival` serves as one
# (`_versioned_docs`' stamp): a row's document is only ever written together with the rank
# of the snapshot it comes from, a rank only ever grows (`merge.Batch._ranked`), and the
# arrival names that snapshot alone (`merge.arrival`: its delivery's sequence, never reused
# under AUTOINCREMENT, and its place in the body), so one row holds one document per
# arrival. A rank that moves alone only costs a decode.
_STAMPS = {"messages": "rank_arrival", "events": "rank_arrival"}
# Of a row (talk id, row id, stamp): its talk, its id, its (id, stamp).
_TALK_OF_ROW = itemgetter(0)
_ROW_ID = itemgetter(1)
_ROW_STAMP = itemgetter(1, 2)


_DEAD_LETTER_COLUMNS = "id, received_at, source, reason, errors, body, body_size, truncated"


def _dead_letter(row: Sequence[Any]) -> DeadLetter:
    return DeadLetter(
        row[0], row[1], row[2], row[3], orjson.loads(row[4]), bytes(row[5]), row[6], bool(row[7])
    )


def _dead_letter_filter(before_id: int | None, reason: str | None) -> tuple[str, list[Any]]:
    """The WHERE of a read of dead letters, and its parameters."""
    terms: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        terms.append("id < ?")
        params.append(before_id)
    if reason:
        terms.append("instr(lower(reason), lower(?)) > 0")
        params.append(reason)
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


# The talks a purge before a date takes (the date a parameter).
_FINISHED_BEFORE = "json_extract(doc, '$.finished_at') < ?"
_PURGED_TALKS = """
    CREATE TEMP TABLE IF NOT EXISTS purged_talks (
        id INTEGER PRIMARY KEY, customer_id INTEGER, agent_id INTEGER
    )"""
_PURGE_STEPS = (
    # (what it counts, or None; the statement)
    (None, "CREATE TEMP TABLE IF NOT EXISTS purged_seqs (seq INTEGER PRIMARY KEY)"),
    (None, "CREATE TEMP TABLE IF NOT EXISTS purged_users (id INTEGER PRIMARY KEY)"),
    (None, "DELETE FROM purged_seqs"),
    (None, "DELETE FROM purged_users"),
    (
        None,
        "INSERT INTO purged_seqs SELECT DISTINCT seq FROM delivery_talks"
        " WHERE talk_id IN (SELECT id FROM purged_talks)",
    ),
    (
        None,
        "INSERT OR IGNORE INTO purged_users SELECT user_id FROM messages"
        " WHERE talk_id IN (SELECT id FROM purged_talks) AND user_id IS NOT NULL",
    ),
    (
        None,
        "INSERT OR IGNORE INTO purged_users SELECT agent_id FROM purged_talks"
        " WHERE agent_id IS NOT NULL",
    ),
    ("messages", "DELETE FROM messages WHERE talk_id IN (SELECT id FROM purged_talks)"),
    ("events", "DELETE FROM events WHERE talk_id IN (SELECT id FROM purged_talks)"),
    (None, "DELETE FROM delivery_talks WHERE talk_id IN (SELECT id FROM purged_talks)"),
    (
        "deliveries",
        "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM purged_seqs)"
        " AND NOT EXISTS (SELECT 1 FROM delivery_talks dt WHERE dt.seq = deliveries.seq)",
    ),
    ("talks", "DELETE FROM talks WHERE id IN (SELECT id FROM purged_talks)"),
    (
        "customers",
        "DELETE FROM customers WHERE id IN (SELECT customer_id FROM purged_talks)"
        " AND NOT EXISTS (SELECT 1 FROM talks t WHERE t.customer_id = customers.id)",
    ),
    (
        "agents",
        "DELETE FROM agents WHERE id IN (SELECT id FROM purged_users)"
        " AND NOT EXISTS (SELECT 1 FROM talks t WHERE t.agent_id = agents.id)"
        " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.user_id = agents.id)",
    ),
)


def _purge(c: sqlite3.Connection, before: str, limit: int | None) -> Purged:
    """`SQLiteStore.purge`'s statements, in the transaction `c` is in."""
    c.execute(_PURGED_TALKS)
    c.execute("DELETE FROM purged_talks")
    c.execute(
        "INSERT INTO purged_talks SELECT id, customer_id, agent_id FROM talks"  # noqa: S608
        f" WHERE {_FINISHED_BEFORE} ORDER BY id LIMIT ?",
        (before, -1 if limit is None else limit),
    )
    counts: dict[str, int] = {}
    for counted, sql in _PURGE_STEPS:
        changed = c.execute(sql).rowcount
        if counted is not None:
            counts[counted] = changed
    counts["dead_letters"] = c.execute(
        "DELETE FROM dead_letters WHERE received_at < ?", (before,)
    ).rowcount
    if any(counts.values()):
        # A new identity, so a new generation: every cached answer goes.
        c.execute("UPDATE store_identity SET id = lower(hex(randomblob(16)))")
    return Purged(**counts)


def _add_dead_letter(
    c: sqlite3.Connection,
    source: str,
    reason: str,
    errors: list[dict[str, str]],
    body: bytes,
    body_size: int,
    truncated: bool,
    received_at: str | None = None,
) -> int:
    row = c.execute(
        "INSERT INTO dead_letters (received_at, source, reason, errors, body,"
        " body_size, truncated) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            received_at or now_iso(),
            source,
            reason,
            orjson.dumps(errors).decode(),
            body,
            body_size,
            int(truncated),
        ),
    ).fetchone()
    return int(row[0])


def _consistently(attempt: Callable[[sqlite3.Connection], T | None], c: sqlite3.Connection) -> T:
    """What `attempt` reads in more than one statement, each its own read transaction: None
    when a commit came between them. Then it runs again in a single read transaction, which
    sees one state of the file throughout; never first, for BEGIN and COMMIT cost two more
    statements."""
    answer = attempt(c)
    if answer is not None:
        return answer
    c.execute("BEGIN")
    try:
        answer = attempt(c)
    finally:
        c.execute("COMMIT")
    if answer is None:
        raise AssertionError("a row moved within one read transaction")
    return answer


def _select(c: sqlite3.Connection, sql: str, ids: list[int]) -> Iterator[Any]:
    """Rows of `sql` (one `{}` where the id list goes) for `ids`, a statement per chunk."""
    for start in range(0, len(ids), _VARIABLES):
        chunk = ids[start : start + _VARIABLES]
        yield from c.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _load(c: sqlite3.Connection, batch: merge.Batch, wanted: merge.Wanted) -> None:
    """What the store holds of the rows a batch may touch."""
    for row_id, finished, message, arrival, version, doc in _select(
        c,
        "SELECT id, rank_finished, rank_message, rank_arrival, version, doc FROM talks"
        " WHERE id IN ({})",
        wanted.talks,
    ):
        rank = merge.Rank(bool(finished), message, arrival)
        batch.talks[row_id] = merge.TalkRow(rank, doc, version, True)
    for table, ids, ranked in (
        ("messages", wanted.messages, batch.messages),
        ("events", wanted.events, batch.events),
    ):
        for row_id, talk_id, finished, message, arrival, doc in _select(
            c,
            f"SELECT id, talk_id, {', '.join(_RANK_COLUMNS)}, doc FROM {table}"  # noqa: S608
            " WHERE id IN ({})",
            ids,
        ):
            rank = merge.Rank(bool(finished), message, arrival)
            ranked[row_id] = merge.RankedRow(rank, doc, talk_id, (doc, talk_id))
    for sql, ids, documents in (
        ("SELECT id, stub, version, doc FROM customers", wanted.customers, batch.customers),
        ("SELECT id, stub, 1, doc FROM agents", wanted.agents, batch.agents),
        ("SELECT id, 0, 1, doc FROM channels", wanted.channels, batch.channels),
    ):
        for row_id, stub, version, doc in _select(c, sql + " WHERE id IN ({})", ids):
            documents[row_id] = merge.DocRow(bool(stub), doc, version, True)


def _insert_rows(
    c: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    suffix: str = "",
) -> None:
    """Multi-row INSERTs: one statement runs long outside the GIL, where a statement per
    row would take it back and forth (the batch that follows is validated meanwhile)."""
    per = _VARIABLES // len(columns)
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608
    one = "(" + ",".join("?" * len(columns)) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        c.execute(head + ",".join([one] * len(chunk)) + suffix, [v for r in chunk for v in r])


def _write_ranked(
    c: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: dict[int, merge.RankedRow],
    values: Callable[[int, merge.RankedRow], tuple[Any, ...]],
) -> None:
    """Messages or events a batch changed: new rows inserted, the others updated; a row whose
    document is unchanged gets only its rank (so the text index of a message is left alone)."""
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    ranks: list[tuple[Any, ...]] = []
    for row_id, row in sorted(rows.items()):
        if not row.dirty:
            continue
        if row.original is None:
            inserts.append((row_id, *values(row_id, row), *_rank_columns(row.rank), row.doc))
        elif row.only_rank_moved:
            ranks.append((*_rank_columns(row.rank), row_id))
        else:
            updates.append((*values(row_id, row), *_rank_columns(row.rank), row.doc, row_id))
    _insert_rows(c, table, ("id", *columns, *_RANK_COLUMNS, "doc"), inserts)
    _update_rows(c, _update_sql(table, (*columns, *_RANK_COLUMNS, "doc")), updates)
    _update_rows(c, _update_sql(table, _RANK_COLUMNS), ranks)


def _write_documents(
    c: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: dict[int, merge.DocRow],
    values: Callable[[int, merge.DocRow], tuple[Any, ...]],
) -> None:
    """Customers, agents or channels a batch changed: new rows inserted, the others updated."""
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    for row_id, row in sorted(rows.items()):
        if row.dirty:
            (updates if row.stored else inserts).append(values(row_id, row))
    _insert_rows(c, table, columns, inserts)
    _update_rows(c, _update_sql(table, columns[1:]), [(*row[1:], row[0]) for row in updates])


@cache
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    """The UPDATE of `columns` of one row of `table` by id: made once, not once a batch."""
    assign = ", ".join(f"{col} = ?" for col in columns)
    return f"UPDATE {table} SET {assign} WHERE id = ?"  # noqa: S608


def _update_rows(c: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """`sql` for each of `rows`; nothing for none (even an empty run prepares and resets the
    statement, and most batches update no row of most tables)."""
    if rows:
        c.executemany(sql, rows)


def _rank_columns(rank: merge.Rank) -> tuple[int, int, int]:
    return int(rank.finished), rank.latest_message_id, rank.arrival


def _by_id(page: PageRequest) -> tuple[str, str]:
    """The keyset condition and the order of a page of a list by id, as it is read."""
    return ("id > ?", "id ASC") if page.ascending(True) else ("id < ?", "id DESC")


def _talk_where(
    query: TalkQuery, group: TalkGroup | None, group_ids: Sequence[int]
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column in (
        "customer_id",
        "agent_id",
        "queue_id",
        "channel_id",
        "tracking_number",
        "external_protocol",
        "status",
    ):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.talk_id is not None:
        where.append("id = ?")
        params.append(query.talk_id)
    for column in ("was_success", "is_critical"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(int(value))
    if query.created_from is not None:
        where.append("created_us >= ?")
        params.append(_micros_of(query.created_from))
    if query.created_to is not None:
        where.append("created_us < ?")
        params.append(_micros_of(query.created_to))
    if query.text is not None:
        for phrase in match_words(query.text):
            where.append(
                "id IN (SELECT m.talk_id FROM messages_fts f JOIN messages m ON m.id = f.rowid"
                " WHERE messages_fts MATCH ?)"
            )
            params.append(phrase)
    if group is not None:
        where.append(f"{group} IN ({','.join('?' * len(group_ids))})")
        params.extend(group_ids)
    return where, params


def _customer_where(search: str | None) -> tuple[list[str], list[Any]]:
    if search is None or not search.strip():
        return [], []
    text = bounded_search(search)
    key = search_key(text) or ""
    pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return ["(name_key LIKE ? ESCAPE '\\' OR external_id = ?)"], [pattern, text]


def _statements(script: str) -> Iterator[str]:
    """Split a migration script on complete statements (triggers hold inner semicolons)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete statement in migration: {buffer.strip()[:60]}")
