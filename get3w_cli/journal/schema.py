"""The journal's shape as a history: numbered migrations, one function each.

``PRAGMA user_version`` holds the number of the last step applied. Version 0 is anything g3w
wrote before the versions were counted: an empty file, the first schema (possibly still with
the unreleased sketch of the batch tables, which had no ``ident``). Each step runs in its own
``BEGIN IMMEDIATE`` transaction and re-reads the version inside it, so two g3w processes
opening an old journal at once apply every step exactly once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from get3w_cli.errors import JournalError
from get3w_cli.journal.codec import pack_record

_V1 = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, provider TEXT NOT NULL, api TEXT NOT NULL, model TEXT NOT NULL,
    base_url TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, record TEXT, batch TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
CREATE TABLE IF NOT EXISTS batches (
    name TEXT PRIMARY KEY, source TEXT, digest TEXT, total INTEGER,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_lines (
    batch TEXT NOT NULL, ident TEXT NOT NULL, line INTEGER NOT NULL, key TEXT, state TEXT NOT NULL,
    task_id TEXT, record TEXT, updated_at REAL NOT NULL, PRIMARY KEY (batch, ident)
);
"""

# Version 2. A task row exists from before its POST: ``ref`` is g3w's own identity for it and
# ``id`` (the provider's) is NULL while it is ``submitting`` or ``unknown``. The input is stored
# once, in ``task_inputs`` (never rewritten by the status updates of ``tasks``); ``record`` is
# the last task record without it (see codec). A batch line points at its task; it keeps a
# record of its own only when it has no task (rejected at submit).
_V2 = """
CREATE TABLE tasks (
    ref TEXT PRIMARY KEY, id TEXT, provider TEXT NOT NULL, api TEXT NOT NULL, model TEXT NOT NULL,
    base_url TEXT NOT NULL, status TEXT NOT NULL, record TEXT, raw_echo INTEGER NOT NULL DEFAULT 0,
    message TEXT, idempotency_key TEXT, request_hash TEXT, batch TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX tasks_id ON tasks (id);
CREATE INDEX tasks_created ON tasks (created_at);
CREATE INDEX tasks_idempotency ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE task_inputs (ref TEXT PRIMARY KEY, input TEXT NOT NULL);
CREATE TABLE batch_lines (
    batch TEXT NOT NULL, ident TEXT NOT NULL, line INTEGER NOT NULL, key TEXT, state TEXT NOT NULL,
    task_ref TEXT, request_hash TEXT, record TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (batch, ident)
);
"""


def _v1_first_schema(db: sqlite3.Connection) -> None:
    """The first released schema; drops the batch tables of the unreleased sketch (no ``ident``;
    batch never wrote them)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(batch_lines)")}
    if columns and "ident" not in columns:
        db.execute("DROP TABLE batch_lines")
        db.execute("DROP TABLE IF EXISTS batches")
    for statement in _V1.split(";"):
        if statement.strip():
            db.execute(statement)


def _v2_inputs_once(db: sqlite3.Connection) -> None:
    """Rows known before their POST (``ref``), inputs stored once, lines pointing at their task."""
    db.execute("ALTER TABLE tasks RENAME TO tasks_v1")
    db.execute("DROP INDEX IF EXISTS tasks_created")
    db.execute("ALTER TABLE batch_lines RENAME TO batch_lines_v1")
    for statement in _V2.split(";"):
        if statement.strip():
            db.execute(statement)
    old = db.execute("SELECT id, provider, api, model, base_url, input, status, record, batch, created_at,"
                     " updated_at FROM tasks_v1")
    for task_id, provider, api, model, base_url, input_json, status, record, batch, created, updated in old:
        packed, echo = pack_record(json.loads(record) if record else None)
        db.execute("INSERT INTO tasks (ref, id, provider, api, model, base_url, status, record, raw_echo, batch,"
                   " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (task_id, task_id, provider, api, model, base_url, status, packed, echo, batch, created, updated))
        db.execute("INSERT INTO task_inputs (ref, input) VALUES (?, ?)", (task_id, input_json))
    # A line whose task is journalled points at it (a migrated task's ref is its id) and drops
    # its copy of the record; any other line keeps its own.
    db.execute(
        "INSERT INTO batch_lines (batch, ident, line, key, state, task_ref, request_hash, record, updated_at)"
        " SELECT l.batch, l.ident, l.line, l.key, l.state, t.ref, NULL,"
        " CASE WHEN t.ref IS NULL THEN l.record END, l.updated_at"
        " FROM batch_lines_v1 l LEFT JOIN tasks t ON t.ref = l.task_id")
    db.execute("DROP TABLE tasks_v1")
    db.execute("DROP TABLE batch_lines_v1")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1_first_schema, _v2_inputs_once)
VERSION = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> None:
    """Bring the journal to VERSION, one step a transaction (sqlite errors are the caller's).

    Raises:
        JournalError: the journal was written by a newer g3w.
    """
    if version(db) == VERSION:  # the usual case: no write lock taken just to look
        return
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            current = version(db)
            if current > VERSION:
                raise JournalError(f"the journal has version {current}, newer than this g3w knows ({VERSION})",
                                   hint="upgrade g3w, or set G3W_HOME to another folder")
            if current == VERSION:
                db.execute("COMMIT")
                return
            MIGRATIONS[current](db)
            db.execute(f"PRAGMA user_version = {current + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
