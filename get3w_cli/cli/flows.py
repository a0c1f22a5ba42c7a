"""The async bodies of run, submit, get, wait and cancel: resolve -> services -> one core call -> render.

The work itself is in ``get3w_cli.tasks``; this module resolves the flags, opens the services,
locates tasks from the journal, and turns the core's reports into output (through ``Ui`` and
the boundary's ``Tracker``, which prints a task's record on every exit on which its id is known).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from get3w_cli.cli import resolve
from get3w_cli.cli.context import Context, Services, open_services
from get3w_cli.errors import ExitCode, G3wError, RejectedError, UsageError
from get3w_cli.names import Api, OnTimeout, Provider, Via
from get3w_cli.providers import Adapter, Route
from get3w_cli.records import Status, Task, mark_no_outputs, raise_unless_completed, unknown_status_note

if TYPE_CHECKING:
    from get3w_cli.cli.boundary import Tracker
    from get3w_cli.cli.options import (
        AccountFlags,
        InputFlags,
        JournalFlags,
        OutputFlags,
        PreviewFlags,
        RouteFlags,
        WaitFlags,
    )
    from get3w_cli.cli.render import Ui
    from get3w_cli.config import Settings
    from get3w_cli.tasks import WaitRequest

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


class TaskObserver:
    """The core's ``Observer`` for one command: talk through ``Ui``, records into the ``Tracker``."""

    def __init__(self, ui: Ui, tracker: Tracker) -> None:
        self.ui, self.tracker = ui, tracker

    def notify(self, kind: str, text: str) -> None:
        self.ui.notify(kind, text)

    def record(self, record: dict[str, Any]) -> None:
        self.tracker.record(record)

    def download_progress(self, name: str) -> Callable[[int, int | None], None]:
        return self.ui.download_progress(name)


async def run_flow(model: str, route_flags: RouteFlags, account: AccountFlags, inputs: InputFlags, wait: WaitFlags,
                   output: OutputFlags, journal: JournalFlags, ui: Ui, tracker: Tracker,
                   preview: PreviewFlags | None = None) -> int:
    """g3w run: submit one task and wait for it (the boundary prints its record)."""
    from get3w_cli.tasks import run_task

    ctx = Context()
    route = resolve.model_route(ctx, model, route_flags)
    spec = resolve.task_spec(ctx, route, inputs, journal)
    access = resolve.access(ctx, account, journal, provider=route.provider, wait=wait, output=output)
    request = resolve.wait_request(ctx, access.settings, wait, output)
    tracker.cancel_on_interrupt = request.plan.on_timeout == OnTimeout.CANCEL
    async with open_services(ctx, access, on_retry=ui.retrying) as services:
        with _about_model(ctx, model, route, tracker):
            record = await run_task(services, spec, request, TaskObserver(ui, tracker))
        ui.stop_progress()
        ui.success(f"{record['id']} completed in {record['elapsed_s']:.1f}s"
                   + (f" via {record['via']}" if record["via"] else ""))
        await show_preview(ui, access.settings, preview, record, services)
    return 0


async def show_preview(ui: Ui, settings: Settings, flags: PreviewFlags | None, record: dict[str, Any],
                   services: Services) -> None:
    """--preview (else config defaults.preview): draw the outputs of a completed task."""
    wanted = settings.preview if flags is None or flags.preview is None else flags.preview
    if wanted and record.get("status") == Status.COMPLETED.value:
        from get3w_cli.cli.preview import show_outputs

        await show_outputs(ui, record, services.session)


async def submit_flow(model: str, webhook_url: str | None, route_flags: RouteFlags, account: AccountFlags,
                      inputs: InputFlags, journal: JournalFlags, ui: Ui, tracker: Tracker) -> int:
    """g3w submit: submit, journal, print the id (or the record)."""
    from get3w_cli.tasks import submit_only

    ctx = Context()
    route = resolve.model_route(ctx, model, route_flags)
    spec = resolve.task_spec(ctx, route, inputs, journal)
    access = resolve.access(ctx, account, journal, provider=route.provider)
    tracker.render = _print_submitted
    async with open_services(ctx, access, on_retry=ui.retrying) as services:
        with _about_model(ctx, model, route, tracker):
            task = await submit_only(services, spec, webhook_url, TaskObserver(ui, tracker))
    if not task.status.terminal:
        ui.note(f"wait for it with: g3w wait {task.id}")
    return 0


def _print_submitted(ui: Ui, record: dict[str, Any]) -> None:
    if ui.json_mode:
        ui.json(record)
    else:
        ui.data(record["id"])


def guess_route(task_id: str, provider: str | None, api: str | None) -> Route:
    """The route of a task that is not in the journal, from the flags or the id's shape."""
    if provider == Provider.ABSTRAKT or (provider is None and task_id.startswith("job_")):
        return Route(Provider.ABSTRAKT, Api.V1, "")
    return Route(Provider.GET3W, api or (Api.V1 if _UUID.match(task_id) else Api.V3), "")


