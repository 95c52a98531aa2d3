"""The state database's tables, and the migrations from older versions.

:mod:`syncd.engine.state` opens the database, creates what is missing from
:data:`SCHEMA` and runs the migrations up to :data:`SCHEMA_VERSION` in one
transaction.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

# Far keys (``uid``) are declared BLOB: a column with BLOB affinity stores each
# value as given, so an IMAP UID stays an integer and a POP3 UIDL stays a string
# even when it looks like a number (INTEGER affinity would turn "123" into 123).
SCHEMA = """
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uidvalidity INTEGER,
    highestmodseq INTEGER,
    uidnext INTEGER,
    near_signature TEXT,
    last_sync REAL,
    last_error TEXT,
    far_count INTEGER,
    near_count INTEGER
);
CREATE TABLE IF NOT EXISTS pairs (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid BLOB,
    name TEXT,
    flags TEXT NOT NULL,
    size INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS pairs_uid ON pairs(folder_id, uid) WHERE uid IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS pairs_name ON pairs(folder_id, name) WHERE name IS NOT NULL;
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('download', 'upload', 'delete')),
    uid BLOB,
    name TEXT,
    flags TEXT NOT NULL,
    size INTEGER,
    uidnext INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS moves (
    id INTEGER PRIMARY KEY,
    side TEXT NOT NULL CHECK (side IN ('far', 'near')),
    src_folder INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    dst_folder INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid BLOB,
    name TEXT,
    dst_uid BLOB,
    dst_name TEXT,
    flags TEXT NOT NULL,
    size INTEGER,
    message_id TEXT,
    uidnext INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refusals (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    code TEXT NOT NULL,
    append_limit INTEGER,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (folder_id, name)
);
CREATE TABLE IF NOT EXISTS far_stored (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid BLOB NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (folder_id, uid)
);
CREATE TABLE IF NOT EXISTS collected (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid BLOB NOT NULL,
    target TEXT NOT NULL,
    uidvalidity INTEGER,
    uidnext INTEGER,
    target_uid INTEGER,
    PRIMARY KEY (folder_id, uid, target)
);
CREATE TABLE IF NOT EXISTS local_only_flags (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    flag TEXT NOT NULL,
    PRIMARY KEY (folder_id, flag)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS folder_rights (
    name TEXT PRIMARY KEY,
    rights TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS account_attempts (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    started REAL NOT NULL,
    finished REAL NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'partial', 'failed')),
    error TEXT,
    error_kind TEXT,
    last_success REAL,
    failing_since REAL,
    failures INTEGER NOT NULL DEFAULT 0
);
"""


def migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Version 1 declared the far keys INTEGER (see ``SCHEMA``).  SQLite cannot
    change a column's type: rebuild ``pairs`` and ``intents`` under the new
    declarations, in the caller's transaction (a crash leaves version 1 intact).
    Every key of a version-1 database is an IMAP UID, stored as an integer, and
    is copied as one.  A table that is not there yet is simply created later."""
    present = {
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('pairs', 'intents')"
        )
    }
    if present != {"pairs", "intents"}:
        return
    for table in ("pairs", "intents"):
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
    for stmt in SCHEMA.split(";"):
        if stmt.strip() and ("TABLE IF NOT EXISTS pairs " in stmt or "intents (" in stmt):
            db.execute(stmt)
    db.execute(
        "INSERT INTO pairs(folder_id, uid, name, flags, size)"
        " SELECT folder_id, uid, name, flags, size FROM pairs_v1"
    )
    db.execute(
        "INSERT INTO intents(id, folder_id, kind, uid, name, flags, size, uidnext, created)"
        " SELECT id, folder_id, kind, uid, name, flags, size, uidnext, created FROM intents_v1"
    )
    db.execute("DROP TABLE pairs_v1")
    db.execute("DROP TABLE intents_v1")
