"""The async bodies of ``models``, ``models show``, ``balance`` and ``upload``: capabilities checked with
isinstance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from get3w_cli.cli import resolve
from get3w_cli.cli.context import Context, open_services
from get3w_cli.errors import RejectedError, UsageError
from get3w_cli.names import FACTS, Api, Provider, provider_named
from get3w_cli.providers import Account, ModelLister, Route

if TYPE_CHECKING:
    from get3w_cli.cli.options import AccountFlags, RouteFlags
    from get3w_cli.cli.render import Ui


def _account_route(provider: str) -> Route:
    """The route whose adapter answers account requests for ``provider`` (its newest API)."""
    known = provider_named(provider) or Provider.GET3W
    return Route(known, FACTS[known].apis[-1], "")


async def list_models(search: str | None, model_type: str | None, route: RouteFlags, account: AccountFlags,
                      ui: Ui) -> int:
    """g3w models: the provider's models as a table (run name, type, price, description) or a JSON
    array; a whole list is cached for `run`'s input check and the shell completions."""
    provider = route.provider or Provider.GET3W
    ctx = Context()
    async with open_services(ctx, resolve.access(ctx, account, provider=provider)) as services:
        account_route = _account_route(provider)
        adapter = services.adapter(account_route)
        if not isinstance(adapter, ModelLister):
            raise UsageError(f"{provider} lists no models")
        models = await adapter.list_models(search)
        cache = services.models_cache
        if search is None and cache is not None:
            cache.save(account_route.provider, services.base_url(account_route.provider), models)
    if model_type:
        models = [m for m in models if m.type.lower() == model_type.lower()]
    if not models:
        asked = " and ".join(part for part in (f"'{search}'" if search else "", f"type {model_type}" if model_type
                                               else "") if part) or "the list"
        ui.note(f"no {provider} model matches {asked}" if search or model_type else f"{provider} listed no models")
    if ui.json_mode:
        ui.json([m.as_json() for m in models])
    else:
        ui.table(("model", "type", "price", "description"),
                 [(m.run_command, m.type, m.price_text(), m.description) for m in models],
                 title=f"{provider} models", whole=("model",), droppable=("description",))
    return 0


async def show_model(model: str, route: RouteFlags, account: AccountFlags, ui: Ui) -> int:
    """g3w models show MODEL: the model's inputs as its provider describes them."""
    from get3w_cli.models import default_text
    from get3w_cli.tasks.schema import describe

    ctx = Context()
    found = resolve.model_route(ctx, model, route)
    async with open_services(ctx, resolve.access(ctx, account, provider=found.provider)) as services:
        info = await describe(services, found)
    if info is None:
        if (found.provider, found.api) == (Provider.GET3W, Api.V1):
            raise UsageError("Get3W v1 publishes no model list or schemas; only v3 and Abstrakt models can be shown")
        raise RejectedError(f"{found.provider} lists no model {found.model}",
                            hint=f"see the models with: g3w models --provider {found.provider}")
    if ui.json_mode:
        ui.json(info.as_json())
        return 0
    about = ", ".join(part for part in (info.type, info.price_text()) if part)
    ui.note(f"{info.run_command}" + (f" ({about})" if about else "") + (f": {info.description}" if info.description
                                                                           else ""))
    if info.inputs is None:
        ui.note(f"{found.provider} publishes no input schema for {info.id}")
        return 0
    rows = [(each.name, each.type, "yes" if each.required else "", default_text(each.default) if each.has_default
             else "", _values(each.enum), each.description) for each in info.inputs]
    ui.table(("input", "type", "required", "default", "values", "description"), rows, title=info.run,
             whole=("input",), droppable=("description",))
    return 0


def _values(enum: tuple[object, ...]) -> str:
    from get3w_cli.constants import MODEL_ENUM_SHOWN
    from get3w_cli.models import default_text

    shown = ", ".join(default_text(value) for value in enum[:MODEL_ENUM_SHOWN])
    more = len(enum) - MODEL_ENUM_SHOWN
    return shown + (f", … ({more} more)" if more > 0 else "")


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
