"""``g3w config get|set|unset|list|path``: the TOML config file (written 0600, secrets masked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.help_format import G3wGroup, examples
from get3w_cli.cli.options import TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.config import CONFIG_KEYS, ENV_NAMES, SECRET_KEYS, check_config_value, mask, read_config, write_config
from get3w_cli.errors import UsageError

config_app = typer.Typer(help="Read and write the config file.", no_args_is_help=True, rich_markup_mode=None,
                         cls=G3wGroup, epilog=examples(
                             ("store a key (the file is written 0600)", "g3w config set get3w.api_key sk_..."),
                             ("every setting, secrets masked", "g3w config list"),
                             ("where the file is", "g3w config path")))
app.add_typer(config_app, name="config")

KEY_HELP = "One of: " + ", ".join(CONFIG_KEYS)
Key = Annotated[str, typer.Argument(metavar="KEY", help=KEY_HELP, show_default=False)]
Value = Annotated[str, typer.Argument(
    metavar="VALUE", help="The value to store; - reads it from stdin (a hidden prompt on a terminal).",
    show_default=False)]


def _shown(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in the file (TOML)
    return mask(str(value)) if key in SECRET_KEYS else str(value)


def _known(key: str) -> str:
    if key not in CONFIG_KEYS:
        raise UsageError(f"unknown config key {key!r}", hint=KEY_HELP)
    return key


def _sync(ui: Ui, action: Callable[[Context], int]) -> None:
    async def body() -> int:
        return action(Context())

    run(ui, body)


@config_app.command("get", epilog=examples(
    ("the default wait", "g3w config get defaults.via"),
    ("a script that needs the value set", 'via=$(g3w config get defaults.via) || via=auto')))
@options(hide=("json_out", "quiet"))
def get(key: Key, *, talk: TalkFlags) -> None:
    """Print one setting (secrets are masked)."""
    ui = Ui.for_talk(talk)

    def action(ctx: Context) -> int:
        values = read_config(ctx.config_path())
        if _known(key) not in values:
            env = ENV_NAMES.get(key)
            elsewhere = f"; {env} is set in the environment, and wins" if env and ctx.env.get(env) else ""
            ui.note(f"{key} is not set in {ctx.config_path()}{elsewhere}")
            return 1
        ui.data(_shown(key, values[key]))
        return 0

    _sync(ui, action)


def _read_value(key: str) -> str:
    """The value of ``config set KEY -``: a hidden prompt on a terminal, else stdin's text (its
    trailing newlines dropped), so that a key is never typed on a command line.

    Raises:
        UsageError: nothing was read.
    """
    import sys

    if sys.stdin.isatty():
        import getpass

        try:
            text = getpass.getpass(f"{key}: ")
        except EOFError:
            text = ""
    else:
        text = sys.stdin.read()
    text = text.rstrip("\r\n")
    if not text.strip():
        raise UsageError(f"no value for {key} was read from stdin",
                         hint=f'e.g. printf %s "$KEY" | g3w config set {key} -')
    return text


@config_app.command("set", epilog=examples(
    ("a key", "g3w config set abstrakt.api_key sk_live_..."),
    ("a key without it in the shell's history", 'printf %s "$KEY" | g3w config set get3w.api_key -'),
    ("wait by polling unless told", "g3w config set defaults.via poll"),
))
@options(hide=("json_out", "quiet"))
def set_(key: Key, value: Value, *, talk: TalkFlags) -> None:
    """Set one setting (the file is written with mode 0600); VALUE - reads it from stdin."""
    ui = Ui.for_talk(talk)

    def action(ctx: Context) -> int:
        path = ctx.config_path()
        values = read_config(path)
        _known(key)
        given = _read_value(key) if value == "-" else value
        if key in SECRET_KEYS:
            from get3w_cli.redaction import register

            register(given)  # masked in whatever follows (and announced to a CI log)
        values[key] = check_config_value(key, given)
        write_config(path, values)
        ui.success(f"set {key} in {path}")
        return 0

    _sync(ui, action)


@config_app.command("unset", epilog=examples(
    ("forget a key", "g3w config unset get3w.api_key"),
    ("back to the built-in default", "g3w config unset defaults.timeout")))
@options(hide=("json_out", "quiet"))
def unset(key: Key, *, talk: TalkFlags) -> None:
    """Remove one setting."""
    ui = Ui.for_talk(talk)

    def action(ctx: Context) -> int:
        path = ctx.config_path()
        values = read_config(path)
        if values.pop(_known(key), None) is not None:
            write_config(path, values)
        return 0

    _sync(ui, action)


@config_app.command("list", epilog=examples(
    ("every setting, secrets masked", "g3w config list"),
    ("as one JSON object", "g3w config list --json")))
@options(hide=("quiet",), help_overrides={"json_out": "Print the settings as one JSON object (secrets masked)."})
def list_(*, talk: TalkFlags) -> None:
    """Print every setting in the file (secrets masked)."""
    ui = Ui.for_talk(talk)

    def action(ctx: Context) -> int:
        shown = {k: _shown(k, v) for k, v in sorted(read_config(ctx.config_path()).items())}
        if ui.json_mode:
            ui.json(shown)
        else:
            for key, value in shown.items():
                ui.data(f"{key} = {value}")
        return 0

    _sync(ui, action)


@config_app.command("path", epilog=examples(
    ("edit it", '"$EDITOR" "$(g3w config path)"'),
    ("where another file would be", "G3W_CONFIG=~/work/g3w.toml g3w config path")))
def path() -> None:
    """Print where the config file is ($G3W_CONFIG or the user config dir)."""
    typer.echo(str(Context().config_path()))
