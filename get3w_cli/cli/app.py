"""The typer application: the command tree of CONTRACT.md section 2.

Command modules register themselves on ``app`` when imported below; heavy libraries (httpx,
aiohttp, pyngrok) are imported inside the commands, so ``g3w --help`` stays fast.
"""

from __future__ import annotations

import typer

from get3w_cli import __version__

EPILOG = (
    "Exit codes: 0 completed · 1 task failed/cancelled · 2 usage · 3 config/auth · 4 timed out · "
    "5 rejected · 6 transient/network · 7 webhook/tunnel setup · 8 download failed · 9 batch incomplete · "
    "130 interrupted · 70 internal error."
)

app = typer.Typer(
    name="g3w",
    help="Generate images and video with Get3W and Abstrakt from the terminal: webhooks, polling, batches.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Plain click help: rendering help through rich costs more start-up time than it is worth.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"g3w {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """g3w: submit and await generations on Get3W and Abstrakt."""


from get3w_cli.cli import (  # noqa: E402  (registration order is the help order)
    task_cmds,
    listen_cmd,
    batch_cmd,
    history_cmd,
    sandbox_cmd,
    config_cmd,
    account_cmd,
    doctor_cmd,
)

__all__ = ["app", "task_cmds", "listen_cmd", "batch_cmd", "history_cmd", "sandbox_cmd", "config_cmd",
           "account_cmd", "doctor_cmd"]
