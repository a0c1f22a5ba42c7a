"""``g3w download ID [-o DIR]``: a finished task's outputs, downloaded (again) (CONTRACT.md section 12).

The journal's record gives the output URLs when it says the task completed; otherwise the
provider is asked (one GET). When an output host says a recorded URL has expired (403, 404,
410), the provider is asked once for the task again and its fresh URLs are downloaded. The
files (absolute paths) are journalled with the task's record.

Exit codes: 0 downloaded; 1 the task failed, was cancelled or completed with no outputs; 4 it
has not finished (nothing to download yet: ``g3w wait ID -o DIR`` waits for it); 8 a download
failed; the provider's errors as usual (3, 5, 6).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import AccountFlags, OutputFlags, PreviewFlags, RouteFlags, TalkFlags, TaskId, options
from get3w_cli.cli.render import Ui

if TYPE_CHECKING:

    from get3w_cli.config import Settings
    from get3w_cli.errors import G3wError
    from get3w_cli.journal import JournalEntry
    from get3w_cli.records import Task



@app.command("download", epilog=examples(
    ("a finished task's outputs into out/", "g3w download pred_abc123 -o out/"),
    ("and the record, files included, as JSON", "g3w download pred_abc123 -o out/ --json"),
))
@options(help_overrides={"output": "Download into DIR (default: the config's defaults.output, else the current "
                                   "directory) as <id>_<index>.<ext>.",
                         "json_out": "Print the task record (one JSON object, files included) instead of the paths."})
def download_cmd(task_id: TaskId, *, output: OutputFlags, preview: PreviewFlags, talk: TalkFlags,
                 route: RouteFlags, account: AccountFlags) -> None:
    """Download a finished task's outputs (fresh URLs when the recorded ones expired)."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        with ui.activity("downloading"):
            return await download_flow(task_id, route, account, output, ui, tracker, preview)

    run(ui, body, tracker=tracker)


async def download_flow(task_id: str, route: RouteFlags, account: AccountFlags, output: OutputFlags, ui: Ui,
                        tracker: Tracker, preview: PreviewFlags | None = None) -> int:
    """Find the task's outputs (journal, else provider), download them, journal and report the files."""
    from get3w_cli.cli import resolve
    from get3w_cli.cli.context import Context, open_services
    from get3w_cli.downloads import download_fresh
    from get3w_cli.errors import DownloadError
    from get3w_cli.records import Status, mark_no_outputs

    ctx = Context()
    access = resolve.access(ctx, account, provider=route.provider, output=output)
    dest, why = _destination(output, access.settings)
    async with open_services(ctx, access, on_retry=ui.retrying) as services:
        entry = services.journal.find(task_id)

        async def ask() -> Task:
            from get3w_cli.cli.flows import about_task, locate, with_model

            adapter, _input, model = locate(ctx, services, route, account, task_id, "download")
            with about_task(ctx, services, task_id, "download"):
                return with_model(await adapter.get(task_id), model)

        # An in-process sandbox is a new one each run: the URLs an earlier one gave point nowhere.
        task = (None if services.sandbox else _recorded(entry)) or await ask()
        task = mark_no_outputs(task)
        if task.status is not Status.COMPLETED or not task.outputs:
            record = _record(task, entry)
            services.journal.task_updated(task.id, task.status.value, record if task.status.terminal else None)
            tracker.record(record)
            raise _nothing_to_download(task)
        ui.note(f"downloading {len(task.outputs)} output(s) of {task.id} into {dest} ({why})")
        try:
            task, files = await download_fresh(services.session, task, dest, refetch=ask,
                                               progress=ui.download_progress)
        except DownloadError:
            tracker.record(_record(task, entry))
            raise
        record = _record(task, entry, files=files)
        services.journal.task_updated(task.id, task.status.value, record)
        tracker.record(record)
        ui.stop_progress()
        ui.success(f"downloaded {len(files)} file(s) of {task.id}")
        from get3w_cli.cli.flows import show_preview

        await show_preview(ui, access.settings, preview, record, services)
    return 0


def _destination(output: OutputFlags, settings: Settings) -> tuple[Path, str]:
    """Where the files go, and why there (said on stderr).

    Raises:
        UsageError: the path exists and is not a folder (nothing is asked or downloaded).
    """
    from get3w_cli.errors import UsageError

    if output.output:
        dest, why = Path(output.output), "-o"
    elif settings.output:
        dest, why = Path(settings.output), "the config's defaults.output"
    else:
        dest, why = Path.cwd(), "the current directory; -o DIR chooses another"
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is not a folder; nothing was downloaded", hint="give -o a folder")
    return dest.absolute(), why


def _recorded(entry: JournalEntry | None) -> Task | None:
    """The task as the journal last recorded it, when that says it completed with outputs."""
    from get3w_cli.records import Status, Task

    record = entry.record if entry else None
    if entry is None or entry.id is None or not record or record.get("status") != Status.COMPLETED.value:
        return None
    outputs = record.get("outputs") or []
    if not outputs:
        return None
    return Task(id=entry.id, provider=entry.provider, api=entry.api, model=record.get("model") or entry.model,
                status=Status.COMPLETED, outputs=tuple(outputs), created_at=record.get("created_at"),
                completed_at=record.get("completed_at"), raw=record.get("raw") or {})


def _record(task: Task, entry: JournalEntry | None, *, files: list[str] | None = None) -> dict[str, Any]:
    """The task's record, keeping what the journal knew that a GET does not say (path, timings)."""
    from get3w_cli.names import Via

    old: dict[str, Any] = (entry.record if entry else None) or {}
    via = old.get("via") or (Via.POLL.value if task.status.terminal else None)
    record = task.record(input=entry.input if entry else {}, via=via, files=files, elapsed_s=old.get("elapsed_s"))
    for name in ("created_at", "completed_at"):
        record[name] = record[name] or old.get(name)
    return record


def _nothing_to_download(task: Task) -> G3wError:
    """Failed, cancelled or no outputs (its error says so): exit 1; not finished: exit 4 (it may
    still complete)."""
    from get3w_cli.errors import NotFinishedError, TaskFailedError
    if not task.status.terminal:
        return NotFinishedError(f"task {task.id} is still {task.status.value}: nothing to download yet",
                                hint=f"wait for it and download with: g3w wait {task.id} -o DIR")
    return TaskFailedError(task, hint="there is nothing to download")
