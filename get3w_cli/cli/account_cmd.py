"""Account commands: ``models`` (and ``models show MODEL``), ``balance`` and ``upload`` (Get3W v3 account
endpoints; Abstrakt models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import CONN, AccountFlags, FlagGroup, RouteFlags, TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.errors import UsageError
from get3w_cli.names import Api, Provider

SHOW = "show"  # `g3w models show MODEL`: one model's inputs
Words = Annotated[list[str] | None, typer.Argument(
    metavar="[SEARCH] | show MODEL",
    help="SEARCH: only models whose id, name or description contain it. show MODEL: the model's inputs.",
    show_default=False)]
UploadFile = Annotated[Path, typer.Argument(
    metavar="FILE", help="Local file to upload (Get3W keeps uploads 7 days).", show_default=False)]
GET3W_V3 = (Provider.GET3W, Api.V3)


class ModelsFlags(FlagGroup):
    """``g3w models``'s own options."""

    model_type: Annotated[str | None, typer.Option(
        "--type", metavar="TYPE", rich_help_panel=CONN, show_default=False,
        help="Only models of this type (e.g. text-to-image, image-to-video).")] = None


@app.command("models", epilog=examples(
    ("Get3W models whose name mentions flux", "g3w models flux"),
    ("Abstrakt's text-to-image models as JSON", "g3w models --provider abstrakt --type text-to-image --json"),
    ("a model's inputs", "g3w models show flux-dev"),
))
@options(hide=("quiet",), help_overrides={"json_out": "Print the models as one JSON array (models show: one "
                                                      "object, the model with its inputs)."})
def models_cmd(words: Words = None, *, talk: TalkFlags, route: RouteFlags, account: AccountFlags,
               models: ModelsFlags) -> None:
    """List the provider's models (run name, type, price); `models show MODEL` lists a model's inputs."""
    ui = Ui.for_talk(talk)
    words = words or []

    async def body() -> int:
        from get3w_cli.cli.flows_account import list_models, show_model

        if words[:1] == [SHOW]:
            if len(words) != 2:  # `show` and one model
                raise UsageError("models show takes one MODEL", hint="e.g. g3w models show flux-dev")
            return await show_model(words[1], route, account, ui)
        if len(words) > 1:
            raise UsageError("models takes one SEARCH word", hint="quote a search with spaces: g3w models 'flux dev'")
        return await list_models(words[0] if words else None, models.model_type, route, account, ui)

    run(ui, body)


@app.command("balance", epilog=examples(
    ("the account's balance", "g3w balance"),
    ("as one JSON object", "g3w balance --json"),
))
@options(hide=("quiet",), help_overrides={"json_out": "Print the balance as one JSON object."})
def balance_cmd(*, talk: TalkFlags, account: AccountFlags) -> None:
    """Show the Get3W account balance."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli.flows_account import show_balance

        return await show_balance(account, ui)

    run(ui, body)


@app.command("upload", epilog=examples(
    ("upload, then pass the URL as an input",
     'url=$(g3w upload photo.png) && g3w run wan-2.1-i2v-720p -i image_url="$url"'),
    ("or let run upload it", "g3w run wan-2.1-i2v-720p -p waves -i image_url=@photo.png"),
))
@options(hide=("quiet",), help_overrides={"json_out": 'Print {"url": ...} as one JSON object.'})
def upload_cmd(file: UploadFile, *, talk: TalkFlags, account: AccountFlags) -> None:
    """Upload a file to Get3W and print its URL (to pass as an input, e.g. -i image_url=URL)."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.cli.flows_account import upload_file

        return await upload_file(file, account, ui)

    run(ui, body)
