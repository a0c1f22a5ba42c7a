"""Account commands: ``models``, ``balance`` and ``upload`` (Get3W v3 account endpoints; Abstrakt models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.options import AccountFlags, RouteFlags, TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.names import Api, Provider

Search = Annotated[str | None, typer.Argument(
    metavar="SEARCH", help="Only models whose id, name or description match.", show_default=False)]
UploadFile = Annotated[Path, typer.Argument(
    metavar="FILE", help="Local file to upload (Get3W keeps uploads 7 days).", show_default=False)]
GET3W_V3 = (Provider.GET3W, Api.V3)


@app.command("models")
@options(hide=("quiet", "api"))
def models_cmd(search: Search = None, *, talk: TalkFlags, route: RouteFlags, account: AccountFlags) -> None:
    """List the provider's models (Get3W v3 by default, Abstrakt with --provider abstrakt)."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli.flows_account import list_models

        return await list_models(search, route.provider or Provider.GET3W, account, ui)

    run(ui, body)


@app.command("balance")
@options(hide=("quiet",))
def balance_cmd(*, talk: TalkFlags, account: AccountFlags) -> None:
    """Show the Get3W account balance."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli.flows_account import show_balance

        return await show_balance(account, ui)

    run(ui, body)


@app.command("upload")
@options(hide=("quiet",))
def upload_cmd(file: UploadFile, *, talk: TalkFlags, account: AccountFlags) -> None:
    """Upload a file to Get3W and print its URL (to pass as an input, e.g. -i image_url=URL)."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli.flows_account import upload_file

        return await upload_file(file, account, ui)

    run(ui, body)
