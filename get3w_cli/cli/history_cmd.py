"""``g3w history``: the local journal of tasks (and batches)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

from get3w_cli.cli import options as O
from get3w_cli.cli.app import app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Flags, open_journal
from get3w_cli.cli.render import Ui


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@app.command("history")
def history_cmd(
    limit: int = typer.Option(20, "--limit", "-n", help="How many tasks to show."),
    status: Optional[str] = typer.Option(None, "--status", help="Only tasks with this status."),
    batch: Optional[str] = typer.Option(None, "--batch", help="Only the tasks of this batch."),
    batches: bool = typer.Option(False, "--batches", help="List batches instead of tasks."),
    json_out: O.Json = False,
    debug: O.Debug = False,
) -> None:
    """Show the tasks (or batches) recorded in the local journal."""
    ui = Ui(json_mode=json_out, debug=debug)

    async def body() -> int:
        journal = open_journal(Flags())
        try:
            if batches:
                rows = journal.batches(limit=limit)
                if json_out:
                    for row in rows:
                        ui.json(row)
                else:
                    ui.table(("batch", "source", "total", "done", "failed", "open", "updated"),
                             [(r["name"], r["source"], r["total"], r["done"] or 0, r["failed"] or 0,
                               r["open"] or 0, _when(r["updated_at"])) for r in rows])
                return 0
            entries = journal.tasks(limit=limit, status=status, batch=batch)
        finally:
            journal.close()
        if json_out:
            for e in entries:
                ui.json(e.record or {"id": e.id, "provider": e.provider, "api": e.api, "model": e.model,
                                     "status": e.status, "input": e.input})
        else:
            ui.table(("id", "provider", "model", "status", "submitted"),
                     [(e.id, f"{e.provider} {e.api}", e.model, e.status, _when(e.created_at)) for e in entries])
        return 0

    run(ui, body)
