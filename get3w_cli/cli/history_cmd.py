"""``g3w history``: the local journal of tasks, of batches, and of one batch's lines."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import AccountFlags, FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui

if TYPE_CHECKING:
    from get3w_cli.journal import Journal, JournalEntry


SUBMIT_UNKNOWN = "submit_unknown"  # error.code of a row whose submit got no answer (as in batch records)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class HistoryFlags(FlagGroup):
    """What ``g3w history`` shows."""

    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many tasks (or batches) to show.")] = 20
    status: Annotated[str | None, typer.Option(
        "--status", metavar="STATUS", show_default=False,
        help="Only tasks with this status (lines with this state, with --batch).")] = None
    batch: Annotated[str | None, typer.Option(
        "--batch", metavar="NAME", show_default=False,
        help="The lines of this batch: key, state, task id, status.")] = None
    batches: Annotated[bool, typer.Option("--batches", help="List batches instead of tasks.")] = False
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Ask the provider about every unfinished task (created, processing) and journal the "
                          "answer; shows the refreshed tasks.")] = False


@app.command("history", epilog=examples(
    ("the last 20 failed tasks, as JSON Lines", "g3w history --limit 20 --status failed --json"),
    ("ask the providers about unfinished tasks", "g3w history --refresh"),
    ("batches, then one batch's lines", "g3w history --batches; g3w history --batch nightly"),
))
@options(hide=("quiet", "api_key", "base_url"),
         help_overrides={"json_out": "Print JSON Lines: one task record (or batch, or line) per line."})
def history_cmd(*, show: HistoryFlags, talk: TalkFlags, account: AccountFlags) -> None:
    """Show the tasks (or batches, or a batch's lines) recorded in the local journal."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        ctx = Context()
        if show.refresh:
            return await _refresh(ctx, account, ui)
        journal = ctx.journal()
        try:
            if show.batches:
                _show_batches(journal, ui, show.limit)
            elif show.batch:
                _show_batch_lines(journal, ui, show.batch, show.status)
            else:
                _show_tasks(journal, ui, show.limit, show.status)
        finally:
            journal.close()
        return 0

    run(ui, body)


async def _refresh(ctx: Context, account: AccountFlags, ui: Ui) -> int:
    """Refresh the unfinished tasks, show them; the first failure (after the others) decides the exit."""
    from get3w_cli.cli import resolve
    from get3w_cli.cli.history_refresh import refresh

    refreshed, failed = await refresh(ctx, resolve.access(ctx, account))
    _show_entries(ui, refreshed)
    for entry, error in failed:
        ui.warn(f"could not refresh {entry.id}: {error.message}")
    if failed:
        raise failed[0][1]
    ui.note(f"refreshed {len(refreshed)} unfinished task(s)")
    return 0


def _show_tasks(journal: Journal, ui: Ui, limit: int, status: str | None) -> None:
    _show_entries(ui, journal.tasks(limit=limit, status=status))


def _show_entries(ui: Ui, entries: list[JournalEntry]) -> None:
    """Tasks as JSON Lines of task records (--json), else a table."""
    if ui.json_mode:
        for e in entries:
            ui.json(e.record or _submitted_record(e))
        return
    ui.table(("id", "provider", "model", "status", "submitted"),
             [(e.id or "-", f"{e.provider} {e.api}", e.model, e.status, _when(e.created_at)) for e in entries])


def _submitted_record(entry: JournalEntry) -> dict[str, object]:
    """The task record of a task never waited for: what its submit knew (CONTRACT.md section 4).

    A row whose submit got no answer has no id: its record says ``"id": null`` with its row's
    status (``unknown``, or ``submitting`` when g3w was killed during the POST) and, for
    ``unknown``, ``error.code`` ``submit_unknown`` with the reason."""
    from get3w_cli.records import Status, Task, TaskError, normalize_status

    created = datetime.fromtimestamp(entry.created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if entry.id is not None:
        task = Task(id=entry.id, provider=entry.provider, api=entry.api, model=entry.model,
                    status=normalize_status(entry.status), created_at=created)
        return task.record(input=entry.input)
    error = TaskError(SUBMIT_UNKNOWN, entry.message) if entry.message else None
    stand_in = Task(id="", provider=entry.provider, api=entry.api, model=entry.model, status=Status.CREATED,
                    created_at=created, error=error)
    record: dict[str, object] = stand_in.record(input=entry.input)
    record.update(id=None, status=entry.status)
    return record


def _show_batches(journal: Journal, ui: Ui, limit: int) -> None:
    rows = journal.batches(limit=limit)
    if ui.json_mode:
        for row in rows:
            ui.json(row)
        return
    ui.table(("batch", "source", "total", "done", "failed", "unknown", "open", "updated"),
             [(r["name"], r["source"], r["total"], r["done"], r["failed"], r["unknown"], r["open"],
               _when(r["updated_at"])) for r in rows])


def _show_batch_lines(journal: Journal, ui: Ui, name: str, state: str | None) -> None:
    """Every journalled line of a batch (all of them: --limit does not apply)."""
    from get3w_cli.errors import UsageError

    if journal.enabled and journal.batch_find(name) is None:
        raise UsageError(f"no batch named {name!r} in the journal", hint="list them with: g3w history --batches")
    rows: list[dict[str, Any]] = []
    for line, key, line_state, task_id, record in journal.batch_lines(name):
        if state and line_state != state:
            continue
        rows.append({"batch": name, "line": line, "key": key if key is not None else line, "state": line_state,
                     "id": task_id, "record": record or {}})
    if ui.json_mode:
        for row in rows:
            ui.json({**row, "record": row["record"] or None})
        return
    ui.table(("line", "key", "state", "id", "status", "model"),
             [(r["line"], r["key"], r["state"], r["id"] or "", r["record"].get("status", ""),
               r["record"].get("model", "")) for r in rows])
