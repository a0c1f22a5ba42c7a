"""Model list items (Get3W v3, Abstrakt) into ``ModelInfo`` records, each shape as documented.

Get3W v3 (``GET /api/v3/models``), two shapes:
    today's sandbox / early docs  ``{id, name, type, description, price}``
    WaveSpeed's (mirrored)        ``{model_id, name, type, description, base_price, api_schema}``
  The price is USD per run. The input schema (decided here, see the README): WaveSpeed's
  ``api_schema.api_schemas[]`` entry of ``type: "model_run"`` and its ``request_schema``; else an
  ``input_schema`` field as Abstrakt names it; else none.
Abstrakt (``GET /v1/models``, ``GET /v1/models/{id}``): ``{id, name, description, category,
  provider, status, pricing: {credits_per_run}}``, the details adding ``input_schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from get3w_cli.models import ModelInfo, inputs_from_schema
from get3w_cli.names import Api, Provider

MODEL_RUN = "model_run"  # the api_schemas entry describing the submit request


def _text(value: object) -> str:
    return " ".join(str(value).split()) if value not in (None, "") else ""


def _price(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def get3w_schema(item: Mapping[str, Any]) -> object:
    """The JSON Schema of a Get3W model's inputs, where its list item carries one (else None)."""
    api_schema = item.get("api_schema")
    if isinstance(api_schema, Mapping):
        for entry in api_schema.get("api_schemas") or []:
            if isinstance(entry, Mapping) and entry.get("type") == MODEL_RUN:
                return entry.get("request_schema")
        if "properties" in api_schema:
            return api_schema
    return item.get("input_schema")


def get3w_model(item: Mapping[str, Any]) -> ModelInfo | None:
    """A Get3W v3 list item, either shape; None when it names no model."""
    model_id = _text(item.get("model_id") or item.get("id"))
    if not model_id:
        return None
    price = _price(item.get("base_price", item.get("price")))
    return ModelInfo(
        provider=Provider.GET3W, id=model_id, run=model_id,
        # Three segments or more route to v1 unless --api v3 says otherwise (CONTRACT 1).
        run_flags=f"--api {Api.V3}" if model_id.count("/") >= 2 else "",
        type=_text(item.get("type")), price=price, price_unit="USD/run" if price is not None else "",
        name=_text(item.get("name")), description=_text(item.get("description")),
        inputs=inputs_from_schema(get3w_schema(item)), raw=dict(item),
    )


def abstrakt_model(item: Mapping[str, Any]) -> ModelInfo | None:
    """An Abstrakt model (list item or details); None when it names no model."""
    model_id = _text(item.get("id") or item.get("model_id"))
    if not model_id:
        return None
    pricing = item.get("pricing")
    per_run = _price(pricing.get("credits_per_run")) if isinstance(pricing, Mapping) else None
    return ModelInfo(
        provider=Provider.ABSTRAKT, id=model_id, run=f"{Provider.ABSTRAKT}:{model_id}",
        type=_text(item.get("category") or item.get("type")), price=per_run,
        price_unit="credits/run" if per_run is not None else "", name=_text(item.get("name")),
        description=_text(item.get("description")), inputs=inputs_from_schema(item.get("input_schema")),
        raw=dict(item),
    )


def matches(model: ModelInfo, search: str | None) -> bool:
    """Whether ``search`` is in the model's id, name or description (any case)."""
    if not search:
        return True
    needle = search.lower()
    return any(needle in text.lower() for text in (model.id, model.name, model.description))


def parsed(items: Iterable[object], parse: Callable[[Mapping[str, Any]], ModelInfo | None]) -> list[ModelInfo]:
    """The items that are objects naming a model, parsed with ``parse``."""
    found = (parse(item) for item in items if isinstance(item, Mapping))
    return [model for model in found if model is not None]
