"""The SQLite schema, versioned through `PRAGMA user_version`."""

from __future__ import annotations

from gateway.storage.migrations import Migration

# Each entry upgrades the schema by one version; entries are never edited once released.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "the first schema: deliveries, dead letters, talks, messages, events, customers, agents",
        """
    CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body_sha256 TEXT NOT NULL UNIQUE,
        body BLOB NOT NULL
    );
    CREATE TABLE delivery_talks (
        seq INTEGER NOT NULL,
        talk_id INTEGER NOT NULL,
        PRIMARY KEY (talk_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        errors TEXT NOT NULL,
        body BLOB NOT NULL,
        body_size INTEGER NOT NULL,
        truncated INTEGER NOT NULL
    );
    CREATE TABLE talks (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL,
        agent_id INTEGER,
        queue_id INTEGER,
        channel_id INTEGER NOT NULL,
        tracking_number TEXT NOT NULL,
        external_protocol TEXT,
        created_us INTEGER NOT NULL,
        status TEXT NOT NULL,
        was_success INTEGER NOT NULL,
        is_critical INTEGER NOT NULL,
        rank_finished INTEGER NOT NULL,
        rank_message INTEGER NOT NULL,
        rank_arrival INTEGER NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
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
        id INTEGER PRIMARY KEY,
        talk_id INTEGER NOT NULL,
        user_id INTEGER,
        message TEXT,
        rank_finished INTEGER NOT NULL,
        rank_message INTEGER NOT NULL,
        rank_arrival INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX messages_talk ON messages (talk_id, id);
    CREATE INDEX messages_user ON messages (user_id);
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        message, content='messages', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, message) VALUES (new.id, new.message);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, message)
        VALUES ('delete', old.id, old.message);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF message ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, message)
        VALUES ('delete', old.id, old.message);
        INSERT INTO messages_fts (rowid, message) VALUES (new.id, new.message);
    END;

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        talk_id INTEGER NOT NULL,
        rank_finished INTEGER NOT NULL,
        rank_message INTEGER NOT NULL,
        rank_arrival INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX events_talk ON events (talk_id, id);

    CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        name TEXT,
        name_key TEXT,
        external_id TEXT,
        stub INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 1,
        doc TEXT NOT NULL
    );
    CREATE INDEX customers_external ON customers (external_id);

    CREATE TABLE agents (
        id INTEGER PRIMARY KEY,
        login TEXT,
        stub INTEGER NOT NULL DEFAULT 0,
        doc TEXT NOT NULL
    );
    CREATE INDEX agents_login ON agents (login);

    CREATE TABLE channels (
        id INTEGER PRIMARY KEY,
        doc TEXT NOT NULL
    );
    """,
    ),
    Migration(
        "agent login tickets and queue statuses",
        """
    CREATE TABLE login_tickets (
        digest TEXT PRIMARY KEY,
        sealed TEXT NOT NULL,
        expires_us INTEGER NOT NULL
    );
    CREATE TABLE agent_status (
        login TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    """,
    ),
    # Names this database among all others: a generation (see SQLiteStore.generation) is
    # meaningful only together with it, e.g. in a cache shared with a reset store.
    Migration(
        "the store's identity, which names its generations",
        """
    CREATE TABLE store_identity (id TEXT NOT NULL);
    INSERT INTO store_identity (id) VALUES (lower(hex(randomblob(16))));
    """,
    ),
    # A page of talks in their default order reads only what this index holds (a talk's
    # version and customer: its document comes from the cache by version), so no lookup of
    # the talk's row per talk: W2's statement 78 -> 54 us for 100 talks.
    Migration(
        "talks_created holds a page's version and customer (no row lookup per talk)",
        """
    DROP INDEX talks_created;
    CREATE INDEX talks_created ON talks (created_us, id, version, customer_id);
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
