"""The batch engine: a reader feeding workers through a bounded queue; journal first, always.

Never lose, never pay twice:
- a line is journalled ``submitting`` before its POST, ``submitted`` (with the task id) as
  soon as the answer arrives, then ``done`` / ``failed`` with its final record;
- a 429 (or 503) on a submit means nothing was created: the line is forgotten, the pace is
  lowered (see pacing) and it is sent again; a submit that may have arrived without an
  answer is ``unknown`` and is never sent again unless the batch is told to;
- on Ctrl-C no new line is submitted; POSTs already sent get BATCH_INTERRUPT_GRACE to answer
  so their ids are journalled; waits are dropped (``--resume`` waits again).

On ``resume``: finished lines are re-emitted from the journal, submitted ones are polled
(their callback URL died with the last run), unknown ones are reported, the rest submitted.
The runner prints nothing: it updates ``Stats``, hands records to ``sink`` and notes to
``notify``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from get3w_cli.batch import report as R
from get3w_cli.batch.lines import BatchLine
from get3w_cli.batch.pacing import Pacer
from get3w_cli.constants import (
    BATCH_INTERRUPT_GRACE, BATCH_QUEUE_FACTOR, BATCH_SUBMIT_CLIENT_CONNECTIONS, BATCH_SUBMIT_CLIENTS,
    BATCH_SUBMIT_MAX_ATTEMPTS,
)
from get3w_cli.errors import (
    AuthError, G3wError, NetworkError, RejectedError, SubmitUnknownError, TransientError, UsageError,
    WaitTimeoutError,
)
from get3w_cli.records import Status, Task, utc_now_iso
from get3w_cli.waiting import POLL, SYNC, WEBHOOK, CallbackSource, Outcome, WaitPlan, wait_for

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.journal import Journal
    from get3w_cli.providers import Adapter, Route

_RESEND = (429, 503)  # answers to a POST that prove nothing was created
Notify = Callable[[str, str], None]


@dataclass(frozen=True)
class Connection:
    """One provider API as the batch uses it."""

    submits: tuple[Adapter, ...]  # one attempt each (429s come back to the pacer), used in turn
    wait: Adapter  # polls (and retries) as usual
    base_url: str


@dataclass(frozen=True)
class BatchConfig:
    name: str
    concurrency: int
    mode: str  # webhook | poll | sync ("auto" is resolved before)
    plan: WaitPlan
    callback_url: str | None = None  # the one listener's URL, in webhook mode
    output_dir: Path | None = None
    resume: bool = False
    resubmit_unknown: bool = False


@dataclass(frozen=True)
class _Job:
    line: BatchLine
    task_id: str | None = None  # set: already submitted, wait for it


class BatchRunner:
    """Runs the lines of one batch; ``await run(lines)`` returns the final Stats."""

    def __init__(self, config: BatchConfig, *, journal: Journal, connect: Callable[[Route], Connection],
                 session: HttpSession, stats: R.Stats, sink: Callable[[dict[str, Any]], None],
                 inbox: CallbackSource | None = None, notify: Notify = lambda kind, text: None) -> None:
        self.config, self.journal, self.connect, self.session = config, journal, connect, session
        self.stats, self.sink, self.inbox, self.notify = stats, sink, inbox, notify
        self._pacers: dict[str, Pacer] = {}
        self._stopping = False
        # POSTs at once: -j counts tasks in flight, most of them waiting, not posting.
        self._posting = asyncio.Semaphore(BATCH_SUBMIT_CLIENTS * BATCH_SUBMIT_CLIENT_CONNECTIONS)
        self._turn = 0

    async def run(self, lines: Iterable[BatchLine]) -> R.Stats:
        """Run every line; raises AuthError (fatal for the batch) or CancelledError (Ctrl-C)."""
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(self.config.concurrency * BATCH_QUEUE_FACTOR)
        jobs = [asyncio.ensure_future(self._read(lines, queue))]
        jobs += [asyncio.ensure_future(self._work(queue)) for _ in range(self.config.concurrency)]
        try:
            await asyncio.gather(*jobs)
        except BaseException:
            self._stopping = True
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            raise
        return self.stats

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
        known = self.journal.line_get(self.config.name, line.ident)
        if known is None:
            return _Job(line)
        state, task_id = known
        if state in (R.DONE, R.FAILED):
            record = self.journal.line_record(self.config.name, line.ident) or R.bare_record(
                line, state, None, "finished in an earlier run; its record was not kept", task_id=task_id)
            self.stats.resumed += 1
            self._emit(line, R.with_key(record, line), None, completed=state == R.DONE)
            return None
        if state == R.SUBMITTED and task_id:
            return _Job(line, task_id)
        if self.config.resubmit_unknown:
            return _Job(line)
        self._unknown(line, "an earlier run sent this line's submit and got no answer; the task may exist"
                            " (not resubmitted: use --resubmit-unknown to send it again)", task_id)
        return None

    # --- workers -----------------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[_Job | None]) -> None:
        while (job := await queue.get()) is not None:
            if self._stopping:
                continue
            if job.task_id is not None:
                await self._rewait(job.line, job.task_id)
            else:
                await self._submit_line(job.line)

    def _pacer(self, provider: str) -> Pacer:
        if provider not in self._pacers:
            self._pacers[provider] = Pacer(self.config.concurrency)
        return self._pacers[provider]

    async def _submit_line(self, line: BatchLine) -> None:
        conn = self.connect(line.route)
        pacer = self._pacer(line.route.provider)
        sync = self.config.mode == SYNC and conn.submits[0].has_sync
        failures = 0
        while True:
            epoch = await pacer.acquire()
            self.stats.in_flight += 1
            started = asyncio.get_running_loop().time()
            try:
                task = await self._post(line, conn, sync=sync)
                break
            except BaseException as exc:
                pacer.release()
                self.stats.in_flight -= 1
                if isinstance(exc, TransientError) and exc.status in _RESEND:
                    self._throttled(line, pacer, epoch, exc)
                    continue
                if isinstance(exc, NetworkError) and not isinstance(exc, SubmitUnknownError):
                    failures += 1
                    if await self._unsent(line, exc, failures):
                        continue
                    return
                self._submit_failed(line, exc)
                return
        pacer.accepted()
        try:
            await self._wait(line, conn.wait, task, started, sync=sync)
        finally:
            pacer.release()
            self.stats.in_flight -= 1

    async def _post(self, line: BatchLine, conn: Connection, *, sync: bool) -> Task:
        """Journal, submit, journal: shielded from Ctrl-C for BATCH_INTERRUPT_GRACE."""
        posting = asyncio.ensure_future(self._post_journalled(line, conn, sync=sync))
        try:
            return await asyncio.shield(posting)
        except asyncio.CancelledError:
            if not posting.done():
                # The POST may be at the provider already: let its answer reach the journal.
                await asyncio.wait({posting}, timeout=BATCH_INTERRUPT_GRACE)
                posting.cancel()
            if posting.done() and not posting.cancelled():
                posting.exception()  # retrieved: it is reported by the journal, not raised
            raise

    async def _post_journalled(self, line: BatchLine, conn: Connection, *, sync: bool) -> Task:
        name = self.config.name
        url = self.config.callback_url if self.config.mode == WEBHOOK else None
        async with self._posting:
            self._turn += 1
            adapter = conn.submits[self._turn % len(conn.submits)]
            self.journal.line_set(name, line.ident, line=line.number, key=line.key, state=R.SUBMITTING)
            task = await adapter.submit(line.route.model, line.input, webhook_url=url, sync=sync)
        if not task.created_at:
            task = dataclasses.replace(task, created_at=utc_now_iso())
        with self.journal.atomic():
            self.journal.task_submitted(task, base_url=conn.base_url, input=line.input, batch=name)
            self.journal.line_set(name, line.ident, line=line.number, key=line.key, state=R.SUBMITTED,
                                  task_id=task.id)
        return task

    def _throttled(self, line: BatchLine, pacer: Pacer, epoch: int, exc: TransientError) -> None:
        self.journal.line_clear(self.config.name, line.ident)
        before = pacer.limit
        pause = pacer.throttled(epoch, exc.retry_after)
        self.stats.throttled += 1
        if pacer.limit < before:
            self.notify("note", f"{line.route.provider} is rate limiting (HTTP {exc.status}): "
                                f"{pacer.limit} in flight at most, pausing {pause:g}s")

    async def _unsent(self, line: BatchLine, exc: NetworkError, failures: int) -> bool:
        """The connection never opened: retry with a backoff, or give up and say so."""
        self.journal.line_clear(self.config.name, line.ident)
        if failures < BATCH_SUBMIT_MAX_ATTEMPTS and not self._stopping:
            await asyncio.sleep(min(2.0 ** failures / 4, 8.0))
            return True
        self._emit(line, R.bare_record(line, Status.FAILED.value, R.SUBMIT_FAILED,
                                       f"not submitted ({exc.message}); --resume will submit it"), None)
        return False

    def _submit_failed(self, line: BatchLine, exc: BaseException) -> None:
        """A submit that ended without a task: rejected (failed), auth (fatal), or unknown."""
        if isinstance(exc, (RejectedError, UsageError)):
            code = getattr(exc, "code", None) or R.REJECTED
            record = R.bare_record(line, Status.FAILED.value, code, exc.message)
            self._emit(line, record, R.FAILED)
        elif isinstance(exc, AuthError):
            self.journal.line_clear(self.config.name, line.ident)
            self._stopping = True
            raise exc
        elif isinstance(exc, G3wError):
            # No answer, a 5xx or an answer we cannot read: a task may exist; never pay twice.
            self._unknown(line, exc.message, None)
        else:
            raise exc

    # --- waiting and finishing ------------------------------------------------------------

    async def _rewait(self, line: BatchLine, task_id: str) -> None:
        """Resume: poll a task submitted by an earlier run."""
        entry = self.journal.find(task_id)
        route = line.route if entry is None else dataclasses.replace(
            line.route, provider=entry.provider, api=entry.api, model=entry.model)
        adapter = self.connect(route).wait
        pacer = self._pacer(route.provider)
        await pacer.acquire()
        self.stats.in_flight += 1
        started = asyncio.get_running_loop().time()
        try:
            try:
                task = await adapter.get(task_id)
            except (TransientError, NetworkError):
                task = Task(task_id, route.provider, route.api, route.model, Status.PROCESSING)
            except G3wError as exc:
                snapshot = Task(task_id, route.provider, route.api, route.model, Status.PROCESSING)
                self._emit_stuck(line, snapshot, R.WAIT_FAILED, exc.message, started)
                return
            await self._wait(line, adapter, task, started, sync=False, rewait=True, done_via=POLL)
        finally:
            pacer.release()
            self.stats.in_flight -= 1

    async def _wait(self, line: BatchLine, adapter: Adapter, task: Task, started: float, *,
                    sync: bool, rewait: bool = False, done_via: str | None = None) -> None:
        webhook = self.config.mode == WEBHOOK and self.inbox is not None and not rewait and not sync
        plan = dataclasses.replace(self.config.plan, mode=WEBHOOK if webhook else POLL)
        try:
            outcome = await wait_for(adapter, task, plan, inbox=self.inbox if webhook else None,
                                     via_if_done=SYNC if sync else done_via)
        except G3wError as exc:
            latest = await _latest(adapter, task)
            if not latest.status.terminal:
                code = R.TIMEOUT if isinstance(exc, WaitTimeoutError) else R.WAIT_FAILED
                self._emit_stuck(line, latest, code, exc.message, started)
                return
            outcome = Outcome(latest, POLL, 0.0)
        await self._finish(line, outcome, started, created_at=task.created_at)

    async def _finish(self, line: BatchLine, outcome: Outcome, started: float, *, created_at: str | None) -> None:
        task = outcome.task
        if not task.created_at and created_at:
            task = dataclasses.replace(task, created_at=created_at)
        if task.status is Status.COMPLETED and not task.completed_at:
            task = dataclasses.replace(task, completed_at=utc_now_iso())
        state, files, trouble = (R.DONE if task.status is Status.COMPLETED else R.FAILED), None, None
        if self.config.output_dir is not None and task.status is Status.COMPLETED:
            from get3w_cli.downloads import download_outputs
            from get3w_cli.errors import DownloadError

            try:
                files = await download_outputs(self.session, task, self.config.output_dir)
            except DownloadError as exc:
                state, trouble = R.SUBMITTED, exc.message  # --resume downloads again
        elapsed = asyncio.get_running_loop().time() - started
        record = R.with_key(task.record(input=line.input, via=outcome.via, files=files, elapsed_s=elapsed), line)
        if trouble:
            record["error"] = {"code": R.DOWNLOAD_FAILED, "message": trouble}
        with self.journal.atomic():
            self.journal.task_updated(task.id, task.status.value, record)
            self._emit(line, record, state, task_id=task.id, completed=state == R.DONE)

    def _emit_stuck(self, line: BatchLine, task: Task, code: str, message: str, started: float) -> None:
        """A task whose end is not known (timed out, polls refused): stays submitted for --resume."""
        elapsed = asyncio.get_running_loop().time() - started
        record = R.with_key(task.record(input=line.input, elapsed_s=elapsed), line)
        record["error"] = {"code": code, "message": message}
        self._emit(line, record, R.SUBMITTED, task_id=task.id)

    def _unknown(self, line: BatchLine, message: str, task_id: str | None) -> None:
        self.stats.unknown += 1
        self._emit(line, R.unknown_record(line, message, task_id=task_id), R.UNKNOWN, task_id=task_id)

    def _emit(self, line: BatchLine, record: dict[str, Any], state: str | None, *,
              task_id: str | None = None, completed: bool = False) -> None:
        """Journal the line's state (None: leave the journal alone), count it, hand it out."""
        if state is not None:
            self.journal.line_set(self.config.name, line.ident, line=line.number, key=line.key, state=state,
                                  task_id=task_id, record=record)
        if completed:
            self.stats.done += 1
        else:
            self.stats.failed += 1
        self.sink(record)


async def _latest(adapter: Adapter, task: Task) -> Task:
    """One more look at a task whose wait ended early; the last known snapshot if that fails."""
    try:
        return await adapter.get(task.id)
    except G3wError:
        return task
