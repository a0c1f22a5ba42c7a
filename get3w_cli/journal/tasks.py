"""The journal's single tasks: written before their POST, completed by the answer.

A row's life: ``task_submitting`` (committed before the POST; ``id`` unknown) then
``task_submitted`` (the id, status and model from the answer), or ``task_unknown`` (the POST may
have reached the provider, the answer was lost) or ``task_forget`` (nothing was created). Later
``task_updated`` records what g3w learnt about it, by id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from get3w_cli.journal.codec import PROMPT_FUNCTION, fold, pack_record, unpack_record
from get3w_cli.journal.store import Store, new_ref
from get3w_cli.records import Task

SUBMITTING, UNKNOWN = "submitting", "unknown"  # row statuses beyond the contract's five


@dataclass(frozen=True)
class JournalEntry:
    """One journalled task. ``id`` is None while it is ``submitting`` or ``unknown``."""

    ref: str
    id: str | None
    provider: str
    api: str
    model: str
    base_url: str
    input: dict[str, Any]
    status: str
    record: dict[str, Any] | None  # the last task record, input included
    batch: str | None
    created_at: float
    idempotency_key: str | None = None
    request_hash: str | None = None
    message: str | None = None  # why the row is ``unknown``


_COLUMNS = ("t.ref, t.id, t.provider, t.api, t.model, t.base_url, i.input, t.status, t.record, t.raw_echo,"
            " t.batch, t.created_at, t.idempotency_key, t.request_hash, t.message")
SELECT = f"SELECT {_COLUMNS} FROM tasks t LEFT JOIN task_inputs i ON i.ref = t.ref"  # noqa: S608 - the SQL is built from constant fragments; values are bound
COUNT = "SELECT COUNT(*) FROM tasks t LEFT JOIN task_inputs i ON i.ref = t.ref"
NEWEST = " ORDER BY t.created_at DESC, t.rowid DESC"
INSERT_TASK = (
    "INSERT INTO tasks (ref, id, provider, api, model, base_url, status, idempotency_key, request_hash, batch,"
    " created_at, updated_at) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_INPUT = "INSERT OR REPLACE INTO task_inputs (ref, input) VALUES (?, ?)"
SET_SUBMITTED = (
    "UPDATE tasks SET id = ?, status = ?, model = COALESCE(NULLIF(?, ''), model), message = NULL,"
    " updated_at = ? WHERE ref = ?"
)


def entry(row: tuple[Any, ...]) -> JournalEntry:
    (ref, task_id, provider, api, model, base_url, input_json, status, record, raw_echo, batch, created_at,
     key, request_hash, message) = row
    values = json.loads(input_json) if input_json else {}
    return JournalEntry(ref=ref, id=task_id, provider=provider, api=api, model=model, base_url=base_url,
                        input=values, status=status, record=unpack_record(record, raw_echo, values), batch=batch,
                        created_at=created_at, idempotency_key=key, request_hash=request_hash, message=message)


class TaskJournal(Store):
    """Single tasks; with no journal (``--no-history``) every call does nothing."""

    def task_submitting(self, *, provider: str, api: str, model: str, base_url: str, input: Mapping[str, Any],
                        idempotency_key: str | None = None, request_hash: str | None = None) -> str:
        """Journal a task about to be POSTed (committed on return); return its ref."""
        ref, now = new_ref(), time.time()
        self._many((INSERT_TASK, [(ref, provider, api, model, base_url, SUBMITTING, idempotency_key, request_hash,
                                   None, now, now)]),
                   (INSERT_INPUT, [(ref, json.dumps(dict(input)))]))
        return ref

    def task_submitting_keyed(self, *, expected_ref: str | None, provider: str, api: str, model: str,
                              base_url: str, input: Mapping[str, Any], idempotency_key: str,
                              request_hash: str) -> str | None:
        """``task_submitting`` for a task with an idempotency key, only while the newest row with that
        key is still ``expected_ref`` (None: there is none): looked at and written under the write
        lock, so two runs with one key cannot both submit. None when another row came first."""
        with self.atomic(immediate=True):
            newest = self.find_by_idempotency_key(idempotency_key)
            if (newest.ref if newest else None) != expected_ref:
                return None
            return self.task_submitting(provider=provider, api=api, model=model, base_url=base_url, input=input,
                                        idempotency_key=idempotency_key, request_hash=request_hash)

    def task_submitted(self, ref: str, task: Task) -> None:
        """The provider answered: the row gets the task's id, status and model."""
        self._exec(SET_SUBMITTED, (task.id, task.status.value, task.model, time.time(), ref))

    def task_unknown(self, ref: str, message: str) -> None:
        """The POST may have reached the provider but its answer was lost or unreadable."""
        self._exec("UPDATE tasks SET status = ?, message = ?, updated_at = ? WHERE ref = ?",
                   (UNKNOWN, message, time.time(), ref))

    def task_forget(self, ref: str) -> None:
        """Nothing was created (a 429 or 503, a connection that never opened, a 4xx): drop the row."""
        self._many(("DELETE FROM tasks WHERE ref = ?", [(ref,)]), ("DELETE FROM task_inputs WHERE ref = ?", [(ref,)]))

    def task_updated(self, task_id: str, status: str, record: Mapping[str, Any] | None = None) -> None:
        """What g3w now knows of a task (by its id); ``record`` (its input is the task's) replaces the last."""
        packed, echo = pack_record(record)
        self._exec("UPDATE tasks SET status = ?, record = COALESCE(?, record),"
                   " raw_echo = CASE WHEN ? IS NULL THEN raw_echo ELSE ? END, updated_at = ? WHERE id = ?",
                   (status, packed, packed, echo, time.time(), task_id))

    def find(self, task_id: str) -> JournalEntry | None:
        rows = self._exec(f"{SELECT} WHERE t.id = ?{NEWEST} LIMIT 1", (task_id,))
        return entry(rows[0]) if rows else None

    def find_by_idempotency_key(self, key: str) -> JournalEntry | None:
        """The newest task journalled with this idempotency key."""
        rows = self._exec(f"{SELECT} WHERE t.idempotency_key = ?{NEWEST} LIMIT 1", (key,))
        return entry(rows[0]) if rows else None

    def tasks(self, *, limit: int = 20, status: str | None = None, batch: str | None = None,
              statuses: tuple[str, ...] = (), prompt: str | None = None) -> list[JournalEntry]:
        """The newest tasks first (``limit`` of them; -1: all), with this status (or one of
        ``statuses``), of this batch, whose prompt holds ``prompt`` (ignoring case)."""
        where, args = _filters(status=status, batch=batch, statuses=statuses, prompt=prompt)
        return [entry(row) for row in self._exec(SELECT + where + NEWEST + " LIMIT ?", (*args, limit))]

    def count_tasks(self, *, status: str | None = None, batch: str | None = None, statuses: tuple[str, ...] = (),
                    prompt: str | None = None) -> int:
        """How many tasks ``tasks`` would list without its limit."""
        where, args = _filters(status=status, batch=batch, statuses=statuses, prompt=prompt)
        rows = self._exec(COUNT + where, args)
        return int(rows[0][0]) if rows else 0


def _filters(*, status: str | None, batch: str | None, statuses: tuple[str, ...], prompt: str | None
             ) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or empty) and its arguments."""
    where: list[str] = []
    args: list[Any] = []
    if status:
        where.append("t.status = ?")
        args.append(status)
    if statuses:
        where.append(f"t.status IN ({', '.join('?' * len(statuses))})")
        args.extend(statuses)
    if batch:
        where.append("t.batch = ?")
        args.append(batch)
    if prompt is not None:
        where.append(f"instr({PROMPT_FUNCTION}(i.input), ?) > 0")
        args.append(fold(prompt))
    return (" WHERE " + " AND ".join(where) if where else ""), args
