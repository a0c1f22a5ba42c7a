"""``g3w history``: the local journal of tasks, of batches, and of one batch's lines; ``history
show ID``: one journalled task record. Everything here is read from the journal alone, without
the network, except ``--refresh`` (see history_refresh)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import AccountFlags, FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui

if TYPE_CHECKING:
    from collections.abc import Iterator

    from get3w_cli.journal import Journal, JournalEntry


SUBMIT_UNKNOWN = "submit_unknown"  # error.code of a row whose submit got no answer (as in batch records)
SHOW = "show"
# A journal row's statuses: the contract's five, then the journal's own (a row written before its
# POST, a submit whose answer was lost).
TASK_STATUSES = ("created", "processing", "completed", "failed", "cancelled", "submitting", "unknown")


def when(ts: float) -> str:
    """A journal time as ISO 8601 in local time with its offset: unambiguous in a table and in a
    pipe, readable at a terminal."""
    return datetime.fromtimestamp(ts, timezone.utc).astimezone().isoformat(timespec="seconds")


class HistoryFlags(FlagGroup):
    """What ``g3w history`` shows."""

    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", min=0,
        help="How many tasks (or batches, or a batch's lines) to show; 0 shows them all.")] = 20
    status: Annotated[str | None, typer.Option(
        "--status", metavar="STATUS", show_default=False,
        help=f"Only tasks with this status ({', '.join(TASK_STATUSES)}); with --batch, lines in this state "
             "(submitting, submitted, done, failed, unknown).")] = None
    prompt: Annotated[str | None, typer.Option(
        "--prompt", metavar="TEXT", show_default=False,
        help="Only tasks whose prompt contains TEXT (ignoring case).")] = None
    batch: Annotated[str | None, typer.Option(
        "--batch", metavar="NAME", show_default=False,
        help="The lines of this batch: key, state, task id, status.")] = None
    batches: Annotated[bool, typer.Option("--batches", help="List batches instead of tasks.")] = False
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Ask the provider about every unfinished task (created, processing) and journal the "
                          "answer; shows the refreshed tasks.")] = False


Words = Annotated[list[str] | None, typer.Argument(
    metavar="[show ID]", show_default=False,
    help="show ID: print one journalled task record (--json: the record), without the network.")]


@app.command("history", epilog=examples(
    ("the last 20 failed tasks, as JSON Lines", "g3w history --limit 20 --status failed --json"),
    ("tasks whose prompt mentions a lighthouse", "g3w history --prompt lighthouse"),
    ("one task's journalled record, offline", "g3w history show pred_abc123 --json"),
    ("ask the providers about unfinished tasks", "g3w history --refresh"),
    ("batches, then one batch's lines", "g3w history --batches; g3w history --batch nightly"),
))
@options(hide=("quiet", "api_key", "base_url"),
         help_overrides={"json_out": "Print JSON Lines: one task record (or batch, or line) per line."})
def history_cmd(words: Words = None, *, show: HistoryFlags, talk: TalkFlags, account: AccountFlags) -> None:
    """Show the tasks (or batches, or a batch's lines) recorded in the local journal."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        view, task_id = _view(words or [], show)
        ctx = Context()
        if view == "refresh":
            return await _refresh(ctx, account, ui)
        journal = ctx.journal()
        try:
            if view == SHOW:
                assert task_id is not None
                _show_one(journal, ui, task_id)
            elif view == "batches":
                _show_batches(journal, ui, show.limit)
            elif show.batch is not None:
                _show_batch_lines(journal, ui, show.batch, show.status, show.limit)
            else:
                _show_tasks(journal, ui, show)
        finally:
            journal.close()
        return 0

    run(ui, body)


def _view(words: list[str], show: HistoryFlags) -> tuple[str, str | None]:
    """Which view the arguments ask for (and the id, for show); every flag that would be ignored
    is refused (exit 2).

    Raises:
        UsageError: an unknown argument, a missing id, flags that do not go together, an unknown status.
    """
    from get3w_cli.errors import UsageError
    from get3w_cli.journal import LINE_STATES

    action, task_id = (words[0] if words else None), (words[1] if len(words) > 1 else None)
    if action not in (None, SHOW) or len(words) > 2:
        raise UsageError(f"unexpected argument {' '.join(words)!r}",
                         hint="g3w history lists the tasks; g3w history show ID prints one")
    if action == SHOW and not task_id:
        raise UsageError("g3w history show needs a task id", hint="g3w history lists the journalled tasks")
    given = {"--refresh": show.refresh, "--batches": show.batches, "--batch": show.batch is not None,
             "--status": show.status is not None, "--prompt": show.prompt is not None}
    allowed: tuple[str, ...]
    if action == SHOW:
        view, allowed = SHOW, ()
    elif show.refresh:
        view, allowed = "refresh", ("--refresh",)
    elif show.batches:
        view, allowed = "batches", ("--batches",)
    elif show.batch is not None:
        view, allowed = "lines", ("--batch", "--status")
    else:
        view, allowed = "tasks", ("--status", "--prompt")
    extra = [flag for flag, on in given.items() if on and flag not in allowed]
    if extra:
        what = {SHOW: "history show", "refresh": "--refresh", "batches": "--batches", "lines": "--batch"}[view]
        raise UsageError(f"{', '.join(extra)} cannot be combined with {what}")
    valid = LINE_STATES if view == "lines" else TASK_STATUSES
    if show.status is not None and show.status not in valid:
        raise UsageError(f"unknown status {show.status!r}" + (" for batch lines" if view == "lines" else ""),
                         hint="use one of: " + ", ".join(valid))
    return view, task_id


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


def _showing(ui: Ui, shown: int, total: int, what: str) -> None:
    """How much of the journal a listing shows (on stderr: stdout stays data)."""
    more = f"; -n {total} (or -n 0) shows them all" if shown < total else ""
    ui.note(f"showing {shown} of {total} {what}{more}")


def _show_tasks(journal: Journal, ui: Ui, show: HistoryFlags) -> None:
    entries = journal.tasks(limit=show.limit or -1, status=show.status, prompt=show.prompt)
    _show_entries(ui, entries)
    _showing(ui, len(entries), journal.count_tasks(status=show.status, prompt=show.prompt), "tasks")


def _show_entries(ui: Ui, entries: list[JournalEntry]) -> None:
    """Tasks as JSON Lines of task records (--json), else a table."""
    if ui.json_mode:
        for e in entries:
            ui.json(e.record or _submitted_record(e))
        return
    ui.table(("id", "provider", "model", "status", "prompt", "submitted"),
             [(e.id or "-", f"{e.provider} {e.api}", e.model, e.status, _short_prompt(e.input), when(e.created_at))
              for e in entries])


def _short_prompt(values: dict[str, Any]) -> str:
    """The prompt on one line, cut to HISTORY_PROMPT_CHARS."""
    prompt = values.get("prompt")
    if prompt is None:
        return ""
    text = " ".join((prompt if isinstance(prompt, str) else json.dumps(prompt)).split())
    limit = C.HISTORY_PROMPT_CHARS
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def _show_one(journal: Journal, ui: Ui, task_id: str) -> None:
    """One journalled task: its record with --json, else its fields one a line."""
    from get3w_cli.errors import UsageError

    entry = journal.find(task_id)
    if entry is None:
        raise UsageError(f"no task {task_id} in the journal",
                         hint="g3w history lists the journalled tasks; g3w get ID asks the provider")
    record: dict[str, Any] = entry.record or _submitted_record(entry)
    if ui.json_mode:
        ui.json(record)
        return
    for name, value in _fields(entry, record):
        first, *more = value.splitlines() or [""]
        ui.data(f"{name + ':' if name else '':<11}{first}")
        for line in more:  # a prompt on several lines stays under its label
            ui.data(" " * 11 + line)


def _fields(entry: JournalEntry, record: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(label, value) lines of ``history show``; a list gives one line an item."""
    error = record.get("error") or {}
    single = [("id", record.get("id") or "-"), ("provider", f"{entry.provider} {entry.api}"), ("model", entry.model),
              ("status", record.get("status") or entry.status), ("via", record.get("via")), ("batch", entry.batch),
              ("submitted", when(entry.created_at)), ("completed", record.get("completed_at")),
              ("elapsed", None if record.get("elapsed_s") is None else f"{record['elapsed_s']}s"),
              ("prompt", entry.input.get("prompt")), ("input", json.dumps(entry.input, ensure_ascii=False)),
              ("error", f"{error.get('code') or '-'}: {error.get('message')}" if error else None)]
    for name, value in single:
        if value is not None:
            yield name, str(value)
    for name in ("outputs", "files"):
        for index, item in enumerate(record.get(name) or []):
            yield (name if index == 0 else ""), str(item)


def _show_batches(journal: Journal, ui: Ui, limit: int) -> None:
    rows = journal.batches(limit=limit or -1)
    if ui.json_mode:
        for row in rows:
            ui.json(row)
    else:
        ui.table(("batch", "source", "total", "done", "failed", "unknown", "open", "updated"),
                 [(r["name"], r["source"], r["total"], r["done"], r["failed"], r["unknown"], r["open"],
                   when(r["updated_at"])) for r in rows])
    _showing(ui, len(rows), journal.count_batches(), "batches")


def _show_batch_lines(journal: Journal, ui: Ui, name: str, state: str | None, limit: int) -> None:
    """The journalled lines of a batch, in line order: the first ``limit`` (0: all) in ``state``."""
    from get3w_cli.errors import UsageError

    if journal.enabled and journal.batch_find(name) is None:
        raise UsageError(f"no batch named {name!r} in the journal", hint="list them with: g3w history --batches")
    rows: list[dict[str, Any]] = [
        {"batch": name, "line": line, "key": key if key is not None else line, "state": line_state, "id": task_id,
         "record": record or {}}
        for line, key, line_state, task_id, record in journal.batch_lines(name, state=state, limit=limit or -1)]
    if ui.json_mode:
        for row in rows:
            ui.json({**row, "record": row["record"] or None})
    else:
        ui.table(("line", "key", "state", "id", "status", "model"),
                 [(r["line"], r["key"], r["state"], r["id"] or "", r["record"].get("status", ""),
                   r["record"].get("model", "")) for r in rows])
    _showing(ui, len(rows), journal.count_batch_lines(name, state=state), "lines")
