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
The runner prints nothing: its ``Ledger`` journals each line, counts it and hands its record
to the output; notes go to ``notify``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from get3w_cli.batch import report as R
from get3w_cli.batch.finish import Finisher
from get3w_cli.batch.ledger import Ledger
from get3w_cli.batch.lines import BatchLine
from get3w_cli.batch.pacing import Pacer
from get3w_cli.constants import (
    BATCH_INTERRUPT_GRACE, BATCH_QUEUE_FACTOR, BATCH_SUBMITS_AT_ONCE,
    BATCH_SUBMIT_MAX_ATTEMPTS, RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP,
)
from get3w_cli.errors import (
    AuthError, G3wError, NetworkError, RejectedError, SubmitUnknownError, TransientError, UsageError,
)
from get3w_cli.records import Status, Task, utc_now_iso
from get3w_cli.waiting import POLL, SYNC, WEBHOOK, CallbackSource, WaitPlan

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.providers import Adapter, Route

_RESEND = (429, 503)  # answers to a POST that prove nothing was created
Notify = Callable[[str, str], None]


@dataclass(frozen=True)
class Connection:
    """One provider API as the batch uses it."""

    submit: Adapter  # one attempt a request (429s come back to the pacer)
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
    ref: str | None = None  # the task row of that submit


class BatchRunner:
    """Runs the lines of one batch; ``await run(lines)`` returns the final Stats."""

    def __init__(self, config: BatchConfig, *, ledger: Ledger, connect: Callable[[Route], Connection],
                 session: HttpSession, inbox: CallbackSource | None = None,
                 notify: Notify = lambda kind, text: None) -> None:
        self.config, self.ledger, self.connect, self.session = config, ledger, connect, session
        self.stats, self.inbox, self.notify = ledger.stats, inbox, notify
        self._pacers: dict[str, Pacer] = {}
        self._stopping = False
        # POSTs at once: -j counts tasks in flight, most of them waiting, not posting.
        self._posting = asyncio.Semaphore(BATCH_SUBMITS_AT_ONCE)
        self.finisher = Finisher(config.plan, ledger, session, inbox=inbox if config.mode == WEBHOOK else None,
                                 output_dir=config.output_dir)

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
        while (job := await queue.get()) is not None:
            if self._stopping:
                continue
            if job.task_id is not None:
                await self._rewait(job.line, job.task_id, job.ref or job.task_id)
            else:
                await self._submit_line(job.line)

    def _pacer(self, provider: str) -> Pacer:
        if provider not in self._pacers:
            self._pacers[provider] = Pacer(self.config.concurrency)
        return self._pacers[provider]

    async def _submit_line(self, line: BatchLine) -> None:
        conn = self.connect(line.route)
        pacer = self._pacer(line.route.provider)
        sync = self.config.mode == SYNC and conn.submit.has_sync
        failures = 0
        while True:
            epoch = await pacer.acquire()
            self.stats.in_flight += 1
            started = asyncio.get_running_loop().time()
            try:
                ref, task = await self._post(line, conn, sync=sync)
                break
            except BaseException as caught:
                pacer.release()
                self.stats.in_flight -= 1
                if not isinstance(caught, _NotSubmitted):
                    raise
                exc, ref = caught.error, caught.ref
            if isinstance(exc, TransientError) and exc.status in _RESEND:
                self._throttled(line, pacer, epoch, exc)
                continue
            if isinstance(exc, NetworkError) and not isinstance(exc, SubmitUnknownError):
                failures += 1
                if await self._unsent(line, exc, failures):
                    continue
                return
            self._submit_failed(line, exc, ref)
            return
        pacer.accepted()
        try:
            await self.finisher.wait(line, conn.wait, task, ref, started, sync=sync)
        finally:
            pacer.release()
            self.stats.in_flight -= 1

    async def _post(self, line: BatchLine, conn: Connection, *, sync: bool) -> tuple[str, Task]:
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

    async def _post_journalled(self, line: BatchLine, conn: Connection, *, sync: bool) -> tuple[str, Task]:
        """(ref, task) of the submitted line; raises _NotSubmitted when the provider gave no task."""
        url = self.config.callback_url if self.config.mode == WEBHOOK else None
        async with self._posting:
            ref = await self.ledger.submitting(line, conn.base_url)
            try:
                task = await conn.submit.submit(line.route.model, line.input, webhook_url=url, sync=sync)
            except G3wError as exc:
                if _nothing_created(exc):
                    self.ledger.forget(line, ref)  # --resume may send it again
                raise _NotSubmitted(exc, ref) from exc
        if not task.created_at:
            task = dataclasses.replace(task, created_at=utc_now_iso())
        await self.ledger.submitted(line, ref, task)
        return ref, task

    def _throttled(self, line: BatchLine, pacer: Pacer, epoch: int, exc: TransientError) -> None:
        before = pacer.limit
        pause = pacer.throttled(epoch, exc.retry_after)
        self.stats.throttled += 1
        if pacer.limit < before:
            self.notify("note", f"{line.route.provider} is rate limiting (HTTP {exc.status}): "
                                f"{pacer.limit} in flight at most, pausing {pause:g}s")

    async def _unsent(self, line: BatchLine, exc: NetworkError, failures: int) -> bool:
        """The connection never opened: retry with a backoff, or give up and say so."""
        if failures < BATCH_SUBMIT_MAX_ATTEMPTS and not self._stopping:
            await asyncio.sleep(min(RETRY_BACKOFF_CAP, RETRY_BACKOFF_BASE * 2 ** (failures - 1)))
            return True
        self.ledger.emit(line, R.bare_record(line, Status.FAILED.value, R.SUBMIT_FAILED,
                                             f"not submitted ({exc.message}); --resume will submit it"))
        return False

    def _submit_failed(self, line: BatchLine, exc: G3wError, ref: str) -> None:
        """A submit that ended without a task: rejected (failed), auth (fatal), or unknown."""
        if isinstance(exc, (RejectedError, UsageError)):
            code = getattr(exc, "code", None) or R.REJECTED
            self.ledger.rejected(line, None, R.bare_record(line, Status.FAILED.value, code, exc.message))
        elif isinstance(exc, AuthError):
            self._stopping = True
            raise exc
        else:
            # No answer, a 5xx or an answer we cannot read: a task may exist; never pay twice.
            self.ledger.unknown(line, exc.message, ref, None)

    async def _rewait(self, line: BatchLine, task_id: str, ref: str) -> None:
        """Resume: poll a task submitted by an earlier run."""
        entry = self.ledger.task(task_id)
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
                await self.finisher.stuck(line, ref, snapshot, (R.WAIT_FAILED, exc.message), started)
                return
            await self.finisher.wait(line, adapter, task, ref, started, sync=False, rewait=True, done_via=POLL)
        finally:
            pacer.release()
            self.stats.in_flight -= 1


class _NotSubmitted(Exception):
    """A submit that gave no task, with the ref of the row journalled for it."""

    def __init__(self, error: G3wError, ref: str) -> None:
        super().__init__(error.message)
        self.error, self.ref = error, ref


def _nothing_created(exc: G3wError) -> bool:
    """Whether a failed submit proves that the provider created no task."""
    if isinstance(exc, TransientError):
        return exc.status in _RESEND
    if isinstance(exc, NetworkError):
        return not isinstance(exc, SubmitUnknownError)  # the connection never opened
    return isinstance(exc, (RejectedError, AuthError, UsageError))
