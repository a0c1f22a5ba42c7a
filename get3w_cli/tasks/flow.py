"""The one task's life: upload, submit, wait, download, report (``run``, ``submit``, ``wait``).

The core prints nothing: it reports through an ``Observer`` (phases, notes, warnings, and the
task's record each time it changes, so that the CLI can print it on any exit). A task given an
idempotency key that is journalled already is reused instead of submitted (``idempotency``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from get3w_cli.errors import DownloadError, WaitTimeoutError
from get3w_cli.names import Via
from get3w_cli.records import Status, Task, mark_no_outputs, raise_unless_completed, utc_now_iso
from get3w_cli.tasks.idempotency import Claim, claim, entry_task
from get3w_cli.tasks.ledger import TaskLedger, post_with_grace
from get3w_cli.tasks.requests import (
    Connections,
    Notify,
    Observer,
    TaskSpec,
    WaitRequest,
    choose_mode,
    open_channel_for,
)

if TYPE_CHECKING:
    from get3w_cli.callbacks.channel import Channel
    from get3w_cli.journal import JournalEntry
    from get3w_cli.providers import Adapter
    from get3w_cli.waiting import Outcome, WaitPlan

async def resolve_uploads(conn: Connections, spec: TaskSpec, notify: Notify) -> dict[str, Any]:
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
    elapsed_s: float | None = None  # a reused task's, kept as it was journalled

    def _polled(self, task: Task) -> None:
        self.task = _complete(task, self.created_at)
        self.observer.notify("status", task.status.value)  # the spinner shows the provider's word

    def _cancelled(self, task: Task) -> None:
        """Ctrl-C with --on-timeout cancel cancelled the task: its row and record say so."""
        self.task = _complete(task, self.created_at)

    def submitted(self, task: Task) -> None:
        """The submit's answer: journal the id, then tell the user (it is what Ctrl-C must not lose)."""
        self.ledger.submitted(task)
        self.report(task, journal=False)
        route = f"{task.provider} {task.api} {task.model}".strip()
        self.observer.notify("note", f"submitted {task.id} ({route})")
        self.observer.notify("status", task.status.value)

    def report(self, task: Task, *, via: str | None = None, files: list[str] | None = None,
               journal: bool = True) -> dict[str, Any]:
        """Remember ``task`` as the latest snapshot, journal it, and hand its record to the observer."""
        self.task, self.via = _complete(task, self.created_at), via
        elapsed = asyncio.get_running_loop().time() - self.started if self.elapsed_s is None else self.elapsed_s
        record = self.task.record(input=self.values, via=via, files=files, elapsed_s=elapsed)
        if journal:
            self.ledger.updated(self.task, record)
        self.observer.record(record)
        return record

    async def wait(self, adapter: Adapter, plan: WaitPlan, channel: Channel | None, *, via_if_done: str | None
                   ) -> Outcome:
        """The wait, with the journal row brought up to date on timeout and Ctrl-C."""
        from get3w_cli.waiting import wait_for  # not for submit

        assert self.task is not None
        try:
            return await wait_for(adapter, self.task, plan, inbox=channel.inbox if channel else None,
                                  notify=self.observer.notify, via_if_done=via_if_done, on_poll=self._polled,
                                  on_cancelled=self._cancelled)
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
        task = mark_no_outputs(_complete(outcome.task, self.created_at))
        files = None
        if output_dir and task.status is Status.COMPLETED:
            self.observer.notify("status", task.status.value)
            self.observer.notify("phase", "downloading")
            from get3w_cli.downloads import download_outputs

            try:
                files = await download_outputs(self.conn.session, task, Path(output_dir),
                                               progress=self.observer.download_progress)
            except DownloadError:
                self.report(task, via=outcome.via)
                raise
        record = self.report(task, via=outcome.via, files=files)
        self.ledger.check(record)
        raise_unless_completed(task)
        return record


