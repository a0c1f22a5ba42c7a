"""The one-task core: submit, journal, wait and download a single task (``run``, ``submit``, ``wait``).

Never lose a paid result, never pay twice:
- a task is journalled (``submitting``) before its POST; the answer's id is journalled at once;
- a submit whose answer is lost or unreadable is journalled ``unknown`` and never resent
  (``SubmitUnknownError``, exit 6);
- Ctrl-C or SIGTERM while the POST is in flight gives its answer SUBMIT_ANSWER_GRACE seconds, so
  the id reaches the user and the journal; without an answer the row says ``unknown``;
- a journal that cannot be written after the submit costs exit 6, never the task: the id is
  said at once, the wait goes on, and the record still reaches the user.

The core prints nothing: it reports through an ``Observer`` (phases, notes, and the task's
record each time it changes, so that the CLI can print it on any exit).
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from get3w_cli.callbacks import Channel, ChannelOptions, open_channel, setup_failed_message, webhook_possible
from get3w_cli.constants import HTTP_SYNC_REQUEST_DEADLINE, SUBMIT_ANSWER_GRACE
from get3w_cli.downloads import download_outputs
from get3w_cli.errors import (
    DownloadError,
    G3wError,
    JournalError,
    JournalWriteError,
    SubmitUnknownError,
    TaskFailedError,
    TransientError,
    WaitTimeoutError,
    WebhookSetupError,
)
from get3w_cli.records import Status, Task, utc_now_iso
from get3w_cli.waiting import POLL, SYNC, WEBHOOK, Outcome, WaitPlan, wait_for

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.journal import Journal
    from get3w_cli.providers import Adapter, Route

ProgressFactory = Callable[[str], Callable[[int, "int | None"], None]]
# A 429 or 503 answer to a POST proves that nothing was created (the retry policy resends those).
NOTHING_CREATED_STATUSES = (429, 503)


class Connections(Protocol):
    """What the core needs from the command around it (the CLI's ``Services``)."""

    @property
    def journal(self) -> Journal: ...

    @property
    def session(self) -> HttpSession: ...

    def adapter(self, route: Route) -> Adapter: ...

    def base_url(self, provider: str) -> str: ...

    def webhook_secret(self, provider: str) -> str | None: ...


class Observer(Protocol):
    """How the core reports: ``notify`` for phases/notes/warnings, ``record`` for the task record."""

    def notify(self, kind: str, text: str) -> None: ...

    def record(self, record: dict[str, Any]) -> None: ...

    def download_progress(self, name: str) -> Callable[[int, int | None], None]: ...


@dataclass(frozen=True)
class WaitRequest:
    """The wait options of run / wait / batch, before ``auto`` is decided."""

    via: str
    plan: WaitPlan
    channel: ChannelOptions
    output_dir: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task to submit: where it goes and what it sends (``-i KEY=@FILE`` uploads pending)."""

    route: Route
    input: Mapping[str, Any]
    uploads: Mapping[str, Path] = dataclasses.field(default_factory=dict)


def choose_mode(via: str, adapter: Adapter, channel: ChannelOptions, notify: Callable[[str, str], None], *,
                timeout: float) -> str:
    """Turn ``--via`` into webhook, poll or sync for this provider (the one home of this decision)."""
    if via == SYNC and not adapter.has_sync:
        notify("note", f"{adapter.provider} {adapter.api} has no sync mode; polling instead")
        return POLL
    if via == SYNC and timeout < HTTP_SYNC_REQUEST_DEADLINE:
        # A sync request cannot be cut short at --timeout without losing the task id (exit 4
        # must print it), and the provider may hold it this long: poll, which --timeout bounds.
        notify("note", f"--timeout {timeout:g}s is shorter than a sync request may take; polling instead")
        return POLL
    if via == "auto":
        return WEBHOOK if webhook_possible(channel) else POLL
    return via


def nothing_created(exc: BaseException) -> bool:
    """Whether a failed submit proves that the provider created no task (so it may be sent again)."""
    if isinstance(exc, SubmitUnknownError):
        return False
    if isinstance(exc, TransientError):
        return exc.status in NOTHING_CREATED_STATUSES
    return isinstance(exc, G3wError)  # refused (4xx, auth), a usage error, a connection that never opened


async def submit_task(adapter: Adapter, model: str, values: Mapping[str, Any], *, webhook_url: str | None,
                      sync: bool = False) -> Task:
    """POST one task; an answer that may hide a created task becomes ``SubmitUnknownError``.

    A 5xx page, a 200 that is not JSON or names no id: the provider may have created the task,
    so it must never be sent again blindly.
    """
    try:
        return await adapter.submit(model, values, webhook_url=webhook_url, sync=sync)
    except TransientError as exc:
        if exc.status in NOTHING_CREATED_STATUSES:
            raise
        raise SubmitUnknownError(f"the answer to the submit could not be used ({exc.message}); "
                                 "the task may have been created") from exc


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

    def before_submit(self, route: Route, base_url: str, values: Mapping[str, Any]) -> None:
        self.ref = self.journal.task_submitting(provider=route.provider, api=route.api, model=route.model,
                                                base_url=base_url, input=values)

    def _write(self, what: str, action: Callable[[], None]) -> None:
        if self.failure is not None:
            return
        try:
            action()
        except JournalError as exc:
            self.failure = exc
            who = f"task {self.task_id}" if self.task_id else "the submit"
            self.observer.notify("warn", f"could not record {who} in the journal ({exc.message}); {what}")

    def _polled(self, task: Task) -> None:
        self.task = _complete(task, self.created_at)

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


async def _post_with_grace(ledger: TaskLedger, adapter: Adapter, model: str, values: Mapping[str, Any], *,
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


async def resolve_uploads(conn: Connections, spec: TaskSpec, notify: Callable[[str, str], None]) -> dict[str, Any]:
    """Upload every ``-i KEY=@FILE`` (Get3W file upload) and put its URL in the inputs."""
    values = dict(spec.input)
    if not spec.uploads:
        return values
    from get3w_cli.providers import Account, resolve_route

    uploader = conn.adapter(resolve_route("get3w/upload", provider="get3w", api="v3"))
    assert isinstance(uploader, Account)
    for key, path in spec.uploads.items():
        notify("phase", f"uploading {path.name}")
        values[key] = await uploader.upload(path)
    return values


def _complete(task: Task, created_at: str | None) -> Task:
    """Fill the record's timestamps a provider left out."""
    if task.status is Status.COMPLETED and not task.completed_at:
        task = dataclasses.replace(task, completed_at=utc_now_iso())
    if created_at and not task.created_at:
        task = dataclasses.replace(task, created_at=created_at)
    return task


@dataclass
class _Run:
    """What one task's run knows so far: enough to report it on any exit."""

    conn: Connections
    observer: Observer
    ledger: TaskLedger
    values: dict[str, Any]
    started: float
    created_at: str | None = None
    task: Task | None = None
    via: str | None = None

    def _polled(self, task: Task) -> None:
        self.task = _complete(task, self.created_at)

    def submitted(self, task: Task) -> None:
        """The submit's answer: journal the id, then tell the user (it is what Ctrl-C must not lose)."""
        self.ledger.submitted(task)
        self.report(task, journal=False)
        route = f"{task.provider} {task.api} {task.model}".strip()
        self.observer.notify("note", f"submitted {task.id} ({route})")

    def report(self, task: Task, *, via: str | None = None, files: list[str] | None = None,
               journal: bool = True) -> dict[str, Any]:
        """Remember ``task`` as the latest snapshot, journal it, and hand its record to the observer."""
        self.task, self.via = _complete(task, self.created_at), via
        elapsed = asyncio.get_running_loop().time() - self.started
        record = self.task.record(input=self.values, via=via, files=files, elapsed_s=elapsed)
        if journal:
            self.ledger.updated(self.task, record)
        self.observer.record(record)
        return record

    async def wait(self, adapter: Adapter, plan: WaitPlan, channel: Channel | None, *, via_if_done: str | None
                   ) -> Outcome:
        """The wait, with the journal row brought up to date on timeout and Ctrl-C."""
        assert self.task is not None
        try:
            return await wait_for(adapter, self.task, plan, inbox=channel.inbox if channel else None,
                                  notify=self.observer.notify, via_if_done=via_if_done, on_poll=self._polled)
        except WaitTimeoutError as exc:
            latest = exc.task or self.task
            if exc.cancelled:
                latest = dataclasses.replace(latest, status=Status.CANCELLED)
            self.report(latest)
            raise
        except asyncio.CancelledError:
            self.report(self.task)
            raise

    async def finish(self, outcome: Outcome, output_dir: str | None) -> dict[str, Any]:
        """Download, journal and report the finished task; raise for failure (1) or download trouble (8)."""
        task = _complete(outcome.task, self.created_at)
        files = None
        if output_dir and task.status is Status.COMPLETED:
            self.observer.notify("phase", "downloading")
            try:
                files = await download_outputs(self.conn.session, task, Path(output_dir),
                                               progress=self.observer.download_progress)
            except DownloadError:
                self.report(task, via=outcome.via)
                raise
        record = self.report(task, via=outcome.via, files=files)
        if task.status is not Status.COMPLETED:
            self.ledger.check(record)
            raise TaskFailedError(task)
        self.ledger.check(record)
        return record


async def open_channel_for(stack: AsyncExitStack, mode: str, request: WaitRequest,
                           notify: Callable[[str, str], None]) -> Channel | None:
    """Open the callback channel for webhook mode; under ``auto`` a failure means polling."""
    if mode != WEBHOOK:
        return None
    try:
        return await stack.enter_async_context(open_channel(request.channel, notify=notify))
    except WebhookSetupError as exc:
        if request.via == WEBHOOK:
            raise
        notify("warn", setup_failed_message(exc) + (f" ({exc.hint})" if exc.hint else ""))
        return None


async def run_task(conn: Connections, spec: TaskSpec, request: WaitRequest, observer: Observer) -> dict[str, Any]:
    """``g3w run``: submit one task, wait for it, download its outputs; return its record.

    Raises:
        TaskFailedError, WaitTimeoutError, DownloadError, SubmitUnknownError, JournalWriteError,
        and whatever the provider's refusal or the channel's setup raises.
    """
    route = spec.route
    adapter = conn.adapter(route)
    values = await resolve_uploads(conn, spec, observer.notify)
    secret = conn.webhook_secret(route.provider)
    channel_opts = dataclasses.replace(request.channel, secrets={route.provider: secret} if secret else {},
                                       provider_urls=(conn.base_url(route.provider),))
    request = dataclasses.replace(request, channel=channel_opts)
    mode = choose_mode(request.via, adapter, channel_opts, observer.notify, timeout=request.plan.timeout)
    ledger = TaskLedger(conn.journal, observer)
    async with AsyncExitStack() as stack:
        channel = await open_channel_for(stack, mode, request, observer.notify)
        mode = mode if channel or mode != WEBHOOK else POLL
        ledger.before_submit(route, conn.base_url(route.provider), values)
        observer.notify("phase", "submitting")
        run = _Run(conn, observer, ledger, values, asyncio.get_running_loop().time(), created_at=utc_now_iso())
        task = await _post_with_grace(ledger, adapter, route.model, values,
                                      webhook_url=channel.url if channel else None, sync=mode == SYNC,
                                      answered=run.submitted)
        plan = dataclasses.replace(request.plan, mode=WEBHOOK if channel else POLL)
        outcome = await run.wait(adapter, plan, channel, via_if_done=SYNC if mode == SYNC else None)
    return await run.finish(outcome, request.output_dir)


async def submit_only(conn: Connections, spec: TaskSpec, webhook_url: str | None, observer: Observer) -> Task:
    """``g3w submit``: submit and journal one task without waiting; return the provider's answer."""
    route = spec.route
    adapter = conn.adapter(route)
    values = await resolve_uploads(conn, spec, observer.notify)
    ledger = TaskLedger(conn.journal, observer)
    ledger.before_submit(route, conn.base_url(route.provider), values)
    observer.notify("phase", "submitting")
    run = _Run(conn, observer, ledger, values, asyncio.get_running_loop().time())
    task = await _post_with_grace(ledger, adapter, route.model, values, webhook_url=webhook_url, sync=False,
                                  answered=run.submitted)
    ledger.check(run.report(task, journal=False))
    return task


async def wait_existing(conn: Connections, adapter: Adapter, task: Task, values: dict[str, Any],
                        request: WaitRequest, observer: Observer) -> dict[str, Any]:
    """``g3w wait``: poll a task submitted earlier (``task`` is its current state) to its end."""
    ledger = TaskLedger(conn.journal, observer)
    ledger.task_id = task.id
    run = _Run(conn, observer, ledger, values, asyncio.get_running_loop().time())
    run.report(task, via=POLL if task.status.terminal else None, journal=False)
    outcome = await run.wait(adapter, dataclasses.replace(request.plan, mode=POLL), None, via_if_done=POLL)
    return await run.finish(outcome, request.output_dir)


async def cancel_unless_finished(adapter: Adapter, task_id: str, *, delete_outputs: bool = False
                                 ) -> tuple[Task, bool]:
    """Look at the task first; cancel it only when it has not finished (or ``delete_outputs``).

    Returns (the task as it now is, whether a cancel was sent). A finished Get3W v3 task is never
    deleted by accident: its DELETE deletes the outputs.
    """
    current = await adapter.get(task_id)
    if current.status.terminal and not delete_outputs:
        return current, False
    answer = await adapter.cancel(task_id)
    if current.status.terminal:
        return current, True  # the outputs are gone; the task's own end is unchanged
    return answer, True


__all__ = ["Connections", "Observer", "TaskLedger", "TaskSpec", "WaitRequest",
           "cancel_unless_finished", "choose_mode", "nothing_created", "run_task", "submit_only",
           "submit_task", "wait_existing"]
