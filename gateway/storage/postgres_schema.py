"""The PostgreSQL schema, versioned in `talkgate_schema_version`, migrated under a lock."""

from __future__ import annotations

from typing import Any

from gateway.storage.migrations import Migration, SchemaState, newer_store

# pg_advisory_xact_lock key for migrating: "talkgate" in ASCII, so it names its owner.
MIGRATION_LOCK = int.from_bytes(b"talkgate", "big")

# Each entry upgrades the schema by one version; entries are never edited once released.
# Tables mirror the SQLite ones. Documents are `json`, not `jsonb`: json keeps the exact
# text talkgate wrote (so "did it change?" compares like SQLite does, and reads need no
# re-encoding) and accepts the \u0000 a dirty payload may hold, which jsonb refuses.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "the first schema: deliveries, dead letters, talks, messages, events, customers, agents",
        """
    CREATE TABLE deliveries (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body_sha256 TEXT NOT NULL UNIQUE,
        body BYTEA NOT NULL,
        body_json JSONB
    );
    CREATE TABLE delivery_talks (
        seq BIGINT NOT NULL,
        talk_id BIGINT NOT NULL,
        PRIMARY KEY (talk_id, seq)
    );
    CREATE TABLE dead_letters (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        errors JSON NOT NULL,
        body BYTEA NOT NULL,
        body_size BIGINT NOT NULL,
        truncated BOOLEAN NOT NULL
    );
    CREATE TABLE talks (
        id BIGINT PRIMARY KEY,
        customer_id BIGINT NOT NULL,
        agent_id BIGINT,
        queue_id BIGINT,
        channel_id BIGINT NOT NULL,
        tracking_number TEXT NOT NULL,
        external_protocol TEXT,
        created_us BIGINT NOT NULL,
        status TEXT NOT NULL,
        was_success BOOLEAN NOT NULL,
        is_critical BOOLEAN NOT NULL,
        rank_finished BOOLEAN NOT NULL,
        rank_message BIGINT NOT NULL,
        rank_arrival BIGINT NOT NULL,
        version BIGINT NOT NULL,
        doc JSON NOT NULL
    );
    CREATE INDEX talks_created ON talks (created_us, id);
    CREATE INDEX talks_customer ON talks (customer_id, created_us, id);
    CREATE INDEX talks_agent ON talks (agent_id, created_us, id);
    CREATE INDEX talks_queue ON talks (queue_id, created_us, id);
    CREATE INDEX talks_channel ON talks (channel_id, created_us, id);
    CREATE INDEX talks_status ON talks (status, created_us, id);
    CREATE INDEX talks_success ON talks (was_success, created_us, id);
    CREATE INDEX talks_critical ON talks (is_critical, created_us, id);
    CREATE INDEX talks_tracking ON talks (tracking_number);
    CREATE INDEX talks_protocol ON talks (external_protocol);

    CREATE TABLE messages (
        id BIGINT PRIMARY KEY,
        talk_id BIGINT NOT NULL,
        user_id BIGINT,
        search TSVECTOR NOT NULL,
        rank_finished BOOLEAN NOT NULL,
        rank_message BIGINT NOT NULL,
        rank_arrival BIGINT NOT NULL,
        doc JSON NOT NULL
    );
    CREATE INDEX messages_talk ON messages (talk_id, id);
    CREATE INDEX messages_user ON messages (user_id);
    CREATE INDEX messages_search ON messages USING GIN (search);

    CREATE TABLE events (
        id BIGINT PRIMARY KEY,
        talk_id BIGINT NOT NULL,
        rank_finished BOOLEAN NOT NULL,
        rank_message BIGINT NOT NULL,
        rank_arrival BIGINT NOT NULL,
        doc JSON NOT NULL
    );
    CREATE INDEX events_talk ON events (talk_id, id);

    CREATE TABLE customers (
        id BIGINT PRIMARY KEY,
        name TEXT,
        name_key TEXT,
        external_id TEXT,
        stub BOOLEAN NOT NULL DEFAULT false,
        version BIGINT NOT NULL DEFAULT 1,
        doc JSON NOT NULL
    );
    CREATE INDEX customers_external ON customers (external_id);

    CREATE TABLE agents (
        id BIGINT PRIMARY KEY,
        login TEXT,
        stub BOOLEAN NOT NULL DEFAULT false,
        doc JSON NOT NULL
    );
    CREATE INDEX agents_login ON agents (login);

    CREATE TABLE channels (
        id BIGINT PRIMARY KEY,
        doc JSON NOT NULL
    );

    CREATE TABLE login_tickets (
        digest TEXT PRIMARY KEY,
        sealed TEXT NOT NULL,
        expires_us BIGINT NOT NULL
    );
    CREATE TABLE agent_status (
        login TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    """,
    ),
    # The response cache's view of the store: advanced by every ingest that changes a talk;
    # store_id names this database among all others (a shared cache may outlive a reset).
    Migration(
        "the store's generation, which the response cache follows",
        """
    CREATE TABLE store_generation (
        only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
        store_id TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
        generation BIGINT NOT NULL
    );
    INSERT INTO store_generation (generation) VALUES (0);
    """,
    ),
    # Raw bodies (some 11 KB each) compressed with lz4 instead of pglz: storing a delivery
    # costs about a third less server time, for some 20 % more space. Rows stored before keep
    # pglz and read as before. A server built without lz4, or older than PostgreSQL 14,
    # keeps pglz for every row.
    Migration(
        "raw bodies compressed with lz4 where the server has it",
        """
    DO $$
    BEGIN
        EXECUTE 'ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION lz4,'
            ' ALTER COLUMN body_json SET COMPRESSION lz4';
    EXCEPTION WHEN feature_not_supported OR syntax_error THEN
        NULL;
    END $$;
    """,
    ),
    # A purge removes a raw delivery once none of its talks is left: found by its seq.
    Migration(
        "delivery_talks_seq finds a delivery's talks (a purge keeps what others still hold)",
        """
    CREATE INDEX delivery_talks_seq ON delivery_talks (seq);
    """,
    ),
)


async def schema_version(connection: Any) -> int:
    """The schema version of the database `connection` is on (0: none yet); changes nothing."""
    if await connection.fetchval("SELECT to_regclass('talkgate_schema_version') IS NULL"):
        return 0
    return int(
        await connection.fetchval("SELECT coalesce(max(version), 0) FROM talkgate_schema_version")
    )


async def migrate(connection: Any) -> int:
    """Bring the schema to the latest version; returns it. A schema newer than this
    talkgate's is refused as it is (StoreSchemaError). Safe when replicas start at once:
    the advisory lock lets one of them migrate while the others wait, then find nothing to do."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        current = await schema_version(connection)
        if current > len(MIGRATIONS):
            raise newer_store(SchemaState.of(current, MIGRATIONS))
        if current == 0:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS talkgate_schema_version ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO talkgate_schema_version (version) VALUES ($1)", number
            )
        return max(current, len(MIGRATIONS))
