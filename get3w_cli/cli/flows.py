"""The async bodies of run, submit, get, wait and cancel: submit, journal, wait, download, print."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from get3w_cli.callbacks import Channel, ChannelOptions, open_channel, setup_failed_message, webhook_possible
from get3w_cli.cli.boundary import Tracker
from get3w_cli.cli.context import Flags, Services, open_services
from get3w_cli.cli.inputs import Inputs
from get3w_cli.cli.render import Ui, print_task_result
from get3w_cli.constants import HTTP_SYNC_READ_TIMEOUT
from get3w_cli.downloads import download_outputs
from get3w_cli.errors import DownloadError, RejectedError, TaskFailedError, UsageError, WebhookSetupError
from get3w_cli.providers import Adapter, Route
from get3w_cli.records import Status, Task, utc_now_iso
from get3w_cli.waiting import POLL, SYNC, WEBHOOK, Outcome, WaitPlan, wait_for

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class WaitRequest:
    """The wait options of run / wait / batch, before ``auto`` is decided."""

    via: str
    plan: WaitPlan
    channel: ChannelOptions
    output_dir: str | None = None


def choose_mode(via: str, adapter: Adapter, channel: ChannelOptions, ui: Ui, *, timeout: float) -> str:
    """Turn ``--via`` into webhook, poll or sync for this provider."""
    if via == SYNC and not adapter.has_sync:
        ui.note(f"{adapter.provider} {adapter.api} has no sync mode; polling instead")
        return POLL
    if via == SYNC and timeout < HTTP_SYNC_READ_TIMEOUT:
        # A sync request cannot be cut short at --timeout without losing the task id (exit 4
        # must print it), and the provider may hold it this long: poll, which --timeout bounds.
        ui.note(f"--timeout {timeout:g}s is shorter than a sync request may take; polling instead")
        return POLL
    if via == "auto":
        return WEBHOOK if webhook_possible(channel) else POLL
    return via


async def open_channel_for(stack: AsyncExitStack, mode: str, request: WaitRequest, ui: Ui) -> Channel | None:
    """Open the callback channel for webhook mode; under ``auto`` a failure means polling."""
    if mode != WEBHOOK:
        return None
    try:
        return await stack.enter_async_context(open_channel(request.channel, notify=ui.notify))
    except WebhookSetupError as exc:
        if request.via == WEBHOOK:
            raise
        ui.warn(setup_failed_message(exc) + (f" ({exc.hint})" if exc.hint else ""))
        return None


async def resolve_uploads(services: Services, inputs: Inputs, ui: Ui) -> dict[str, Any]:
    """Upload every ``-i KEY=@FILE`` (Get3W file upload) and put its URL in the inputs."""
    values = dict(inputs.values)
    if not inputs.uploads:
        return values
    from get3w_cli.providers import resolve_route

    uploader = services.adapter(resolve_route("get3w/upload", provider="get3w", api="v3"))
    for key, path in inputs.uploads.items():
        ui.phase(f"uploading {path.name}")
        values[key] = await uploader.upload(path)  # type: ignore[attr-defined]
    return values


def _complete(task: Task) -> Task:
    """Fill the record's timestamps a provider left out."""
    if task.status is Status.COMPLETED and not task.completed_at:
        task = dataclasses.replace(task, completed_at=utc_now_iso())
    return task


async def finish(services: Services, outcome: Outcome, values: dict[str, Any], started: float, *,
                 output_dir: str | None, ui: Ui, tracker: Tracker, created_at: str | None = None) -> int:
    """Download, journal and print one finished task; raise for failure (exit 1) or download trouble (8)."""
    task = _complete(outcome.task)
    if created_at and not task.created_at:
        task = dataclasses.replace(task, created_at=created_at)
    elapsed = asyncio.get_running_loop().time() - started
    files = None
    if output_dir and task.status is Status.COMPLETED:
        ui.phase("downloading")
        try:
            files = await download_outputs(services.session, task, Path(output_dir), progress=ui.download_progress)
        except DownloadError:
            record = task.record(input=values, via=outcome.via, elapsed_s=elapsed)
            services.journal.task_updated(task.id, task.status.value, record)
            tracker.finished(task.id)
            print_task_result(ui, record)
            raise
    record = task.record(input=values, via=outcome.via, files=files, elapsed_s=elapsed)
    services.journal.task_updated(task.id, task.status.value, record)
    tracker.finished(task.id)
    ui.stop_progress()
    print_task_result(ui, record)
    if task.status is not Status.COMPLETED:
        raise TaskFailedError(task)
    ui.success(f"{task.id} completed in {elapsed:.1f}s" + (f" via {outcome.via}" if outcome.via else ""))
    return 0