def locate(ctx: Context, services: Services, route: RouteFlags, account: AccountFlags, task_id: str, command: str
            ) -> tuple[Adapter, dict[str, Any], str]:
    """The adapter for a task id, and the input and model the journal remembers for it."""
    from get3w_cli.providers import make_adapter

    entry = services.journal.find(task_id)
    # Its journalled base URL was a sandbox's, gone with its process: a GET could only fail.
    if entry and services.sandbox is None and not account.base_url and ctx.made_by_sandbox(task_id):
        raise UsageError(f"task {task_id} was created with --sandbox; nothing was sent",
                         hint=f"add --sandbox to look it up: g3w {command} {task_id} --sandbox")
    if entry and not (route.provider and route.provider != entry.provider):
        found = Route(entry.provider, entry.api, entry.model)
        base = None if (account.base_url or services.sandbox) else entry.base_url
        adapter = make_adapter(found, services.client(found.provider, found.api, base_url=base))
        return adapter, entry.input, entry.model
    return services.adapter(guess_route(task_id, route.provider, route.api)), {}, ""


@contextmanager
def _about_model(ctx: Context, typed: str, route: Route, tracker: Tracker) -> Iterator[None]:
    """A 404 on the submit (no task exists yet) is about the model: suggest the closest names in
    the model lists g3w has fetched (``g3w models``), or point at that command."""
    try:
        yield
    except RejectedError as exc:
        if exc.status == 404 and not tracker.records:
            exc.hint = model_hint(ctx, typed, route)
        raise


def model_hint(ctx: Context, typed: str, route: Route) -> str:
    from get3w_cli import models_cache

    # Compared bare (flux-dev, fal-ai/flux/schnell), suggested as typed to run (abstrakt:...).
    bare = {name.partition(":")[2] or name: name.removeprefix(f"{Provider.GET3W}/")
            for name in models_cache.cached_run_names(ctx.state_dir(), route.provider)}
    bare.update({key.removeprefix(f"{Provider.GET3W}/"): name for key, name in bare.items()})
    words = {typed.partition(":")[2] or typed, route.model, route.model.removeprefix(f"{Provider.GET3W}/")}
    close = list(dict.fromkeys(bare[m] for word in sorted(words) if word
                               for m in difflib.get_close_matches(word, list(bare), n=3)))
    lister = "g3w models" + (" --provider abstrakt" if route.provider == Provider.ABSTRAKT else "")
    if close:
        return f"did you mean {' or '.join(close[:3])}? ({lister} lists them)"
    return f"check the model name: {lister} lists them"


@contextmanager
def about_task(ctx: Context, services: Services, task_id: str, command: str) -> Iterator[None]:
    """A 404 / 409 on a task's own URL is about that task, not about a model or inputs: say so."""
    try:
        yield
    except RejectedError as exc:
        if exc.status == 404 and services.sandbox is None and ctx.made_by_sandbox(task_id):
            exc.hint = f"task {task_id} was created with --sandbox: add it (g3w {command} {task_id} --sandbox)"
        elif exc.status == 404:
            exc.hint = f"check the task id {task_id} (and --provider / --api / --base-url if g3w did not submit it)"
        else:
            exc.hint = f"see the task's state with: g3w get {task_id}"
        raise


def with_model(task: Task, model: str) -> Task:
    """Some answers (a v3 delete) do not name the model; the journal does."""
    return task if task.model or not model else dataclasses.replace(task, model=model)


# ``g3w wait ID ID ...`` exits with the worst of its tasks' codes, in this order: what the user must
# fix first (a bug, an interrupt, config, usage, a refusal), then trouble that may pass (transient,
# webhook), then a wait that ran out, an output not downloaded, and last a task's own failure.
WORST_FIRST = (ExitCode.INTERNAL, ExitCode.INTERRUPTED, ExitCode.CONFIG, ExitCode.USAGE, ExitCode.REJECTED,
               ExitCode.TRANSIENT, ExitCode.WEBHOOK, ExitCode.TIMEOUT, ExitCode.DOWNLOAD, ExitCode.TASK_FAILED)


def worst(errors: list[G3wError]) -> G3wError:
    """The error whose exit code comes first in WORST_FIRST (the first such, in argument order)."""
    def rank(error: G3wError) -> int:
        code = error.exit_code
        return WORST_FIRST.index(code) if code in WORST_FIRST else len(WORST_FIRST)

    return min(errors, key=rank)


