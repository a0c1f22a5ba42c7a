"""The journal rows of one task, and its submit: written so that a paid task is never lost.

- the row is written (``submitting``) before the POST; a failure there stops everything, since
  nothing was paid yet;
- the answer's id is journalled at once; a submit whose answer may hide a task is ``unknown``;
- Ctrl-C or SIGTERM while the POST is in flight gives its answer SUBMIT_ANSWER_GRACE seconds;
- a journal that fails after the submit is said at once (with the id), later writes are
  skipped, and the command ends with exit 6 once the record has reached the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from get3w_cli.constants import SUBMIT_ANSWER_GRACE
from get3w_cli.errors import G3wError, JournalError, JournalWriteError
from get3w_cli.providers.submitting import nothing_created, submit_task

if TYPE_CHECKING:
    from get3w_cli.journal import Journal
    from get3w_cli.providers import Adapter, Route
    from get3w_cli.records import Task
    from get3w_cli.tasks.idempotency import Claim
    from get3w_cli.tasks.requests import Observer


class TaskLedger:
    """The journal rows of one task, written so that a journal failure never loses the task.

    Before the POST a failure stops everything (nothing was paid). After it, the first failure
    is reported at once with the task id, later writes are skipped, and ``failure`` makes the
    command end with exit 6 once the record has reached the user.
    """

    def __init__(self, journal: Journal, observer: Observer) -> None:
        self.journal, self.observer = journal, observer
        self.ref: str | None = None
        self.task_id: str | None = None
        self.failure: JournalError | None = None

    def before_submit(self, route: Route, base_url: str, values: Mapping[str, Any], claim: Claim | None = None
                      ) -> None:
        """Journal the task about to be POSTed (with its idempotency key and request hash).

        Raises:
            JournalError: nothing was sent, and nothing will be.
            SubmitUnknownError: another run with the same key journalled its submit first.
        """
        if claim is None:
            self.ref = self.journal.task_submitting(provider=route.provider, api=route.api, model=route.model,
                                                    base_url=base_url, input=values)
            return
        ref = self.journal.task_submitting_keyed(
            expected_ref=claim.newest_ref, provider=route.provider, api=route.api, model=route.model,
            base_url=base_url, input=values, idempotency_key=claim.key, request_hash=claim.digest)
        if ref is None:
            from get3w_cli.tasks.idempotency import unknown_error

            raise unknown_error(claim.key, "submitting")
        self.ref = ref

    def _write(self, what: str, action: Callable[[], None]) -> None:
        if self.failure is not None:
            return
        try:
            action()
        except JournalError as exc:
            self.failure = exc
            who = f"task {self.task_id}" if self.task_id else "the submit"
            self.observer.notify("warn", f"could not record {who} in the journal ({exc.message}); {what}")

    def submitted(self, task: Task) -> None:
        self.task_id = task.id
        assert self.ref is not None
        ref = self.ref
        self._write(f"the task exists: its id is {task.id}", lambda: self.journal.task_submitted(ref, task))

    def unknown(self, message: str) -> None:
        if self.ref is not None:
            ref = self.ref
            self._write("a task may exist", lambda: self.journal.task_unknown(ref, message))

    def forget(self) -> None:
        if self.ref is not None:
            ref = self.ref
            self._write("nothing was created", lambda: self.journal.task_forget(ref))

    def updated(self, task: Task, record: dict[str, Any]) -> None:
        self._write(f"the task id is {task.id}",
                    lambda: self.journal.task_updated(task.id, task.status.value, record))

    def check(self, record: dict[str, Any]) -> None:
        """Raise exit 6 when a write after the submit failed (the record has been reported)."""
        if self.failure is not None:
            raise JournalWriteError(record.get("id") or "?", self.failure.message)


async def post_with_grace(ledger: TaskLedger, adapter: Adapter, model: str, values: Mapping[str, Any], *,
                           webhook_url: str | None, sync: bool, answered: Callable[[Task], None]) -> Task:
    """Submit; on Ctrl-C the POST already sent gets SUBMIT_ANSWER_GRACE to answer, so its id is kept.

    ``answered`` gets the task as soon as the provider names it (also during the grace).
    """
    posting = asyncio.ensure_future(submit_task(adapter, model, values, webhook_url=webhook_url, sync=sync))
    try:
        task = await asyncio.shield(posting)
    except asyncio.CancelledError:
        if not posting.done():
            await asyncio.wait({posting}, timeout=SUBMIT_ANSWER_GRACE)
            posting.cancel()
        if posting.done() and not posting.cancelled() and posting.exception() is None:
            answered(posting.result())
            raise
        error = None if not posting.done() or posting.cancelled() else posting.exception()
        if error is not None and nothing_created(error):
            ledger.forget()
        else:
            ledger.unknown("interrupted while submitting; no answer came, so a task may exist")
            ledger.observer.notify("warn", "interrupted while submitting and no answer came: a task may exist "
                                           "(journalled as unknown; see g3w history)")
        raise
    except G3wError as exc:
        if nothing_created(exc):
            ledger.forget()
        else:
            ledger.unknown(exc.message)
        raise
    answered(task)
    return task
