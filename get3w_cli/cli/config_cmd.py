"""``g3w config get|set|unset|list|path``: the TOML config file (written 0600, secrets masked)."""

from __future__ import annotations

import typer

from get3w_cli.cli import options as O
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import config_path
from get3w_cli.cli.render import Ui
from get3w_cli.config import (
    CONFIG_KEYS,
    SECRET_KEYS,
    check_config_value,
    mask,
    read_config,
    write_config,
)
from get3w_cli.errors import UsageError

config_app = typer.Typer(help="Read and write the config file.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")

KEY_HELP = "One of: " + ", ".join(CONFIG_KEYS)


def _shown(key: str, value: object) -> str:
    return mask(str(value)) if key in SECRET_KEYS else str(value)


def _sync(ui: Ui, action) -> None:
    async def body() -> int:
        return action()

    run(ui, body)


@config_app.command("get")
def get(key: str = typer.Argument(..., help=KEY_HELP), debug: O.Debug = False) -> None:
    """Print one setting (secrets are masked)."""
    ui = Ui(debug=debug)

    def action() -> int:
        if key not in CONFIG_KEYS:
            raise UsageError(f"unknown config key {key!r}", hint=KEY_HELP)
        values = read_config(config_path())
        if key not in values:
            return 1
        ui.data(_shown(key, values[key]))
        return 0

    _sync(ui, action)


@config_app.command("set")
def set_(key: str = typer.Argument(..., help=KEY_HELP), value: str = typer.Argument(...), debug: O.Debug = False) -> None:
    """Set one setting (the file is written with mode 0600)."""
    ui = Ui(debug=debug)

    def action() -> int:
        path = config_path()
        values = read_config(path)
        values[key] = check_config_value(key, value)
        write_config(path, values)
        ui.success(f"set {key} in {path}")
        return 0

    _sync(ui, action)


@config_app.command("unset")
def unset(key: str = typer.Argument(..., help=KEY_HELP), debug: O.Debug = False) -> None:
    """Remove one setting."""
    ui = Ui(debug=debug)

    def action() -> int:
        if key not in CONFIG_KEYS:
            raise UsageError(f"unknown config key {key!r}", hint=KEY_HELP)
        path = config_path()
        values = read_config(path)
        if values.pop(key, None) is not None:
            write_config(path, values)
        return 0

    _sync(ui, action)


@config_app.command("list")
def list_(json_out: O.Json = False, debug: O.Debug = False) -> None:
    """Print every setting in the file (secrets masked)."""
    ui = Ui(json_mode=json_out, debug=debug)

    def action() -> int:
        values = read_config(config_path())
        shown = {k: _shown(k, v) for k, v in sorted(values.items())}
        if json_out:
            ui.json(shown)
        else:
            for key, value in shown.items():
                ui.data(f"{key} = {value}")
        return 0

    _sync(ui, action)


@config_app.command("path")
def path() -> None:
    """Print where the config file is ($G3W_CONFIG or the user config dir)."""
    typer.echo(str(config_path()))
