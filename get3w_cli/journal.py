"""The local SQLite journal: every submitted task (and batch line), written before any wait.

The journal is what lets ``g3w wait/get/cancel ID`` find a task's provider from its id alone,
and what ``batch --resume`` trusts to never submit a line twice. WAL mode: a killed process
loses nothing that was committed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from get3w_cli.errors import ConfigError
from get3w_cli.records import Task

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    api TEXT NOT NULL,
    model TEXT NOT NULL,
    base_url TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT,
    batch TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
CREATE TABLE IF NOT EXISTS batches (
    name TEXT PRIMARY KEY,
    source TEXT,
    digest TEXT,
    total INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_lines (
    batch TEXT NOT NULL,
    ident TEXT NOT NULL,
    line INTEGER NOT NULL,
    key TEXT,
    state TEXT NOT NULL,
    task_id TEXT,
    record TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (batch, ident)
);
"""


@dataclass(frozen=True)
class JournalEntry:
    id: str
    provider: str
    api: str
    model: str
    base_url: str
    input: dict[str, Any]
    status: str
    record: dict[str, Any] | None
    batch: str | None
    created_at: float


class Journal:
    """Tasks and batches on disk. ``path=None`` keeps nothing (``--no-history``)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            _drop_sketch_tables(self._db)
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the journal {path}: {exc}", hint="set G3W_HOME to a writable folder, or use --no-history"
            ) from exc

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor | None:
        if self._db is None:
            return None
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise ConfigError(f"journal error: {exc}", hint="use --no-history to run without the journal") from exc

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Group the writes inside into one transaction (one commit instead of one each)."""
        if self._db is None or self._db.in_transaction:
            yield
            return
        self._exec("BEGIN")
        try:
            yield
        except BaseException:
            self._exec("ROLLBACK")
            raise
        self._exec("COMMIT")

    def task_submitted(self, task: Task, *, base_url: str, input: Mapping[str, Any]) -> None:
        """Record a task the provider accepted; call before waiting for it."""
        now = time.time()
        self._exec(
            _TASK_INSERT,
            (task.id, task.provider, task.api, task.model, base_url, json.dumps(dict(input)),
             task.status.value, None, now, now),
        )

    def task_updated(self, task_id: str, status: str, record: Mapping[str, Any] | None = None) -> None:
        self._exec(
            "UPDATE tasks SET status = ?, record = COALESCE(?, record), updated_at = ? WHERE id = ?",
            (status, None if record is None else json.dumps(record), time.time(), task_id),
        )

    def find(self, task_id: str) -> JournalEntry | None:
        cur = self._exec("SELECT * FROM tasks WHERE id = ?", (task_id,))
        row = cur.fetchone() if cur else None
        return None if row is None else _entry(row)

    def tasks(self, *, limit: int = 20, status: str | None = None, batch: str | None = None) -> list[JournalEntry]:
        sql, args = "SELECT * FROM tasks", []
        where = []
        if status:
            where.append("status = ?")
            args.append(status)
        if batch:
            where.append("batch = ?")
            args.append(batch)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        cur = self._exec(sql, (*args, limit))
        return [_entry(row) for row in cur.fetchall()] if cur else []

    # --- batches (used by batch) ---------------------------------------------------------
    # A line's state: absent (never submitted), "submitting" (written before its POST),
    # "submitted" (task id known), "done" / "failed" (final record stored), "unknown" (the
    # POST may have reached the provider without an answer). ``ident`` is "k:<key>" or
    # "n:<line number>": how a line is recognised on --resume.

    def batch_find(self, name: str) -> dict[str, Any] | None:
        cur = self._exec("SELECT name, source, digest, total, created_at, updated_at FROM batches WHERE name = ?", (name,))
        row = cur.fetchone() if cur else None
        keys = ("name", "source", "digest", "total", "created_at", "updated_at")
        return None if row is None else dict(zip(keys, row))

    def batch_open(self, name: str, *, source: str, digest: str, total: int) -> None:
        """Create the batch, or bring an existing one's source, digest and total up to date."""
        now = time.time()
        self._exec(
            "INSERT INTO batches (name, source, digest, total, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET source = excluded.source, digest = excluded.digest,"
            " total = excluded.total, updated_at = excluded.updated_at",
            (name, source, digest, total, now, now),
        )

    def line_get(self, batch: str, ident: str) -> tuple[str, str | None] | None:
        """(state, task_id) of a journalled line, or None when it was never submitted."""
        cur = self._exec("SELECT state, task_id FROM batch_lines WHERE batch = ? AND ident = ?", (batch, ident))
        row = cur.fetchone() if cur else None
        return None if row is None else (row[0], row[1])

    def line_record(self, batch: str, ident: str) -> dict[str, Any] | None:
        cur = self._exec("SELECT record FROM batch_lines WHERE batch = ? AND ident = ?", (batch, ident))
        row = cur.fetchone() if cur else None
        return json.loads(row[0]) if row and row[0] else None

    def line_set(self, batch: str, ident: str, *, line: int, key: str | None, state: str,
                 task_id: str | None = None, record: Mapping[str, Any] | None = None) -> None:
        """Write a line's state (a task id or record already known is kept unless replaced)."""
        self._exec(_LINE_UPSERT, (batch, ident, line, key, state, task_id,
                                  None if record is None else json.dumps(record), time.time()))

    def lines_set(self, batch: str, rows: list[tuple[str, int, str | None, str]]) -> None:
        """The states of many lines, each row (ident, line, key, state), in one transaction."""
        now = time.time()
        self._many((_LINE_UPSERT, [(batch, ident, line, key, state, None, None, now)
                                   for ident, line, key, state in rows]))

    def lines_submitted(self, batch: str, rows: list[tuple[str, int, str | None, str, Task, str, Mapping[str, Any]]]
                        ) -> None:
        """Lines the provider answered, each row (ident, line, key, state, task, base URL, input):
        the tasks and the lines, in one transaction."""
        now = time.time()
        self._many(
            (_TASK_INSERT, [(task.id, task.provider, task.api, task.model, base_url, json.dumps(dict(input)),
                             task.status.value, batch, now, now) for *_, task, base_url, input in rows]),
            (_LINE_UPSERT, [(batch, ident, line, key, state, task.id, None, now)
                            for ident, line, key, state, task, _, _ in rows]))

    def lines_finished(self, batch: str, rows: list[tuple[str, int, str | None, str, str, str, str]]) -> None:
        """The ends of many lines at once, each row (ident, line, key, state, task_id, task status,
        record as JSON): the task and the line, in one transaction."""
        now = time.time()
        self._many(
            ("UPDATE tasks SET status = ?, record = ?, updated_at = ? WHERE id = ?",
             [(status, record, now, task_id) for _, _, _, _, task_id, status, record in rows]),
            (_LINE_UPSERT, [(batch, ident, line, key, state, task_id, record, now)
                            for ident, line, key, state, task_id, _, record in rows]))

    def _many(self, *statements: tuple[str, list[tuple[Any, ...]]]) -> None:
        """Each (SQL, rows) run for all its rows, the whole in one transaction (one commit)."""
        if self._db is None or not any(rows for _, rows in statements):
            return
        try:
            with self.atomic():
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise ConfigError(f"journal error: {exc}", hint="use --no-history to run without the journal") from exc

    def line_clear(self, batch: str, ident: str) -> None:
        """Forget a line: nothing was created for it, so --resume submits it again."""
        self._exec("DELETE FROM batch_lines WHERE batch = ? AND ident = ?", (batch, ident))

    def batch_lines(self, name: str) -> Iterator[tuple[int, str | None, str, str | None, dict[str, Any] | None]]:
        """Yield (line, key, state, task_id, record) for every journalled line of a batch."""
        cur = self._exec(
            "SELECT line, key, state, task_id, record FROM batch_lines WHERE batch = ? ORDER BY line", (name,)
        )
        for line, key, state, task_id, record in cur or ():
            yield line, key, state, task_id, (json.loads(record) if record else None)

    def batches(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The latest batches with their line counts by state."""
        cur = self._exec(
            "SELECT b.name, b.source, b.total, b.created_at, b.updated_at,"
            " COALESCE(SUM(l.state = 'done'), 0), COALESCE(SUM(l.state = 'failed'), 0),"
            " COALESCE(SUM(l.state = 'unknown'), 0), COALESCE(SUM(l.state IN ('submitting', 'submitted')), 0)"
            " FROM batches b LEFT JOIN batch_lines l ON l.batch = b.name GROUP BY b.name"
            " ORDER BY b.updated_at DESC LIMIT ?",
            (limit,),
        )
        keys = ("name", "source", "total", "created_at", "updated_at", "done", "failed", "unknown", "open")
        return [dict(zip(keys, row)) for row in cur.fetchall()] if cur else []


_TASK_INSERT = (
    "INSERT OR REPLACE INTO tasks (id, provider, api, model, base_url, input, status, record, batch,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)"
)
_LINE_UPSERT = (
    "INSERT INTO batch_lines (batch, ident, line, key, state, task_id, record, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (batch, ident) DO UPDATE SET line = excluded.line, state = excluded.state,"
    " task_id = COALESCE(excluded.task_id, batch_lines.task_id),"
    " record = COALESCE(excluded.record, batch_lines.record), updated_at = excluded.updated_at"
)


def _drop_sketch_tables(db: sqlite3.Connection) -> None:
    """Drop the batch tables of the unreleased first sketch (no ``ident``); batch never wrote them."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(batch_lines)")}
    if columns and "ident" not in columns:
        db.execute("DROP TABLE batch_lines")
        db.execute("DROP TABLE IF EXISTS batches")


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    (task_id, provider, api, model, base_url, input_json, status, record, batch, created_at, _updated) = row
    return JournalEntry(
        id=task_id, provider=provider, api=api, model=model, base_url=base_url,
        input=json.loads(input_json), status=status,
        record=json.loads(record) if record else None, batch=batch, created_at=created_at,
    )
