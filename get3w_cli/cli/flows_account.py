"""The async bodies of ``models``, ``balance`` and ``upload``: capabilities checked with isinstance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from get3w_cli.cli import resolve
from get3w_cli.cli.context import Context, open_services
from get3w_cli.errors import UsageError
from get3w_cli.names import FACTS, Api, Provider, provider_named
from get3w_cli.providers import Account, ModelLister, Route

if TYPE_CHECKING:
    from get3w_cli.cli.options import AccountFlags
    from get3w_cli.cli.render import Ui


def _account_route(provider: str) -> Route:
    """The route whose adapter answers account requests for ``provider`` (its newest API)."""
    known = provider_named(provider) or Provider.GET3W
    return Route(known, FACTS[known].apis[-1], "")


async def list_models(search: str | None, provider: str, account: AccountFlags, ui: Ui) -> int:
    """g3w models: the provider's model table (or its JSON)."""
    ctx = Context()
    async with open_services(ctx, resolve.access(ctx, account, provider=provider)) as services:
        adapter = services.adapter(_account_route(provider))
        if not isinstance(adapter, ModelLister):
            raise UsageError(f"{provider} lists no models")
        models = await adapter.list_models(search)
        if search is None and services.sandbox is None:
            _remember(ctx, provider, services.base_url(provider), models.raw)
    if ui.json_mode:
        ui.json(models.raw)
    else:
        ui.table(models.columns, models.rows, title=f"{provider} models")
    if search and not models.rows:
        ui.note(f"no {provider} model matches {search!r}" + ("" if provider == Provider.ABSTRAKT else
                                                              "; Abstrakt's: g3w models --provider abstrakt"))
    return 0


def _remember(ctx: Context, provider: str, base_url: str, raw: object) -> None:
    """Keep the whole list for completions and "did you mean" (models_cache)."""
    from get3w_cli import models_cache

    items = raw if isinstance(raw, list) else []
    ids = [str(i.get("id") or i.get("model_id")) for i in items if isinstance(i, dict) and (i.get("id") or
                                                                                              i.get("model_id"))]
    names = [f"abstrakt:{i}" if provider == Provider.ABSTRAKT else i for i in ids]
    models_cache.save(ctx.state_dir(), provider, base_url, names, items)


async def show_balance(account: AccountFlags, ui: Ui) -> int:
    """g3w balance: Get3W's account balance."""
    ctx = Context()
    async with open_services(ctx, resolve.access(ctx, account, provider=Provider.GET3W)) as services:
        adapter = services.adapter(Route(Provider.GET3W, Api.V3, ""))
        assert isinstance(adapter, Account)  # Get3W v3 has the account endpoints
        balance = await adapter.balance()
    if ui.json_mode:
        ui.json(balance.raw)
    else:
        ui.table(balance.columns, balance.rows, title="Get3W balance")
    return 0


async def upload_file(file: Path, account: AccountFlags, ui: Ui) -> int:
    """g3w upload: one file to Get3W's file storage; print its URL."""
    from get3w_cli.cli.inputs import readable_file

    path = readable_file(str(file), "upload")
    ctx = Context()
    async with open_services(ctx, resolve.access(ctx, account, provider=Provider.GET3W)) as services:
        adapter = services.adapter(Route(Provider.GET3W, Api.V3, ""))
        assert isinstance(adapter, Account)
        url = await adapter.upload(path)
    if ui.json_mode:
        ui.json({"url": url})
    else:
        ui.data(url)
    return 0
