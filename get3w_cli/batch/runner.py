"""The batch engine: a reader feeding workers through a bounded queue; journal first, always.

Never lose, never pay twice (the submit itself is in submit.py):
- a line is journalled ``submitting`` before its POST, ``submitted`` (with the task id) as
  soon as the answer arrives, then ``done`` / ``failed`` with its final record;
- on Ctrl-C no new line is submitted; POSTs already sent get SUBMIT_ANSWER_GRACE to answer
  so their ids are journalled; waits are dropped (``--resume`` waits again);
- every line has a deadline, its ``--timeout`` from when a worker takes it, covering the
  submit (429s included) and the wait.

On ``resume``: finished lines are re-emitted from the journal (failed ones are submitted again
as new tasks with ``retry_failed``), submitted ones are polled (their callback URL died with
the last run), unknown ones are reported, changed ones (with ``resubmit_changed``) and the rest
submitted. The runner prints nothing: its ``Ledger`` journals each line, counts it and hands its
record to the output; notes go to ``notify``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from get3w_cli.batch import report as R
from get3w_cli.batch.finish import Finisher
from get3w_cli.batch.ledger import Ledger
from get3w_cli.batch.lines import BatchLine
from get3w_cli.batch.pacing import Pacer
from get3w_cli.batch.submit import Connection, Notify, Submitter
from get3w_cli.constants import BATCH_QUEUE_FACTOR
from get3w_cli.errors import AuthError, G3wError, NetworkError, TransientError
from get3w_cli.names import Via
from get3w_cli.records import Status, Task
from get3w_cli.waiting import CallbackSource, WaitPlan

if TYPE_CHECKING:
    from get3w_cli.downloads import NameTemplate
    from get3w_cli.http import HttpSession
    from get3w_cli.providers import Route

__all__ = ["BatchConfig", "BatchRunner", "Connection"]


@dataclass(frozen=True)
class BatchConfig:
    name: str
    concurrency: int
    mode: str  # webhook | poll | sync ("auto" is resolved before)
    plan: WaitPlan  # its timeout is each line's deadline
    callback_url: str | None = None  # the one listener's URL, in webhook mode
    output_dir: Path | None = None
    resume: bool = False
    resubmit_unknown: bool = False
    resubmit_changed: bool = False
    retry_failed: bool = False  # on resume, submit the lines whose task failed again, as new tasks
    name_template: NameTemplate | None = None  # output file names (default <id>_<index>.<ext>)


@dataclass(frozen=True)
class _Job:
    line: BatchLine
    task_id: str | None = None  # set: already submitted, wait for it
    ref: str | None = None  # the task row of that submit


class BatchRunner:
    """Runs the lines of one batch; ``await run(lines)`` returns the final Stats."""

    def __init__(self, config: BatchConfig, *, ledger: Ledger, connect: Callable[[Route], Connection],
                 session: HttpSession, inbox: CallbackSource | None = None,
                 notify: Notify = lambda kind, text: None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.ledger, self.connect, self.session = config, ledger, connect, session
        self.stats, self.inbox, self.notify, self.clock = ledger.stats, inbox, notify, clock
        self._pacers: dict[str, Pacer] = {}
        self._stopping = False
        self.submitter = Submitter(ledger, callback_url=config.callback_url if config.mode == Via.WEBHOOK else None,
                                   timeout=config.plan.timeout, clock=clock, notify=notify,
                                   stopping=lambda: self._stopping)
        self.finisher = Finisher(config.plan, ledger, session, inbox=inbox if config.mode == Via.WEBHOOK else None,
                                 output_dir=config.output_dir, name_template=config.name_template)

    async def run(self, lines: Iterable[BatchLine]) -> R.Stats:
        """Run every line; raises AuthError (fatal for the batch) or CancelledError (Ctrl-C)."""
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(self.config.concurrency * BATCH_QUEUE_FACTOR)
        jobs = [asyncio.ensure_future(self._read(lines, queue))]
        jobs += [asyncio.ensure_future(self._work(queue)) for _ in range(self.config.concurrency)]
        try:
            # Not gather: cancelling it would cancel the workers a second time, cutting short
            # the grace their POSTs in flight get.
            done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            await self._stop(jobs)
            raise
        failed = next((job for job in done if not job.cancelled() and job.exception()), None)
        if failed is not None:
            await self._stop(jobs)
            raise failed.exception()  # type: ignore[misc]
        return self.stats

    async def _stop(self, jobs: Sequence[asyncio.Future[None]]) -> None:
        """Cancel every job once and wait until each has journalled what it was doing."""
        self._stopping = True
        for job in jobs:
            job.cancel()
        await asyncio.wait(jobs)
        for job in jobs:
            if not job.cancelled():
                job.exception()  # retrieved: the first failure is the one raised

    # --- reader ------------------------------------------------------------------------------

    async def _read(self, lines: Iterable[BatchLine], queue: asyncio.Queue[_Job | None]) -> None:
        for line in lines:
            if self._stopping:
                break
            job = self._triage(line) if self.config.resume else _Job(line)
            if job is not None:
                await queue.put(job)
            else:
                await asyncio.sleep(0)  # re-emitting thousands of lines must not starve the workers
        for _ in range(self.config.concurrency):
            await queue.put(None)

    def _triage(self, line: BatchLine) -> _Job | None:
        """On resume: the job a journalled line still needs, or None when it is settled now."""
        known = self.ledger.known(line)
        if known is None:
            return _Job(line)
        state, task_id = known.state, known.task_id
        if self.config.resubmit_changed and known.request_hash not in (None, line.request_hash):
            return _Job(line)  # listed before anything was sent; its earlier task stays in the journal
        if state == R.FAILED and self.config.retry_failed:
            return _Job(line)  # a new task (said before anything was sent); the failed one stays journalled
        if state in (R.DONE, R.FAILED):
            self.ledger.replay(line, state, task_id)
            return None
        if state == R.SUBMITTED and task_id:
            return _Job(line, task_id, known.ref or task_id)
        if self.config.resubmit_unknown:
            return _Job(line)
        self.ledger.unknown(line, "an earlier run sent this line's submit and got no answer; the task may exist"
                            " (not resubmitted: use --resubmit-unknown to send it again)", known.ref, task_id)
        return None

    # --- workers -----------------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[_Job | None]) -> None:
        # Stopping, a worker leaves at once rather than drain the queue: a cancellation can be
        # lost (Python 3.11's asyncio.wait_for swallows one that coincides with its result), and
        # a worker that lost it must not wait for lines from a reader that is gone.
        while not self._stopping and (job := await queue.get()) is not None:
            if job.task_id is not None:
                await self._rewait(job.line, job.task_id, job.ref or job.task_id)
            else:
                await self._submit_line(job.line)

    def _pacer(self, provider: str) -> Pacer:
        if provider not in self._pacers:
            self._pacers[provider] = Pacer(self.config.concurrency, clock=self.clock)
        return self._pacers[provider]

    async def _submit_line(self, line: BatchLine) -> None:
        conn = self.connect(line.route)
        pacer = self._pacer(line.route.provider)
        sync = self.config.mode == Via.SYNC and conn.submit.has_sync
        deadline = self.clock() + self.config.plan.timeout
        try:
            posted = await self.submitter.submit(line, conn, pacer, sync=sync, deadline=deadline)
        except AuthError:
            self._stopping = True  # no worker starts another line with a refused key
            raise
        if posted is None:
            return
        try:
            await self.finisher.wait(line, conn.wait, posted.task, posted.ref, posted.started, sync=sync,
                                     timeout=max(0.0, deadline - self.clock()))
        finally:
            pacer.release()
            self.stats.in_flight -= 1

    async def _rewait(self, line: BatchLine, task_id: str, ref: str) -> None:
        """Resume: poll a task submitted by an earlier run."""
        entry = self.ledger.task(task_id)
        route = line.route if entry is None else dataclasses.replace(
            line.route, provider=entry.provider, api=entry.api, model=entry.model)
        adapter = self.connect(route).wait
        pacer = self._pacer(route.provider)
        deadline = self.clock() + self.config.plan.timeout
        started = asyncio.get_running_loop().time()
        if await pacer.acquire(deadline) is None:
            snapshot = Task(task_id, route.provider, route.api, route.model, Status.PROCESSING)
            message = f"not looked at within --timeout ({self.config.plan.timeout:g}s); --resume waits again"
            await self.finisher.stuck(line, ref, snapshot, (R.TIMEOUT, message), started)
            return
        self.stats.in_flight += 1
        try:
            try:
                task = await adapter.get(task_id)
            except (TransientError, NetworkError):
                task = Task(task_id, route.provider, route.api, route.model, Status.PROCESSING)
            except G3wError as exc:
                snapshot = Task(task_id, route.provider, route.api, route.model, Status.PROCESSING)
                await self.finisher.stuck(line, ref, snapshot, (R.WAIT_FAILED, exc.message), started)
                return
            await self.finisher.wait(line, adapter, task, ref, started, sync=False, rewait=True, done_via=Via.POLL,
                                     timeout=max(0.0, deadline - self.clock()))
        finally:
            pacer.release()
            self.stats.in_flight -= 1
