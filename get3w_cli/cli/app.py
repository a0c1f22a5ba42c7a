"""The typer application: the command tree of CONTRACT.md section 2, loaded lazily.

Command modules register their commands on ``commands`` when imported. The root group knows
each command's module and one-line help (``COMMANDS``), so ``g3w --help`` imports no command
module and ``g3w run`` imports and converts only ``run``'s: start-up stays fast. A test checks
that the one-line helps here match the commands' docstrings.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from get3w_cli import __version__

EPILOG = (
    "Exit codes: 0 completed · 1 task failed/cancelled · 2 usage · 3 config/auth · 4 timed out · "
    "5 rejected · 6 transient/network · 7 webhook/tunnel setup · 8 download failed · 9 batch incomplete · "
    "130 interrupted · 70 internal error."
)

# name -> (module under get3w_cli.cli, one-line help); the order is the help's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("task_cmds", "Submit one task and wait for it; print its outputs (or files with -o)."),
    "submit": ("task_cmds", "Submit a task, print its id, do not wait."),
    "get": ("task_cmds", "Fetch a task's current state once (exit 1 if it failed or was cancelled)."),
    "wait": ("task_cmds", "Wait for an already submitted task (polling) and print its outputs."),
    "cancel": ("task_cmds", "Cancel (Get3W v3: delete) a task that has not finished."),
    "listen": ("listen_cmd", "Receive webhooks: print each unique event, forward it, run a command, save deliveries."),
    "batch": ("batch_cmd", "Run many tasks from a JSON Lines file: one listener, -j at once, resumable."),
    "history": ("history_cmd", "Show the tasks (or batches, or a batch's lines) recorded in the local journal."),
    "sandbox": ("sandbox_cmd",
                "Serve a local emulation of Get3W (v1, v3) and Abstrakt: any key except sk_invalid / sk_broke works."),
    "config": ("config_cmd", "Read and write the config file."),
    "relay": ("relay_cmd",
              "One callback URL for every g3w on this machine: serve it (--detach for the background), status, stop."),
    "models": ("account_cmd", "List the provider's models (Get3W v3 by default, Abstrakt with --provider abstrakt)."),
    "balance": ("account_cmd", "Show the Get3W account balance."),
    "upload": ("account_cmd", "Upload a file to Get3W and print its URL (to pass as an input, e.g. -i image_url=URL)."),
    "doctor": ("doctor_cmd", "Check config, keys, journal and ngrok; exit 3 when no provider key is set."),
}

# Plain click help: rendering help through rich costs more start-up time than it is worth.
MARKUP: Any = None

commands = typer.Typer(rich_markup_mode=MARKUP, add_completion=False)


def load_command(name: str) -> Any:
    """Import the module of command ``name`` and convert just that command to click."""
    if name not in COMMANDS:
        return None
    importlib.import_module(f"get3w_cli.cli.{COMMANDS[name][0]}")
    for info in commands.registered_commands:
        if info.name == name:
            return typer.main.get_command_from_info(info, pretty_exceptions_short=True, rich_markup_mode=MARKUP)
    for group in commands.registered_groups:
        if group.name == name:
            return typer.main.get_group_from_info(group, pretty_exceptions_short=True, suggest_commands=True,
                                                  rich_markup_mode=MARKUP)
    return None


class LazyGroup(TyperGroup):
    """The root group: commands are imported when invoked, listed from COMMANDS."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load_command(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


app = typer.Typer(
    name="g3w",
    cls=LazyGroup,
    help="Generate images and video with Get3W and Abstrakt from the terminal: webhooks, polling, batches.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"g3w {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """g3w: submit and await generations on Get3W and Abstrakt."""
