"""The end of a batch line: wait for its task, download its outputs, write its record.

Waits go through ``waiting.wait_for``, the engine of ``run`` and ``wait``: by callback through
the batch's one listener, or by polling (always for tasks of an earlier run, whose callback
URL died with it). A wait that ends without a final status (timeout, polls refused) leaves
the line ``submitted`` with its last known record, so ``--resume`` waits again; so does a
download that fails. With ``--name-template``, two outputs of one run given the same file name
is a failed download (``download_failed``), never a file overwritten.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from get3w_cli.batch import report as R
from get3w_cli.batch.ledger import Ledger
from get3w_cli.batch.lines import BatchLine
from get3w_cli.downloads import Namer, NameTemplate, download_outputs
from get3w_cli.errors import DownloadError, G3wError, WaitTimeoutError
from get3w_cli.names import Via
from get3w_cli.records import NO_OUTPUTS, Status, Task, mark_no_outputs
from get3w_cli.waiting import CallbackSource, Outcome, WaitPlan, wait_for

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.providers import Adapter


class Finisher:
    """Waits for the submitted tasks of one batch and hands their records to the ledger."""

    def __init__(self, plan: WaitPlan, ledger: Ledger, session: HttpSession, *,
                 inbox: CallbackSource | None, output_dir: Path | None,
                 name_template: NameTemplate | None = None) -> None:
        self.plan, self.ledger, self.session = plan, ledger, session
        self.inbox, self.output_dir, self.name_template = inbox, output_dir, name_template
        self._names: dict[str, tuple[str, int]] = {}  # file name -> (line ident, output index), this run

    async def wait(self, line: BatchLine, adapter: Adapter, task: Task, ref: str, started: float, *,
                   sync: bool, rewait: bool = False, done_via: str | None = None,
                   timeout: float | None = None) -> None:
        """Wait for ``task`` (by callback unless ``sync`` or ``rewait``) for at most ``timeout``
        (what is left of the line's deadline; default the plan's), then write the line's end."""
        webhook = self.inbox is not None and not rewait and not sync
        plan = dataclasses.replace(self.plan, mode=Via.WEBHOOK if webhook else Via.POLL,
                                   timeout=self.plan.timeout if timeout is None else timeout)
        try:
            outcome = await wait_for(adapter, task, plan, inbox=self.inbox if webhook else None, via_if_done=done_via)
        except G3wError as exc:
            latest = await _latest(adapter, task)
            if not latest.status.terminal:
                code = R.TIMEOUT if isinstance(exc, WaitTimeoutError) else R.WAIT_FAILED
                await self.stuck(line, ref, latest, (code, exc.message), started)
                return
            outcome = Outcome(latest, Via.POLL, 0.0)
        await self._finish(line, ref, outcome, started, created_at=task.created_at)

    async def _finish(self, line: BatchLine, ref: str, outcome: Outcome, started: float, *,
                      created_at: str | None) -> None:
        task = mark_no_outputs(outcome.task)  # completed without outputs: the line did not get its image
        if not task.created_at and created_at:
            task = dataclasses.replace(task, created_at=created_at)
        completed = task.status is Status.COMPLETED and not (task.error and task.error.code == NO_OUTPUTS)
        state, files, trouble = (R.DONE if completed else R.FAILED), None, None
        if self.output_dir is not None and completed:
            try:
                files = await download_outputs(self.session, task, self.output_dir, name=self._namer(line, task))
            except DownloadError as exc:
                state, trouble = R.SUBMITTED, (R.DOWNLOAD_FAILED, exc.message)  # --resume downloads again
        elapsed = asyncio.get_running_loop().time() - started
        record = R.task_record(line, task, via=outcome.via, files=files, elapsed=elapsed, error=trouble)
        await self.ledger.finished(line, ref, task, record, state)

    def _namer(self, line: BatchLine, task: Task) -> Namer | None:
        """The --name-template's names for this line's outputs; one given twice in a run is refused."""
        template = self.name_template
        if template is None:
            return None

        def name(index: int, ext: str) -> str:
            file = template.render(key=line.out_key, index=index, ext=ext, task_id=task.id, line=line.number)
            owner = self._names.setdefault(file, (line.ident, index))
            if owner != (line.ident, index):
                raise DownloadError(f"--name-template gives {file} to two outputs (this one and output {owner[1]} "
                                    "of another line); not overwriting it",
                                    hint="use {key}, {id} or {line} and {index} in --name-template")
            return file

        return name

    async def stuck(self, line: BatchLine, ref: str, task: Task, error: tuple[str, str], started: float) -> None:
        """A task whose end is not known (timed out, polls refused): stays submitted for --resume."""
        elapsed = asyncio.get_running_loop().time() - started
        record = R.task_record(line, task, elapsed=elapsed, error=error)
        await self.ledger.finished(line, ref, task, record, R.SUBMITTED)


async def _latest(adapter: Adapter, task: Task) -> Task:
    """One more look at a task whose wait ended early; the last known snapshot if that fails."""
    try:
        return await adapter.get(task.id)
    except G3wError:
        return task
