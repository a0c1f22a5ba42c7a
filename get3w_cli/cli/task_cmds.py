"""Commands on single tasks: run, submit, get, wait, cancel (options -> resolve -> one core call)."""

from __future__ import annotations

from typing import Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import (
    OUT,
    AccountFlags,
    CiFlags,
    InputFlags,
    JournalFlags,
    Model,
    OutputFlags,
    PreviewFlags,
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
NoWait = Annotated[bool, typer.Option(
    "--no-wait", rich_help_panel=OUT, help="Submit and print the id without waiting (what `g3w submit` does).")]
TaskIds = Annotated[list[str], typer.Argument(
    metavar="ID...", help="The task ids; several are waited for at once.", show_default=False)]


@app.command("run", epilog=examples(
    ("one image into out/; prints its path", 'g3w run flux-dev -p "a lighthouse at dusk" -o out/'),
    ("inputs as JSON; the task record on stdout", "g3w run flux-dev -p 'a cat' -i seed:=42 --json"),
    ("Abstrakt, polling, a 10 minute limit", "g3w run abstrakt:flux-schnell -p 'a fox' --via poll --timeout 10m"),
))
@options()
def run_cmd(model: Model, no_wait: NoWait = False, *, inputs: InputFlags, wait: WaitFlags, output: OutputFlags,
            preview: PreviewFlags, talk: TalkFlags, ci: CiFlags, route: RouteFlags, account: AccountFlags,
            journal: JournalFlags) -> None:
    """Submit one task and wait for it; print its outputs (or files with -o)."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        if no_wait:
            if output.output is not None:
                from get3w_cli.errors import UsageError

                raise UsageError("-o downloads outputs, which --no-wait does not wait for",
                                 hint="drop --no-wait, or fetch them later with g3w wait ID -o DIR")
            return await flows.submit_flow(model, None, route, account, inputs, journal, ui, tracker)
        with ui.activity("starting"):
            return await flows.run_flow(model, route, account, inputs, wait, output, journal, ui, tracker,
                                          preview)

    run(ui, body, tracker=tracker, ci=ci)


@app.command("submit", epilog=examples(
    ("submit, keep the id", "id=$(g3w submit flux-dev -p 'a red fox')"),
    ("your app gets the callback", "g3w submit flux-dev -p 'x' --webhook-url https://my.app/hooks/g3w"),
    ("no key, no network", "g3w submit flux-dev -p 'x' --sandbox"),
))
@options(help_overrides={"json_out": "Print the submitted task's record (one JSON object) instead of its id."})
def submit_cmd(model: Model, webhook_url: WebhookUrl = None, *, inputs: InputFlags, talk: TalkFlags, ci: CiFlags,
               route: RouteFlags, account: AccountFlags, journal: JournalFlags) -> None:
    """Submit a task, print its id, do not wait."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        return await flows.submit_flow(model, webhook_url, route, account, inputs, journal, ui, tracker)

    run(ui, body, tracker=tracker, ci=ci)


@app.command("get", epilog=examples(
    ("its status and outputs", "g3w get pred_abc123"),
    ("the task record (one JSON object)", "g3w get pred_abc123 --json | jq .status"),
))
@options()
def get_cmd(task_id: TaskId, *, preview: PreviewFlags, talk: TalkFlags, ci: CiFlags, route: RouteFlags,
            account: AccountFlags) -> None:
    """Fetch a task's current state once (exit 1 if it failed or was cancelled)."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        return await flows.get_flow(task_id, route, account, ui, tracker, preview)

    run(ui, body, tracker=tracker, ci=ci)


@app.command("wait", epilog=examples(
    ("wait, download the outputs", "g3w wait pred_abc123 -o out/ --timeout 10m"),
    ("several tasks at once; the worst exit code", "g3w wait pred_abc123 pred_def456 --json"),
    ("a task submitted with --sandbox", "g3w wait pred_abc123 --sandbox"),
))
@options(hide=("tunnel", "no_relay", "public_url", "listen_host", "listen_port", "webhook_secret", "fallback_after"),
         help_overrides={"json_out": "Print each task's record as one JSON object a line on stdout."})
def wait_cmd(task_ids: TaskIds, *, wait: WaitFlags, output: OutputFlags, preview: PreviewFlags, talk: TalkFlags,
             ci: CiFlags, route: RouteFlags, account: AccountFlags) -> None:
    """Wait for already submitted tasks (polling) and print their outputs."""
    ui, tracker = Ui.for_talk(talk), Tracker()

    async def body() -> int:
        from get3w_cli.cli import flows

        with ui.activity("polling"):
            return await flows.wait_flow(task_ids, route, account, wait, output, ui, tracker, preview)

    run(ui, body, tracker=tracker, ci=ci)


@app.command("cancel", epilog=examples(
    ("cancel a task still running", "g3w cancel pred_abc123"),
    ("delete a finished Get3W v3 task's outputs", "g3w cancel pred_abc123 --delete-outputs"),
))
@options(help_overrides={"json_out": "Print the cancelled task's record as one JSON object."})
def cancel_cmd(task_id: TaskId, delete_outputs: DeleteOutputs = False, *, talk: TalkFlags, route: RouteFlags,
               account: AccountFlags) -> None:
    """Cancel (Get3W v3: delete) a task that has not finished."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli import flows

        return await flows.cancel_flow(task_id, route, account, ui, delete_outputs=delete_outputs)

    run(ui, body)
