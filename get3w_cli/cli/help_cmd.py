"""``g3w help [COMMAND...]``: the same text as ``g3w [COMMAND...] --help`` (``g3w help`` alone: the list)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.help_format import did_you_mean, examples

CommandPath = Annotated[list[str] | None, typer.Argument(
    metavar="COMMAND", help="A command, or a command and its sub-command (config set).", show_default=False)]


@app.command("help", epilog=examples(
    ("every command, one line each", "g3w help"),
    ("run's options, in panels, with examples", "g3w help run"),
    ("a sub-command", "g3w help config set"),
))
def help_cmd(ctx: typer.Context, command: CommandPath = None) -> None:
    """Show the help of g3w or of one command (g3w help run)."""
    from typer._click.core import Context  # typer's own click
    from typer._click.exceptions import UsageError

    current: Any = ctx.find_root()
    path = command or []
    for depth, name in enumerate(path):
        group = current.command
        is_group = hasattr(group, "list_commands")
        sub = group.get_command(current, name) if is_group else None
        if sub is None:
            known = group.list_commands(current) if is_group else []
            where = " ".join(["g3w", *path[:depth]])
            raise UsageError(f"{where} has no command {name!r}.{did_you_mean(name, known)}", ctx)
        current = Context(sub, info_name=name, parent=current)
    typer.echo(current.get_help())