async def run_task(conn: Connections, spec: TaskSpec, request: WaitRequest, observer: Observer) -> dict[str, Any]:
    """``g3w run``: submit one task, wait for it, download its outputs; return its record.

    Raises:
        TaskFailedError, WaitTimeoutError, DownloadError, SubmitUnknownError, JournalWriteError,
        and whatever the provider's refusal or the channel's setup raises.
    """
    route = spec.route
    keyed = claim(conn.journal, spec) if spec.idempotency_key else None
    if keyed is not None and keyed.reuse is not None:
        return await _reuse(conn, keyed, request, observer)
    adapter = conn.adapter(route, post_headers=keyed.headers if keyed else None)
    secret = conn.webhook_secret(route.provider)
    channel_opts = dataclasses.replace(request.channel, secrets={route.provider: secret} if secret else {},
                                       provider_urls=(conn.base_url(route.provider),))
    request = dataclasses.replace(request, channel=channel_opts)
    mode = choose_mode(request.via, channel_opts, observer.notify, timeout=request.plan.timeout, adapter=adapter)
    from get3w_cli.tasks.schema import check_inputs  # before any upload or submit

    await check_inputs(conn, spec, observer.notify)
    values = await resolve_uploads(conn, spec, observer.notify)
    ledger = TaskLedger(conn.journal, observer)
    async with AsyncExitStack() as stack:
        channel = await open_channel_for(stack, mode, request, observer.notify)
        mode = mode if channel or mode != Via.WEBHOOK else Via.POLL
        ledger.before_submit(route, conn.base_url(route.provider), values, keyed)
        observer.notify("phase", "submitting")
        run = _Run(conn, observer, ledger, values, asyncio.get_running_loop().time(), created_at=utc_now_iso())
        if mode == Via.STREAM:
            from get3w_cli.tasks.stream import stream_task

            outcome = await stream_task(run, adapter, route.model, values, request.plan)
            return await run.finish(outcome, request.output_dir)
        await post_with_grace(ledger, adapter, route.model, values, webhook_url=channel.url if channel else None,
                              sync=mode == Via.SYNC, answered=run.submitted)
        plan = dataclasses.replace(request.plan, mode=Via.WEBHOOK if channel else Via.POLL)
        outcome = await run.wait(adapter, plan, channel, via_if_done=Via.SYNC if mode == Via.SYNC else None)
    return await run.finish(outcome, request.output_dir)


async def submit_only(conn: Connections, spec: TaskSpec, webhook_url: str | None, observer: Observer) -> Task:
    """``g3w submit``: submit and journal one task without waiting; return the provider's answer (or,
    for an idempotency key journalled already, what is known of its task)."""
    route = spec.route
    keyed = claim(conn.journal, spec) if spec.idempotency_key else None
    if keyed is not None and keyed.reuse is not None:
        entry = keyed.reuse
        _say_reused(observer, keyed.key, entry)
        task = entry_task(entry)
        observer.record(entry.record or task.record(input=entry.input))
        return task
    adapter = conn.adapter(route, post_headers=keyed.headers if keyed else None)
    from get3w_cli.tasks.schema import check_inputs  # before any upload or submit, as run

    await check_inputs(conn, spec, observer.notify)
    values = await resolve_uploads(conn, spec, observer.notify)
    ledger = TaskLedger(conn.journal, observer)
    ledger.before_submit(route, conn.base_url(route.provider), values, keyed)
    observer.notify("phase", "submitting")
    run = _Run(conn, observer, ledger, values, asyncio.get_running_loop().time())
    task = await post_with_grace(ledger, adapter, route.model, values, webhook_url=webhook_url, sync=False,
                                  answered=run.submitted)
    ledger.check(run.report(task, journal=False))
    return task


async def wait_existing(conn: Connections, adapter: Adapter, task: Task, values: dict[str, Any],
                        request: WaitRequest, observer: Observer) -> dict[str, Any]:
    """``g3w wait``: poll a task submitted earlier (``task`` is its current state) to its end."""
    ledger = TaskLedger(conn.journal, observer)
    ledger.task_id = task.id
    run = _Run(conn, observer, ledger, values, asyncio.get_running_loop().time())
    run.report(task, via=Via.POLL if task.status.terminal else None, journal=False)
    outcome = await run.wait(adapter, dataclasses.replace(request.plan, mode=Via.POLL), None, via_if_done=Via.POLL)
    return await run.finish(outcome, request.output_dir)


def _say_reused(observer: Observer, key: str, entry: JournalEntry) -> None:
    observer.notify("note", f"idempotency key {key!r}: task {entry.id} ({entry.status}) was submitted by an "
                            "earlier run; nothing submitted")


async def _reuse(conn: Connections, keyed: Claim, request: WaitRequest, observer: Observer) -> dict[str, Any]:
    """``run`` with a key journalled already: a finished task's record again (its outputs downloaded
    again with -o), an unfinished one waited for (polling)."""
    from get3w_cli.providers import Route
    from get3w_cli.waiting import Outcome

    entry = keyed.reuse
    assert entry is not None
    assert entry.id is not None
    _say_reused(observer, keyed.key, entry)
    task = entry_task(entry)
    ledger = TaskLedger(conn.journal, observer)
    ledger.task_id = entry.id
    if entry.record is not None and task.status.terminal:
        elapsed = entry.record.get("elapsed_s")
        run = _Run(conn, observer, ledger, entry.input, asyncio.get_running_loop().time(),
                   elapsed_s=float(elapsed) if isinstance(elapsed, (int, float)) else None)
        return await run.finish(Outcome(task=task, via=entry.record.get("via"), elapsed=0.0), request.output_dir)
    adapter = conn.adapter(Route(entry.provider, entry.api, entry.model))
    current = await adapter.get(entry.id)
    if not current.model:
        current = dataclasses.replace(current, model=entry.model)
    return await wait_existing(conn, adapter, current, entry.input, request, observer)


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