async def run_flow(flags: Flags, route: Route, inputs: Inputs, request: WaitRequest, ui: Ui, tracker: Tracker) -> int:
    """g3w run: submit one task and wait for it."""
    async with open_services(flags, provider=route.provider) as services, AsyncExitStack() as stack:
        adapter = services.adapter(route)
        values = await resolve_uploads(services, inputs, ui)
        channel_opts = dataclasses.replace(
            request.channel,
            secrets={route.provider: s} if (s := services.webhook_secret(route.provider)) else {},
            provider_urls=(services.base_url(route.provider),),
        )
        request = dataclasses.replace(request, channel=channel_opts)
        mode = choose_mode(request.via, adapter, channel_opts, ui, timeout=request.plan.timeout)
        channel = await open_channel_for(stack, mode, request, ui)
        mode = mode if channel or mode != WEBHOOK else POLL
        ui.phase("submitting")
        started, created_at = asyncio.get_running_loop().time(), utc_now_iso()
        task = await adapter.submit(route.model, values, webhook_url=channel.url if channel else None, sync=mode == SYNC)
        services.journal.task_submitted(task, base_url=services.base_url(route.provider), input=values)
        tracker.submitted(task.id)
        ui.note(f"submitted {task.id} ({route.provider} {route.api} {route.model})")
        plan = dataclasses.replace(request.plan, mode=WEBHOOK if channel else POLL)
        if plan.on_timeout == "cancel":
            tracker.cancel_requested.add(task.id)
        outcome = await wait_for(adapter, task, plan, inbox=channel.inbox if channel else None, notify=ui.notify)
        await stack.aclose()
        return await finish(services, outcome, values, started, output_dir=request.output_dir, ui=ui,
                            tracker=tracker, created_at=created_at)


async def submit_flow(flags: Flags, route: Route, inputs: Inputs, webhook_url: str | None, ui: Ui) -> int:
    """g3w submit: submit, journal, print the id (or the record)."""
    async with open_services(flags, provider=route.provider) as services:
        adapter = services.adapter(route)
        values = await resolve_uploads(services, inputs, ui)
        ui.phase("submitting")
        task = await adapter.submit(route.model, values, webhook_url=webhook_url)
        services.journal.task_submitted(task, base_url=services.base_url(route.provider), input=values)
        if ui.json_mode:
            ui.json(task.record(input=values))
        else:
            ui.data(task.id)
        ui.note(f"wait for it with: g3w wait {task.id}")
        return 0


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
    async with open_services(flags, provider=flags.provider) as services:
        adapter, values, model = await _locate(services, flags, task_id, api)
        if request.via == WEBHOOK:
            ui.note("a callback cannot be registered for a task already submitted; polling")
        started = asyncio.get_running_loop().time()
        with _about_task(task_id):
            task = await adapter.get(task_id)
        tracker.submitted(task.id)
        if request.plan.on_timeout == "cancel":
            tracker.cancel_requested.add(task.id)
        outcome = await wait_for(adapter, task, dataclasses.replace(request.plan, mode=POLL), notify=ui.notify,
                                 via_if_done=POLL)
        outcome = dataclasses.replace(outcome, task=_with_model(outcome.task, model))
        return await finish(services, outcome, values, started, output_dir=request.output_dir, ui=ui, tracker=tracker)


async def get_flow(flags: Flags, task_id: str, api: str | None, ui: Ui) -> int:
    """g3w get: one GET; exit 1 when the task failed or was cancelled."""
    async with open_services(flags, provider=flags.provider) as services:
        adapter, values, model = await _locate(services, flags, task_id, api)
        with _about_task(task_id):
            task = _with_model(await adapter.get(task_id), model)
        record = task.record(input=values, via=POLL)
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


async def cancel_flow(flags: Flags, task_id: str, api: str | None, ui: Ui) -> int:
    """g3w cancel: cancel (or delete) a task at the provider."""
    async with open_services(flags, provider=flags.provider) as services:
        adapter, values, model = await _locate(services, flags, task_id, api)
        if not adapter.can_cancel:
            raise UsageError(f"{adapter.provider} {adapter.api} has no cancel endpoint; nothing was sent")
        with _about_task(task_id):
            task = _with_model(await adapter.cancel(task_id), model)
        services.journal.task_updated(task.id, Status.CANCELLED.value, task.record(input=values))
        if ui.json_mode:
            ui.json(task.record(input=values))
        else:
            ui.data(task.id)
        ui.success(f"cancelled {task.id}")
        return 0
