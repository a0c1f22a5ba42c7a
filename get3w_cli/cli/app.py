"""The typer application: the command tree of CONTRACT.md section 2, loaded lazily.

Command modules register their commands on ``commands`` when imported. The root group knows
each command's module and one-line help (``COMMANDS``), so ``g3w --help`` imports no command
module and ``g3w run`` imports and converts only ``run``'s: start-up stays fast. A test checks
that the one-line helps here match the commands' docstrings. Commands are converted with
``help_format.G3wCommand``: plain-text help with the options in panels and an Examples section.
A mistyped command gets "did you mean" from the names listed here.
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
    "wait": ("task_cmds", "Wait for already submitted tasks (polling) and print their outputs."),
    "cancel": ("task_cmds", "Cancel (Get3W v3: delete) a task that has not finished."),
    "open": ("open_cmd", "Open a task's outputs (downloaded files, else URLs) or a file in the default viewer."),
    "listen": ("listen_cmd", "Receive webhooks: print each unique event, forward it, run a command, save deliveries."),
    "batch": ("batch_cmd", "Run many tasks from a JSON Lines file: one listener, -j at once, resumable."),
    "history": ("history_cmd", "Show the tasks (or batches, or a batch's lines) recorded in the local journal."),
    "download": ("download_cmd", "Download a finished task's outputs (fresh URLs when the recorded ones expired)."),
    "sandbox": ("sandbox_cmd",
                "Serve a local emulation of Get3W (v1, v3) and Abstrakt: any key except sk_invalid / sk_broke works."),
    "config": ("config_cmd", "Read and write the config file."),
    "relay": ("relay_cmd",
              "One callback URL for every g3w on this machine: serve it (--detach for the background), status, stop."),
    "models": ("account_cmd",
               "List the provider's models (run name, type, price); `models show MODEL` lists a model's inputs."),
    "balance": ("account_cmd", "Show the Get3W account balance."),
    "upload": ("account_cmd", "Upload a file to Get3W and print its URL (to pass as an input, e.g. -i image_url=URL)."),
    "doctor": ("doctor_cmd", "Check config, keys, journal, ngrok, relay and cloudflared; exit 3 when no key is set."),
    "help": ("help_cmd", "Show the help of g3w or of one command (g3w help run)."),
}
# Commands not listed in the help: the shell completion scripts' helper (cli/complete.py).
HIDDEN: dict[str, str] = {"__complete": "complete_cmd"}

# Plain click help: rendering help through rich costs more start-up time than it is worth.
MARKUP: Any = None

commands = typer.Typer(rich_markup_mode=MARKUP, add_completion=False)


# The command (group) last loaded: the one running (CI annotations name it).
loaded: list[str] = []


def load_command(name: str) -> Any:
    """Import the module of command ``name`` and convert just that command to click."""
    module = COMMANDS[name][0] if name in COMMANDS else HIDDEN.get(name)
    if module is None:
        return None
    loaded[:] = [name]
    importlib.import_module(f"get3w_cli.cli.{module}")
    for info in commands.registered_commands:
        if info.name == name:
            info.cls = _plain_help(info.cls)
            return typer.main.get_command_from_info(info, pretty_exceptions_short=True, rich_markup_mode=MARKUP)
    for group in commands.registered_groups:
        if group.name == name and group.typer_instance is not None:
            for sub in group.typer_instance.registered_commands:
                sub.cls = _plain_help(sub.cls)
            return typer.main.get_group_from_info(group, pretty_exceptions_short=True, suggest_commands=True,
                                                  rich_markup_mode=MARKUP)
    return None


def _plain_help(cls: Any) -> Any:
    """The class a command is converted to: typer's default becomes ours (panels, examples)."""
    from typer.core import TyperCommand

    from get3w_cli.cli.help_format import G3wCommand

    return G3wCommand if cls in (None, TyperCommand) else cls


class LazyGroup(TyperGroup):
    """The root group: commands are imported when invoked, listed from COMMANDS."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load_command(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """typer suggests from the commands already loaded (none, here): suggest from COMMANDS."""
        from typer._click.exceptions import UsageError  # typer's own click raises it

        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            if args and not args[0].startswith("-") and "Did you mean" not in exc.message:
                from get3w_cli.cli.help_format import did_you_mean

                exc.message = exc.message.rstrip(".") + "." + did_you_mean(args[0], COMMANDS)
            raise


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