async def wait_flow(task_ids: list[str], route: RouteFlags, account: AccountFlags, wait: WaitFlags,
                    output: OutputFlags, ui: Ui, tracker: Tracker, preview: PreviewFlags | None = None) -> int:
    """g3w wait: poll already submitted tasks to their end (no callback can be registered now).

    Several ids are waited for at once; every record is printed (in the arguments' order), every
    error said, and the exit code is the worst one's (``WORST_FIRST``).
    """
    import asyncio

    from get3w_cli.cli.boundary import report_error

    ctx = Context()
    access = resolve.access(ctx, account, provider=route.provider, wait=wait, output=output)
    request = resolve.wait_request(ctx, access.settings, wait, output)
    tracker.cancel_on_interrupt = request.plan.on_timeout == OnTimeout.CANCEL
    ids = list(dict.fromkeys(task_ids))
    tracker.order = tuple(ids)
    async with open_services(ctx, access, on_retry=ui.retrying) as services:
        if request.via in (Via.WEBHOOK, Via.STREAM):
            what = "a callback cannot be registered" if request.via == Via.WEBHOOK else "no stream can be opened"
            ui.note(f"{what} for a task already submitted; polling")
        waits = [_wait_one(ctx, services, route, account, task_id, request, ui, tracker) for task_id in ids]
        results = await asyncio.gather(*waits, return_exceptions=True)
        ui.stop_progress()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, G3wError):
                raise result
        errors = [result for result in results if isinstance(result, G3wError)]
        if errors:
            last = worst(errors)
            for error in errors:
                if error is not last:
                    from get3w_cli.cli.ci import annotate_error

                    report_error(ui, error.message, error.hint, with_traceback=False)
                    annotate_error(error.message, error.hint)
            raise last
        ui.success(f"{ids[0]} completed" if len(ids) == 1 else f"all {len(ids)} tasks completed")
        for record in results:
            if isinstance(record, dict):
                await show_preview(ui, access.settings, preview, record, services)
    return 0


async def _wait_one(ctx: Context, services: Services, route: RouteFlags, account: AccountFlags, task_id: str,
                    request: WaitRequest, ui: Ui, tracker: Tracker) -> dict[str, Any]:
    from get3w_cli.tasks import wait_existing

    adapter, values, model = locate(ctx, services, route, account, task_id, "wait")
    with about_task(ctx, services, task_id, "wait"):
        task = with_model(await adapter.get(task_id), model)
    return await wait_existing(services, adapter, task, values, request, TaskObserver(ui, tracker))


async def get_flow(task_id: str, route: RouteFlags, account: AccountFlags, ui: Ui, tracker: Tracker,
                   preview: PreviewFlags | None = None) -> int:
    """g3w get: one GET; exit 1 when the task failed or was cancelled, or completed with no outputs."""

    ctx = Context()
    tracker.render = _print_got
    access = resolve.access(ctx, account, provider=route.provider)
    async with open_services(ctx, access, on_retry=ui.retrying) as services:
        adapter, values, model = locate(ctx, services, route, account, task_id, "get")
        with about_task(ctx, services, task_id, "get"):
            task = mark_no_outputs(with_model(await adapter.get(task_id), model))
        unknown = unknown_status_note(task)
        if unknown is not None:
            ui.note(unknown)
        record = task.record(input=values, via=Via.POLL if task.status.terminal else None)
        services.journal.task_updated(task.id, task.status.value, record if task.status.terminal else None)
        tracker.record(record)
        await show_preview(ui, access.settings, preview, record, services)
        if task.status.terminal:
            raise_unless_completed(task)
        return 0


def _print_got(ui: Ui, record: dict[str, Any]) -> None:
    if ui.json_mode:
        ui.json(record)
        return
    ui.note(f"{record['id']}: {record['status']}")
    for url in record["outputs"]:
        ui.data(url)


async def cancel_flow(task_id: str, route: RouteFlags, account: AccountFlags, ui: Ui, *,
                      delete_outputs: bool = False) -> int:
    """g3w cancel: look at the task first; cancel (Get3W v3: delete) it only if it has not finished."""
    from get3w_cli.tasks import cancel_unless_finished

    ctx = Context()
    async with open_services(ctx, resolve.access(ctx, account, provider=route.provider)) as services:
        adapter, values, model = locate(ctx, services, route, account, task_id, "cancel")
        if not adapter.can_cancel:
            raise UsageError(f"{adapter.provider} {adapter.api} has no cancel endpoint; nothing was sent")
        with about_task(ctx, services, task_id, "cancel"):
            task, sent = await cancel_unless_finished(adapter, task_id, delete_outputs=delete_outputs)
        task = with_model(task, model)
        if not sent:
            raise UsageError(
                f"task {task_id} already {task.status.value}; nothing was cancelled or deleted",
                hint=None if task.status is not Status.COMPLETED or adapter.api != Api.V3 else
                "to delete its outputs, run again with --delete-outputs (they cannot be recovered)")
        record = task.record(input=values)
        services.journal.task_updated(task.id, task.status.value, record)
        if ui.json_mode:
            ui.json(record)
        else:
            ui.data(task.id)
        ui.success(f"deleted the outputs of {task.id}" if task.status.terminal and task.status is not Status.CANCELLED
                   else f"cancelled {task.id}")
        return 0
