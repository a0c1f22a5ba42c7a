"""Commands on single tasks: run, submit, get, wait, cancel (options -> resolve -> one core call)."""

from __future__ import annotations

from typing import Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.options import (
    AccountFlags,
    InputFlags,
    JournalFlags,
    Model,
    OutputFlags,
    RouteFlags,
    TalkFlags,
    TaskId,
    WaitFlags,
    options,
)
from get3w_cli.cli.render import Ui

WebhookUrl = Annotated[str | None, typer.Option(
    "--webhook-url", metavar="URL", help="Register this callback URL with the task.", show_default=False)]
DeleteOutputs = Annotated[bool, typer.Option(
    "--delete-outputs", help="Also delete the outputs of a task that already finished (Get3W v3).")]


@app.command("run")
@options()
def run_cmd(model: Model, *, inputs: InputFlags, wait: WaitFlags, output: OutputFlags, talk: TalkFlags,
            route: RouteFlags, account: AccountFlags, journal: JournalFlags) -> None:
    """Submit one task and wait for it; print its outputs (or files with -o)."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        with ui.activity("starting"):
            return await flows.run_flow(model, route, account, inputs, wait, output, journal, ui, tracker)

    run(ui, body, tracker=tracker)


@app.command("submit")
@options()
def submit_cmd(model: Model, webhook_url: WebhookUrl = None, *, inputs: InputFlags, talk: TalkFlags,
               route: RouteFlags, account: AccountFlags, journal: JournalFlags) -> None:
    """Submit a task, print its id, do not wait."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        return await flows.submit_flow(model, webhook_url, route, account, inputs, journal, ui, tracker)

    run(ui, body, tracker=tracker)


@app.command("get")
@options()
def get_cmd(task_id: TaskId, *, talk: TalkFlags, route: RouteFlags, account: AccountFlags) -> None:
    """Fetch a task's current state once (exit 1 if it failed or was cancelled)."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli import flows

        return await flows.get_flow(task_id, route, account, ui)

    run(ui, body)


@app.command("wait")
@options(hide=("tunnel", "no_relay", "public_url", "listen_host", "listen_port", "webhook_secret", "fallback_after"))
def wait_cmd(task_id: TaskId, *, wait: WaitFlags, output: OutputFlags, talk: TalkFlags, route: RouteFlags,
             account: AccountFlags) -> None:
    """Wait for an already submitted task (polling) and print its outputs."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        with ui.activity("polling"):
            return await flows.wait_flow(task_id, route, account, wait, output, ui, tracker)

    run(ui, body, tracker=tracker)


@app.command("cancel")
@options()
def cancel_cmd(task_id: TaskId, delete_outputs: DeleteOutputs = False, *, talk: TalkFlags, route: RouteFlags,
               account: AccountFlags) -> None:
    """Cancel (Get3W v3: delete) a task that has not finished."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli import flows

        return await flows.cancel_flow(task_id, route, account, ui, delete_outputs=delete_outputs)

    run(ui, body)
