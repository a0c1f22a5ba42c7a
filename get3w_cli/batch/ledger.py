"""A batch's ledger: each line's state in the journal, the counters and the output, kept in step.

The order of the writes is what makes a batch safe to kill at any moment: ``submitting`` is
committed before the POST, ``submitted`` (with the task) as soon as the answer arrives, and
the final record before the line is handed to the output. With ``--no-history`` the journal
keeps nothing and only the counters and the output remain.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Callable

from get3w_cli.batch import report as R
from get3w_cli.batch.lines import BatchLine
from get3w_cli.constants import BATCH_NAME_HASH_CHARS
from get3w_cli.errors import UsageError

if TYPE_CHECKING:
    from get3w_cli.journal import Journal, JournalEntry
    from get3w_cli.records import Task

Sink = Callable[[dict[str, Any]], None]


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
        self._finals: list[tuple[BatchLine, Task, dict[str, Any], str]] = []
        self._flushed: asyncio.Future[None] | None = None

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

    def submitting(self, line: BatchLine) -> None:
        self.journal.line_set(self.name, line.ident, line=line.number, key=line.key, state=R.SUBMITTING)

    def submitted(self, line: BatchLine, task: Task, *, base_url: str) -> None:
        with self.journal.atomic():
            self.journal.task_submitted(task, base_url=base_url, input=line.input, batch=self.name)
            self.journal.line_set(self.name, line.ident, line=line.number, key=line.key, state=R.SUBMITTED,
                                  task_id=task.id)

    def forget(self, line: BatchLine) -> None:
        """Nothing was created for the line (a 429, a connection that never opened)."""
        self.journal.line_clear(self.name, line.ident)

    # --- the end of a line -------------------------------------------------------------------------

    async def finished(self, line: BatchLine, task: Task, record: dict[str, Any], state: str) -> None:
        """A task with its final (or last known) record: journal both, then hand it out.

        The lines that finish in the same turn of the event loop share one transaction (one
        commit, not one a line); each caller returns once its line is journalled and written.
        """
        self._finals.append((line, task, record, state))
        if self._flushed is None:
            loop = asyncio.get_running_loop()
            self._flushed = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._flushed)

    def _flush(self) -> None:
        finals, self._finals = self._finals, []
        flushed, self._flushed = self._flushed, None
        assert flushed is not None
        try:
            rows = [(line.ident, line.number, line.key, state, task.id, task.status.value, json.dumps(record))
                    for line, task, record, state in finals]
            self.journal.lines_finished(self.name, rows)
            for line, _, record, state in finals:
                self.emit(line, record, None, completed=state == R.DONE)
        except BaseException as exc:  # every line of the turn fails alike, as each did alone
            flushed.set_exception(exc)
            return
        flushed.set_result(None)

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
