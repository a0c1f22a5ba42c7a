"""Submitting one batch line: journal, POST, journal; again after a 429, never past its deadline.

- the line is journalled ``submitting`` (its task row, with a ref) before its POST and
  ``submitted`` (with the task id) as soon as the answer arrives;
- a 429 (or 503) means nothing was created: the row is forgotten, the pace lowered (see
  pacing) and the line sent again; so is a connection that never opened, with a backoff;
- a POST that may have arrived without an answer leaves the line ``unknown``, never resent;
- every line has a deadline (its ``--timeout``, from when a worker takes it): a line still
  throttled or unsent then ends with ``error.code`` ``rate_limited`` and stays unjournalled,
  so ``--resume`` submits it;
- on Ctrl-C a POST already sent gets BATCH_INTERRUPT_GRACE to answer, so its id is journalled.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from get3w_cli.batch import report as R
from get3w_cli.batch.ledger import Ledger
from get3w_cli.batch.lines import BatchLine
from get3w_cli.batch.pacing import Pacer
from get3w_cli.constants import (
    BATCH_INTERRUPT_GRACE, BATCH_SUBMIT_MAX_ATTEMPTS, BATCH_SUBMITS_AT_ONCE, RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP,
)
from get3w_cli.errors import (
    AuthError, G3wError, NetworkError, RejectedError, SubmitUnknownError, TransientError, UsageError,
)
from get3w_cli.records import Status, Task, utc_now_iso
from get3w_cli.retry import backoff

if TYPE_CHECKING:
    from get3w_cli.providers import Adapter

_RESEND = (429, 503)  # answers to a POST that prove nothing was created
Notify = Callable[[str, str], None]


@dataclass(frozen=True)
class Connection:
    """One provider API as the batch uses it."""

    submit: Adapter  # one attempt a request (429s come back to the pacer)
    wait: Adapter  # polls (and retries) as usual
    base_url: str


@dataclass(frozen=True)
class Posted:
    """A line the provider accepted: its task row, the task, when its POST began."""

    ref: str
    task: Task
    started: float


class Submitter:
    """Submits lines for one batch run (the runner's workers call ``submit``)."""

    def __init__(self, ledger: Ledger, *, callback_url: str | None, timeout: float,
                 clock: Callable[[], float], notify: Notify, stopping: Callable[[], bool]) -> None:
        self.ledger, self.callback_url, self.timeout = ledger, callback_url, timeout
        self.clock, self.notify, self.stopping = clock, notify, stopping
        # POSTs at once: -j counts tasks in flight, most of them waiting, not posting.
        self._posting = asyncio.Semaphore(BATCH_SUBMITS_AT_ONCE)

    async def submit(self, line: BatchLine, conn: Connection, pacer: Pacer, *, sync: bool,
                     deadline: float) -> Posted | None:
        """POST the line until the provider accepts it (a pacer slot is then held for it), or end
        the line (rejected, unknown, unsent, past its deadline) and return None.

        Raises:
            AuthError: the key was refused; the batch stops.
        """
        failures = 0
        while True:
            epoch = await pacer.acquire(deadline)
            if epoch is None:
                self._expired(line, pacer)
                return None
            self.ledger.stats.in_flight += 1
            started = asyncio.get_running_loop().time()
            try:
                ref, task = await self._post(line, conn, sync=sync)
                pacer.accepted()
                return Posted(ref, task, started)
            except BaseException as caught:
                pacer.release()
                self.ledger.stats.in_flight -= 1
                if not isinstance(caught, _NotSubmitted):
                    raise
                exc, ref = caught.error, caught.ref
            if isinstance(exc, TransientError) and exc.status in _RESEND:
                self._throttled(line, pacer, epoch, exc)
                continue
            if isinstance(exc, NetworkError) and not isinstance(exc, SubmitUnknownError):
                failures += 1
                if await self._unsent(line, exc, failures, deadline):
                    continue
                return None
            self._failed(line, exc, ref)
            return None

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
        async with self._posting:
            ref = await self.ledger.submitting(line, conn.base_url)
            try:
                task = await conn.submit.submit(line.route.model, line.input, webhook_url=self.callback_url,
                                                sync=sync)
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
        self.ledger.stats.throttled += 1
        if pacer.limit < before:
            self.notify("note", f"{line.route.provider} is rate limiting (HTTP {exc.status}): "
                                f"{pacer.limit} in flight at most, pausing {pause:g}s")

    async def _unsent(self, line: BatchLine, exc: NetworkError, failures: int, deadline: float) -> bool:
        """The connection never opened: retry after a backoff (cut at the deadline), or say so."""
        if failures < BATCH_SUBMIT_MAX_ATTEMPTS and not self.stopping():
            pause = backoff(min(RETRY_BACKOFF_CAP, RETRY_BACKOFF_BASE * 2 ** (failures - 1)))
            await asyncio.sleep(max(0.0, min(pause, deadline - self.clock())))
            return True  # the pacer ends the line if its deadline has passed
        self.ledger.emit(line, R.bare_record(line, Status.FAILED.value, R.SUBMIT_FAILED,
                                             f"not submitted ({exc.message}); --resume will submit it"))
        return False

    def _expired(self, line: BatchLine, pacer: Pacer) -> None:
        """The line's deadline passed before any submit was accepted: nothing was created."""
        why = (f"{line.route.provider} was still rate limiting (HTTP 429)" if pacer.throttles
               else "no submit slot came free")
        self.ledger.emit(line, R.bare_record(
            line, Status.FAILED.value, R.RATE_LIMITED,
            f"not submitted within --timeout ({self.timeout:g}s): {why}; --resume will submit it"))

    def _failed(self, line: BatchLine, exc: G3wError, ref: str) -> None:
        """A submit that ended without a task: rejected (failed), auth (fatal), or unknown."""
        if isinstance(exc, (RejectedError, UsageError)):
            code = getattr(exc, "code", None) or R.REJECTED
            self.ledger.rejected(line, None, R.bare_record(line, Status.FAILED.value, code, exc.message))
        elif isinstance(exc, AuthError):
            raise exc
        else:
            # No answer, a 5xx or an answer we cannot read: a task may exist; never pay twice.
            self.ledger.unknown(line, exc.message, ref, None)


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
