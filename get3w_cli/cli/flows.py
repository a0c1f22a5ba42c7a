"""The async bodies of run, submit, get, wait and cancel: services -> one core call -> render.

The work itself is in ``get3w_cli.tasks``; this module opens the services, locates tasks from the
journal, and turns the core's reports into output (through ``Ui`` and the boundary's ``Tracker``,
which prints a task's record on every exit on which its id is known).
"""

from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from get3w_cli.cli.boundary import Tracker
from get3w_cli.cli.context import Flags, Services, open_services
from get3w_cli.cli.inputs import Inputs
from get3w_cli.cli.render import Ui
from get3w_cli.errors import RejectedError, TaskFailedError, UsageError
from get3w_cli.names import Via
from get3w_cli.providers import Adapter, Route
from get3w_cli.records import Status, Task
from get3w_cli.tasks import (
    TaskSpec,
    WaitRequest,
    cancel_unless_finished,
    run_task,
    submit_only,
    wait_existing,
)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
__all__ = ["WaitRequest", "run_flow", "submit_flow", "wait_flow", "get_flow", "cancel_flow"]


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


def _spec(route: Route, inputs: Inputs) -> TaskSpec:
    return TaskSpec(route=route, input=dict(inputs.values), uploads=dict(inputs.uploads))


async def run_flow(flags: Flags, route: Route, inputs: Inputs, request: WaitRequest, ui: Ui, tracker: Tracker) -> int:
    """g3w run: submit one task and wait for it (the boundary prints its record)."""
    if request.plan.on_timeout == "cancel":
        tracker.cancel_on_interrupt = True
    async with open_services(flags, provider=route.provider) as services:
        record = await run_task(services, _spec(route, inputs), request, TaskObserver(ui, tracker))
    ui.stop_progress()
    ui.success(f"{record['id']} completed in {record['elapsed_s']:.1f}s"
               + (f" via {record['via']}" if record["via"] else ""))
    return 0


async def submit_flow(flags: Flags, route: Route, inputs: Inputs, webhook_url: str | None, ui: Ui,
                      tracker: Tracker) -> int:
    """g3w submit: submit, journal, print the id (or the record)."""
    tracker.render = _print_submitted
    async with open_services(flags, provider=route.provider) as services:
        task = await submit_only(services, _spec(route, inputs), webhook_url, TaskObserver(ui, tracker))
    ui.note(f"wait for it with: g3w wait {task.id}")
    return 0


def _print_submitted(ui: Ui, record: dict[str, Any]) -> None:
    if ui.json_mode:
        ui.json(record)
    else:
        ui.data(record["id"])


def guess_route(task_id: str, provider: str | None, api: str | None) -> Route:
    """The route of a task that is not in the journal, from the flags or the id's shape."""
    if provider == "abstrakt" or (provider is None and task_id.startswith("job_")):
        return Route("abstrakt", "v1", "")
    if api is None:
        api = "v1" if _UUID.match(task_id) else "v3"
    if api not in ("v1", "v3"):
        raise UsageError(f"unknown API {api!r}")
    return Route("get3w", api, "")


async def _locate(services: Services, flags: Flags, task_id: str,
                  api: str | None) -> tuple[Adapter, dict[str, Any], str]:
    """The adapter for a task id, and the input and model the journal remembers for it."""
    from get3w_cli.providers import make_adapter

    entry = services.journal.find(task_id)
    if entry and not (flags.provider and flags.provider != entry.provider):
        route = Route(entry.provider, entry.api, entry.model)
        base = None if (flags.base_url or services.sandbox) else entry.base_url
        adapter = make_adapter(route, services.client(route.provider, route.api, base_url=base))
        return adapter, entry.input, entry.model
    return services.adapter(guess_route(task_id, flags.provider, api)), {}, ""


@contextmanager
def _about_task(task_id: str) -> Iterator[None]:
    """A 404 / 409 on a task's own URL is about that task, not about a model or inputs: say so."""
    try:
        yield
    except RejectedError as exc:
        if exc.status == 404:
            exc.hint = f"check the task id {task_id} (and --provider / --api / --base-url if g3w did not submit it)"
        else:
            exc.hint = f"see the task's state with: g3w get {task_id}"
        raise


def _with_model(task: Task, model: str) -> Task:
    """Some answers (a v3 delete) do not name the model; the journal does."""
    return task if task.model or not model else dataclasses.replace(task, model=model)


async def wait_flow(flags: Flags, task_id: str, api: str | None, request: WaitRequest, ui: Ui, tracker: Tracker) -> int:
    """g3w wait: poll an already submitted task to its end (no callback can be registered now)."""
    if request.plan.on_timeout == "cancel":
        tracker.cancel_on_interrupt = True
    async with open_services(flags, provider=flags.provider) as services:
        adapter, values, model = await _locate(services, flags, task_id, api)
        if request.via == Via.WEBHOOK:
            ui.note("a callback cannot be registered for a task already submitted; polling")
        with _about_task(task_id):
            task = _with_model(await adapter.get(task_id), model)
        record = await wait_existing(services, adapter, task, values, request, TaskObserver(ui, tracker))
    ui.stop_progress()
    ui.success(f"{record['id']} completed")
    return 0


async def get_flow(flags: Flags, task_id: str, api: str | None, ui: Ui) -> int:
    """g3w get: one GET; exit 1 when the task failed or was cancelled."""
    async with open_services(flags, provider=flags.provider) as services:
        adapter, values, model = await _locate(services, flags, task_id, api)
        with _about_task(task_id):
            task = _with_model(await adapter.get(task_id), model)
        record = task.record(input=values, via=Via.POLL if task.status.terminal else None)
        services.journal.task_updated(task.id, task.status.value, record if task.status.terminal else None)
        if ui.json_mode:
            ui.json(record)
        else:
            ui.note(f"{task.id}: {task.status.value}")
            for url in task.outputs:
                ui.data(url)
        if task.status in (Status.FAILED, Status.CANCELLED):
            raise TaskFailedError(task)
        return 0


async def cancel_flow(flags: Flags, task_id: str, api: str | None, ui: Ui, *, delete_outputs: bool = False) -> int:
    """g3w cancel: look at the task first; cancel (Get3W v3: delete) it only if it has not finished."""
    async with open_services(flags, provider=flags.provider) as services:
        adapter, values, model = await _locate(services, flags, task_id, api)
        if not adapter.can_cancel:
            raise UsageError(f"{adapter.provider} {adapter.api} has no cancel endpoint; nothing was sent")
        with _about_task(task_id):
            task, sent = await cancel_unless_finished(adapter, task_id, delete_outputs=delete_outputs)
        task = _with_model(task, model)
        if not sent:
            raise UsageError(
                f"task {task_id} already {task.status.value}; nothing was cancelled or deleted",
                hint=None if task.status is not Status.COMPLETED or adapter.api != "v3" else
                "to delete its outputs, run again with --delete-outputs (they cannot be recovered)")
        record = task.record(input=values)
        services.journal.task_updated(task.id, task.status.value, record)
        if ui.json_mode:
            ui.json(record)
        else:
            ui.data(task.id)
        if task.status.terminal and task.status is not Status.CANCELLED:
            ui.success(f"deleted the outputs of {task.id}")
        else:
            ui.success(f"cancelled {task.id}")
        return 0

