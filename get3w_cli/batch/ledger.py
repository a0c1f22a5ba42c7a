"""A batch's ledger: each line's state in the journal, the counters and the output, kept in step.

The order of the writes is what makes a batch safe to kill at any moment: ``submitting`` is
committed before the POST, ``submitted`` (with the task) as soon as the answer arrives, and
the final record before the line is handed to the output. With ``--no-history`` the journal
keeps nothing and only the counters and the output remain.

Each of these writes waits for the end of the event loop's turn: the lines that reach the same
step in the same turn share one transaction (one commit, not one a line), and each caller
resumes once its line is written.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from get3w_cli.batch import report as R
from get3w_cli.batch.lines import BatchLine
from get3w_cli.constants import BATCH_NAME_HASH_CHARS
from get3w_cli.errors import UsageError

if TYPE_CHECKING:
    from get3w_cli.journal import Journal, JournalEntry
    from get3w_cli.records import Task

Sink = Callable[[dict[str, Any]], None]
_Row = TypeVar("_Row")


class _PerTurn(Generic[_Row]):
    """Rows queued during one turn of the event loop, written together when the turn ends."""

    def __init__(self, write: Callable[[list[_Row]], None]) -> None:
        self._write = write
        self._rows: list[_Row] = []
        self._written: asyncio.Future[None] | None = None

    async def __call__(self, row: _Row) -> None:
        """Queue ``row``; return once it is written (raise what the write raised)."""
        self._rows.append(row)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._written)  # a cancelled caller's row is written all the same

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        written, self._written = self._written, None
        assert written is not None
        try:
            self._write(rows)
        except BaseException as exc:  # every row of the turn fails alike, as each did alone
            written.set_exception(exc)
            return
        written.set_result(None)


def batch_name(journal: Journal, *, name: str | None, digest: str, resume: bool,
               notify: Callable[[str, str], None]) -> str:
    """The batch's name (``--name``, else the file's hash), once it is clear it may run.

    Raises:
        UsageError: the batch ran before and ``resume`` is not set (never pay twice by
            accident), or ``resume`` without a journal.
    """
    name = name or digest[:BATCH_NAME_HASH_CHARS]
    if resume and not journal.enabled:
        raise UsageError("--resume needs the journal", hint="drop --no-history")
    known = journal.batch_find(name)
    if known and not resume:
        raise UsageError(f"batch {name} already ran (from {known['source']}); nothing was submitted",
                         hint="add --resume to finish it (finished lines are re-emitted, none is paid twice), "
                              "or --name NAME for a separate run")
    if known and known["digest"] != digest:
        notify("note", f"the file changed since batch {name} last ran: lines are matched by key, else by number")
    elif resume and not known:
        notify("note", f"batch {name} has not run before; starting it")
    return name


class Ledger:
    """Journal, counters and output of one batch run."""

    def __init__(self, journal: Journal, name: str, stats: R.Stats, sink: Sink) -> None:
        self.journal, self.name, self.stats, self.sink = journal, name, stats, sink
        self._submitting = _PerTurn(lambda rows: journal.lines_set(name, rows))
        self._submitted = _PerTurn(lambda rows: journal.lines_submitted(name, rows))
        self._finished = _PerTurn(self._write_finished)

    # --- what an earlier run left --------------------------------------------------------------

    def known(self, line: BatchLine) -> tuple[str, str | None] | None:
        """(state, task id) of the line from earlier runs, or None when it was never submitted."""
        return self.journal.line_get(self.name, line.ident)

    def task(self, task_id: str) -> JournalEntry | None:
        return self.journal.find(task_id)

    def replay(self, line: BatchLine, state: str, task_id: str | None) -> None:
        """Re-emit a line that finished in an earlier run, from its stored record."""
        record = self.journal.line_record(self.name, line.ident) or R.bare_record(
            line, state, None, "finished in an earlier run; its record was not kept", task_id=task_id)
        self.stats.resumed += 1
        self.emit(line, R.with_key(record, line), None, completed=state == R.DONE)

    # --- the submit ------------------------------------------------------------------------------

    async def submitting(self, line: BatchLine) -> None:
        """Journalled before the POST: a crash after it leaves the line "unknown", never resent."""
        await self._submitting((line.ident, line.number, line.key, R.SUBMITTING))

    async def submitted(self, line: BatchLine, task: Task, *, base_url: str) -> None:
        await self._submitted((line.ident, line.number, line.key, R.SUBMITTED, task, base_url, line.input))

    def forget(self, line: BatchLine) -> None:
        """Nothing was created for the line (a 429, a connection that never opened)."""
        self.journal.line_clear(self.name, line.ident)

    # --- the end of a line -------------------------------------------------------------------------

    async def finished(self, line: BatchLine, task: Task, record: dict[str, Any], state: str) -> None:
        """A task with its final (or last known) record: journal both, then hand it out."""
        await self._finished((line, task, record, state))

    def _write_finished(self, finals: list[tuple[BatchLine, Task, dict[str, Any], str]]) -> None:
        rows = [(line.ident, line.number, line.key, state, task.id, task.status.value, json.dumps(record))
                for line, task, record, state in finals]
        self.journal.lines_finished(self.name, rows)
        for line, _, record, state in finals:
            self.emit(line, record, None, completed=state == R.DONE)

    def unknown(self, line: BatchLine, message: str, task_id: str | None) -> None:
        self.stats.unknown += 1
        self.emit(line, R.unknown_record(line, message, task_id=task_id), R.UNKNOWN, task_id=task_id)

    def emit(self, line: BatchLine, record: dict[str, Any], state: str | None, *,
             task_id: str | None = None, completed: bool = False) -> None:
        """Journal the line's state (None: leave the journal alone), count it, write its record."""
        if state is not None:
            self.journal.line_set(self.name, line.ident, line=line.number, key=line.key, state=state,
                                  task_id=task_id, record=record)
        if completed:
            self.stats.done += 1
        else:
            self.stats.failed += 1
        self.sink(record)
