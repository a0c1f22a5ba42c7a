"""A model's inputs as its provider describes them, and the check ``run`` and ``submit`` make with
them before anything is sent.

Where the schema comes from: Abstrakt's ``GET /v1/models/{id}`` (one small GET); Get3W v3's model
list, cached under G3W_HOME and fetched again once a day (``ModelsCache``); Get3W v1 has none.
A schema that cannot be had is a note and the run goes on; a required input that is missing
stops it (exit 2) before any upload or submit; an input the schema does not list is a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from get3w_cli.errors import G3wError, UsageError
from get3w_cli.models import missing_inputs, unknown_inputs
from get3w_cli.providers import ModelDescriber, ModelLister

if TYPE_CHECKING:
    from get3w_cli.models import ModelInfo
    from get3w_cli.providers import Route
    from get3w_cli.tasks.requests import Connections, Notify, TaskSpec


async def describe(conn: Connections, route: Route) -> ModelInfo | None:
    """The model of ``route`` with its inputs, or None when its API describes no models or its
    list does not have it.

    Raises:
        G3wError: the provider could not be asked (network, key, a refusal).
    """
    adapter = conn.adapter(route)
    if isinstance(adapter, ModelDescriber):
        return await adapter.describe_model(route.model)
    if not isinstance(adapter, ModelLister):
        return None
    models = await listed_models(conn, route.provider, adapter, only=route.model)
    return next((model for model in models if model.id == route.model), None)


async def listed_models(conn: Connections, provider: str, lister: ModelLister, *,
                        only: str | None = None) -> list[ModelInfo]:
    """The provider's model list (``only``: at least the model of that id, if listed): from the
    cache while fresh, else asked for (and cached whole)."""
    cache, base_url = conn.models_cache, conn.base_url(provider)
    models = cache.load(provider, base_url, only=only) if cache is not None else None
    if models is None:
        models = await lister.list_models()
        if cache is not None:
            cache.save(provider, base_url, models)
    return models


async def check_inputs(conn: Connections, spec: TaskSpec, notify: Notify) -> None:
    """Refuse a request that lacks an input the model's schema requires; warn about unknown names.

    Raises:
        UsageError: a required input is missing (nothing was sent).
    """
    try:
        model = await describe(conn, spec.route)
    except G3wError as exc:
        notify("note", f"could not read the inputs of {spec.route.model} ({exc.message}); not checking them")
        return
    if model is None or model.inputs is None:
        return
    given = [*spec.input, *(name for name in spec.uploads if name not in spec.input)]
    missing = missing_inputs(model.inputs, given)
    if missing:
        many = len(missing) > 1
        example = "--prompt TEXT" if missing[0] == "prompt" else f"-i {missing[0]}=VALUE"
        raise UsageError(f"{model.run} requires the input{'s' if many else ''} {', '.join(missing)}; nothing was sent",
                         hint=f"add {example}; see its inputs with: g3w models show {model.run_command}")
    unknown = unknown_inputs(model.inputs, given)
    if unknown:
        names = ", ".join(unknown)
        notify("warn", f"{model.run} lists no input named {names}; sending {'them' if len(unknown) > 1 else 'it'} "
                       f"anyway (see g3w models show {model.run_command})")
