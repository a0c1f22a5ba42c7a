"""Account commands: ``models``, ``balance`` and ``upload`` (Get3W v3 account endpoints; Abstrakt models)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from get3w_cli.cli import options as O
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Flags
from get3w_cli.cli.render import Ui


def _flags(provider: Optional[O.ProviderName], api_key: Optional[str], base_url: Optional[str], sandbox: bool) -> Flags:
    return Flags(provider=provider.value if provider else None, api_key=api_key, base_url=base_url, sandbox=sandbox)


@app.command("models")
def models_cmd(
    search: Optional[str] = typer.Argument(None, help="Only models whose id, name or description match."),
    json_out: O.Json = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
) -> None:
    """List the provider's models (Get3W v3 by default, Abstrakt with --provider abstrakt)."""
    ui = Ui(json_mode=json_out, debug=debug)

    async def body() -> int:
        from get3w_cli.cli.context import open_services
        from get3w_cli.providers import Route

        flags = _flags(provider, api_key, base_url, sandbox)
        name = flags.provider or "get3w"
        async with open_services(flags, provider=name) as services:
            adapter = services.adapter(Route(name, "v1" if name == "abstrakt" else "v3", ""))
            models = await adapter.list_models(search)  # type: ignore[attr-defined]
        if json_out:
            ui.json(models.raw)
        else:
            ui.table(models.columns, models.rows, title=f"{name} models")
        return 0

    run(ui, body)


@app.command("balance")
def balance_cmd(
    json_out: O.Json = False,
    debug: O.Debug = False,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
) -> None:
    """Show the Get3W account balance."""
    ui = Ui(json_mode=json_out, debug=debug)

    async def body() -> int:
        from get3w_cli.cli.context import open_services
        from get3w_cli.providers import Route

        flags = _flags(O.ProviderName.get3w, api_key, base_url, sandbox)
        async with open_services(flags, provider="get3w") as services:
            balance = await services.adapter(Route("get3w", "v3", "")).balance()  # type: ignore[attr-defined]
        if json_out:
            ui.json(balance.raw)
        else:
            ui.table(balance.columns, balance.rows, title="Get3W balance")
        return 0

    run(ui, body)


@app.command("upload")
def upload_cmd(
    file: Path = typer.Argument(..., help="Local file to upload (Get3W keeps uploads 7 days)."),
    json_out: O.Json = False,
    debug: O.Debug = False,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
) -> None:
    """Upload a file to Get3W and print its URL (to pass as an input, e.g. -i image_url=URL)."""
    ui = Ui(json_mode=json_out, debug=debug)

    async def body() -> int:
        from get3w_cli.cli.context import open_services
        from get3w_cli.cli.inputs import readable_file
        from get3w_cli.providers import Route

        path = readable_file(str(file), "upload")
        flags = _flags(O.ProviderName.get3w, api_key, base_url, sandbox)
        async with open_services(flags, provider="get3w") as services:
            url = await services.adapter(Route("get3w", "v3", "")).upload(path)  # type: ignore[attr-defined]
        ui.json({"url": url}) if json_out else ui.data(url)
        return 0

    run(ui, body)
