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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from get3w_cli.batch import report as R
from get3w_cli.batch.lines import BatchLine, LineProblem
from get3w_cli.journal import LineSubmit, new_ref

if TYPE_CHECKING:
    from get3w_cli.journal import Journal, JournalEntry, LineState
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
        except BaseException as exc:  # every row of the turn fails alike, as each did alone  # noqa: BLE001 - every row of the turn fails alike, whatever the write raised
            written.set_exception(exc)
            return
        written.set_result(None)


class Ledger:
    """Journal, counters and output of one batch run."""

    def __init__(self, journal: Journal, name: str, stats: R.Stats, sink: Sink) -> None:
        self.journal, self.name, self.stats, self.sink = journal, name, stats, sink
        self._submitting: _PerTurn[LineSubmit] = _PerTurn(lambda rows: journal.lines_submitting(name, rows))
        self._submitted: _PerTurn[tuple[str, str, str, Task]] = _PerTurn(
            lambda rows: journal.lines_submitted(name, rows))
        self._finished = _PerTurn(self._write_finished)

    # --- what an earlier run left --------------------------------------------------------------

    def known(self, line: BatchLine) -> LineState | None:
        """What earlier runs journalled of the line, or None when it was never submitted."""
        return self.journal.line_get(self.name, line.ident)

    def task(self, task_id: str) -> JournalEntry | None:
        return self.journal.find(task_id)

    def replay(self, line: BatchLine, state: str, task_id: str | None) -> None:
        """Re-emit a line that finished in an earlier run, from its stored record."""
        record = self.journal.line_record(self.name, line.ident) or R.bare_record(
            line, state, None, "finished in an earlier run; its record was not kept", task_id=task_id)
        self.stats.resumed += 1
        self.emit(line, R.with_key(record, line), completed=state == R.DONE)

    # --- the submit ------------------------------------------------------------------------------

    async def submitting(self, line: BatchLine, base_url: str) -> str:
        """Journalled before the POST (a crash after it leaves the line "unknown", never resent);
        returns the ref of the line's task row."""
        ref, route = new_ref(), line.route
        await self._submitting(LineSubmit(line.ident, line.number, line.key, line.request_hash, ref, route.provider,
                                          route.api, route.model, base_url, line.input))
        return ref

    async def submitted(self, line: BatchLine, ref: str, task: Task) -> None:
        await self._submitted((line.ident, R.SUBMITTED, ref, task))

    def forget(self, line: BatchLine, ref: str) -> None:
        """Nothing was created for the line (a 429, a connection that never opened, a refusal)."""
        self.journal.line_forget(self.name, line.ident, ref)

    # --- the end of a line -------------------------------------------------------------------------

    async def finished(self, line: BatchLine, ref: str, task: Task, record: dict[str, Any], state: str) -> None:
        """A task with its final (or last known) record: journal both, then hand it out."""
        await self._finished((line, ref, task, record, state))

    def _write_finished(self, finals: list[tuple[BatchLine, str, Task, dict[str, Any], str]]) -> None:
        self.journal.lines_finished(self.name, [(line.ident, state, ref, task.status.value, record)
                                                for line, ref, task, record, state in finals])
        for line, _, _, record, state in finals:
            self.emit(line, record, completed=state == R.DONE)

    def rejected(self, line: BatchLine, ref: str | None, record: dict[str, Any]) -> None:
        """The provider refused the line: no task, the line's own record says why."""
        self.journal.line_rejected(self.name, line.ident, line=line.number, key=line.key,
                                   request_hash=line.request_hash, ref=ref, record=record)
        self.emit(line, record)

    def unknown(self, line: BatchLine, message: str, ref: str | None, task_id: str | None) -> None:
        """The line's POST may have reached the provider without an answer: never resent blindly."""
        record = R.unknown_record(line, message, task_id=task_id)
        self.journal.line_unknown(self.name, line.ident, line=line.number, key=line.key,
                                  request_hash=line.request_hash, ref=ref, message=message, record=record)
        self.stats.unknown += 1
        self.emit(line, record)

    def emit(self, line: BatchLine, record: dict[str, Any], *, completed: bool = False) -> None:
        """Count the line and write its record (the journal is the caller's business)."""
        if completed:
            self.stats.done += 1
        else:
            self.stats.did_not_complete(line.out_key)
        self.sink(record)

    def invalid(self, problem: LineProblem) -> None:
        """A line skipped as invalid (--skip-invalid): its record, so that no key goes missing.
        Not journalled: the file is checked again by every run, which writes these again."""
        self.stats.skipped_invalid(problem.out_key)
        self.sink(R.invalid_record(problem))
