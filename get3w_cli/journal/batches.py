"""The journal's batches: each line's state, pointing at its task row.

A line's state: absent (never submitted, or nothing was created), ``submitting`` (its task row
written before the POST), ``submitted`` (task id known), ``done`` / ``failed`` (final record
stored with the task), ``unknown`` (the POST may have reached the provider without an answer).
``ident`` is "k:<key>" or "n:<line number>": how a line is recognised on --resume, and
``request_hash`` what it asked for, to notice a line edited since.

The bulk methods take many lines at once and write them in one transaction (the ledger groups
the lines of one event-loop turn).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from get3w_cli.journal.codec import pack_record, unpack_record
from get3w_cli.journal.tasks import (
    INSERT_INPUT,
    INSERT_TASK,
    SET_SUBMITTED,
    SUBMITTING,
    UNKNOWN,
    TaskJournal,
)
from get3w_cli.records import Task

# A line's states, in the order of its life (see the module's doc).
LINE_STATES = (SUBMITTING, "submitted", "done", "failed", UNKNOWN)

_LINE_UPSERT = (
    "INSERT INTO batch_lines (batch, ident, line, key, state, task_ref, request_hash, record, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (batch, ident) DO UPDATE SET line = excluded.line, key = excluded.key, state = excluded.state,"
    " task_ref = excluded.task_ref, request_hash = excluded.request_hash, record = excluded.record,"
    " updated_at = excluded.updated_at"
)
_LINE_STATE = "UPDATE batch_lines SET state = ?, updated_at = ? WHERE batch = ? AND ident = ?"
_SET_RECORD = "UPDATE tasks SET status = ?, record = ?, raw_echo = ?, message = ?, updated_at = ? WHERE ref = ?"
_COUNT_LINES = "SELECT COUNT(*) FROM batch_lines l"
_LINE_JOIN = (" FROM batch_lines l LEFT JOIN tasks t ON t.ref = l.task_ref"
              " LEFT JOIN task_inputs i ON i.ref = l.task_ref")


@dataclass(frozen=True)
class LineState:
    """What the journal knows of a line from earlier runs."""

    state: str
    task_id: str | None
    ref: str | None  # its task row, if it has one
    request_hash: str | None  # None for lines journalled before hashes were kept


@dataclass(frozen=True)
class LineSubmit:
    """A line about to be POSTed: its task row and its line row."""

    ident: str
    line: int
    key: str | None
    request_hash: str
    ref: str
    provider: str
    api: str
    model: str
    base_url: str
    input: Mapping[str, Any]


class BatchJournal(TaskJournal):
    """Batches and their lines; with no journal every call does nothing."""

    def batch_find(self, name: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT name, source, digest, total, created_at, updated_at FROM batches WHERE name = ?",
                          (name,))
        keys = ("name", "source", "digest", "total", "created_at", "updated_at")
        return dict(zip(keys, rows[0], strict=False)) if rows else None

    def batch_open(self, name: str, *, source: str, digest: str, total: int) -> None:
        """Create the batch, or bring an existing one's source, digest and total up to date."""
        now = time.time()
        self._exec(
            "INSERT INTO batches (name, source, digest, total, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET source = excluded.source, digest = excluded.digest,"
            " total = excluded.total, updated_at = excluded.updated_at",
            (name, source, digest, total, now, now),
        )

    def line_get(self, batch: str, ident: str) -> LineState | None:
        rows = self._exec("SELECT l.state, t.id, t.ref, l.request_hash FROM batch_lines l"
                          " LEFT JOIN tasks t ON t.ref = l.task_ref WHERE l.batch = ? AND l.ident = ?", (batch, ident))
        return LineState(*rows[0]) if rows else None

    def line_record(self, batch: str, ident: str) -> dict[str, Any] | None:
        """The line's record: its own (no task), else its task's last one."""
        rows = self._exec(f"SELECT l.record, t.record, t.raw_echo, i.input{_LINE_JOIN}"
                          " WHERE l.batch = ? AND l.ident = ?", (batch, ident))
        return _line_record(*rows[0]) if rows else None

    def lines_submitting(self, batch: str, lines: Sequence[LineSubmit]) -> None:
        """Task rows and line rows of lines about to be POSTed, in one transaction."""
        now = time.time()
        self._many(
            (INSERT_TASK, [(s.ref, s.provider, s.api, s.model, s.base_url, SUBMITTING, None, s.request_hash, batch,
                            now, now) for s in lines]),
            (INSERT_INPUT, [(s.ref, json.dumps(dict(s.input))) for s in lines]),
            (_LINE_UPSERT, [(batch, s.ident, s.line, s.key, SUBMITTING, s.ref, s.request_hash, None, now)
                            for s in lines]))

    def lines_submitted(self, batch: str, rows: Sequence[tuple[str, str, str, Task]]) -> None:
        """Lines the provider answered, each (ident, state, ref, task): task ids and line states."""
        now = time.time()
        self._many((SET_SUBMITTED, [(task.id, task.status.value, task.model, now, ref) for _, _, ref, task in rows]),
                   (_LINE_STATE, [(state, now, batch, ident) for ident, state, _, _ in rows]))

    def lines_finished(self, batch: str, rows: Sequence[tuple[str, str, str, str, Mapping[str, Any]]]) -> None:
        """The ends (or last known states) of lines, each (ident, line state, ref, task status, record)."""
        now = time.time()
        records = [pack_record(record) for *_, record in rows]
        self._many((_SET_RECORD, [(status, packed, echo, None, now, ref)
                                  for (_, _, ref, status, _), (packed, echo) in zip(rows, records, strict=False)]),
                   (_LINE_STATE, [(state, now, batch, ident) for ident, state, *_ in rows]))

    def line_forget(self, batch: str, ident: str, ref: str) -> None:
        """Nothing was created for the line: no task row, no line (--resume submits it again)."""
        self._many(("DELETE FROM tasks WHERE ref = ?", [(ref,)]), ("DELETE FROM task_inputs WHERE ref = ?", [(ref,)]),
                   ("DELETE FROM batch_lines WHERE batch = ? AND ident = ?", [(batch, ident)]))

    def line_rejected(self, batch: str, ident: str, *, line: int, key: str | None, request_hash: str | None,
                      ref: str | None, record: Mapping[str, Any]) -> None:
        """The provider refused the line: no task exists, the line keeps its own (failed) record."""
        now = time.time()
        refs = [(ref,)] if ref else []
        self._many(("DELETE FROM tasks WHERE ref = ?", refs), ("DELETE FROM task_inputs WHERE ref = ?", refs),
                   (_LINE_UPSERT, [(batch, ident, line, key, "failed", None, request_hash, json.dumps(record), now)]))

    def line_unknown(self, batch: str, ident: str, *, line: int, key: str | None, request_hash: str | None,
                     ref: str | None, message: str, record: Mapping[str, Any]) -> None:
        """The line's POST may have reached the provider: its task row (if any) is ``unknown``."""
        now = time.time()
        if ref is None:
            self._exec(_LINE_UPSERT, (batch, ident, line, key, UNKNOWN, None, request_hash, json.dumps(record), now))
            return
        packed, echo = pack_record(record)
        self._many((_SET_RECORD, [(UNKNOWN, packed, echo, message, now, ref)]),
                   (_LINE_UPSERT, [(batch, ident, line, key, UNKNOWN, ref, request_hash, None, now)]))

    def batch_lines(self, name: str, *, state: str | None = None, limit: int = -1
                    ) -> Iterator[tuple[int, str | None, str, str | None, dict[str, Any] | None]]:
        """Yield (line, key, state, task_id, record) for the journalled lines of a batch, in line
        order: those in ``state`` (all by default), the first ``limit`` (-1: all)."""
        where, args = _line_filter(name, state)
        rows = self._iter(f"SELECT l.line, l.key, l.state, t.id, l.record, t.record, t.raw_echo, i.input{_LINE_JOIN}"
                          f"{where} ORDER BY l.line LIMIT ?", (*args, limit))
        for line, key, line_state, task_id, *record in rows:
            found = _line_record(*record)
            yield line, key, line_state, task_id or (found or {}).get("id"), found

    def count_batch_lines(self, name: str, *, state: str | None = None) -> int:
        """How many lines ``batch_lines`` would yield without its limit."""
        where, args = _line_filter(name, state)
        rows = self._exec(_COUNT_LINES + where, args)
        return int(rows[0][0]) if rows else 0

    def count_batches(self) -> int:
        rows = self._exec("SELECT COUNT(*) FROM batches")
        return int(rows[0][0]) if rows else 0

    def batches(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The latest batches (``limit`` of them; -1: all) with their line counts by state."""
        rows = self._exec(
            "SELECT b.name, b.source, b.total, b.created_at, b.updated_at,"
            " COALESCE(SUM(l.state = 'done'), 0), COALESCE(SUM(l.state = 'failed'), 0),"
            " COALESCE(SUM(l.state = 'unknown'), 0), COALESCE(SUM(l.state IN ('submitting', 'submitted')), 0)"
            " FROM batches b LEFT JOIN batch_lines l ON l.batch = b.name GROUP BY b.name"
            " ORDER BY b.updated_at DESC LIMIT ?",
            (limit,),
        )
        keys = ("name", "source", "total", "created_at", "updated_at", "done", "failed", "unknown", "open")
        return [dict(zip(keys, row, strict=False)) for row in rows]


def _line_filter(name: str, state: str | None) -> tuple[str, list[Any]]:
    if state is None:
        return " WHERE l.batch = ?", [name]
    return " WHERE l.batch = ? AND l.state = ?", [name, state]


def _line_record(own: str | None, task_record: str | None, raw_echo: int | None,
                 input_json: str | None) -> dict[str, Any] | None:
    if own:
        loaded: dict[str, Any] = json.loads(own)
        return loaded
    return unpack_record(task_record, raw_echo or 0, json.loads(input_json) if input_json else {})
