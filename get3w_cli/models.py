"""Typed model records: what a provider's model list says about a model, and its inputs.

``ModelInfo`` is one model as g3w shows it: the name to type after ``g3w run`` (Abstrakt's carry
their ``abstrakt:`` prefix), its type, its price with a unit, and its inputs when the provider
publishes a JSON Schema for them (``inputs`` is None when it does not). ``missing_inputs`` /
``unknown_inputs`` compare a request's inputs with that schema. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_NO_DEFAULT = object()


@dataclass(frozen=True)
class ModelInput:
    """One input of a model, from its JSON Schema property."""

    name: str
    type: str  # "string", "integer", "string|null"...; "" when the schema gives none
    required: bool = False
    default: Any = _NO_DEFAULT
    enum: tuple[Any, ...] = ()
    description: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type or None, "required": self.required}
        if self.has_default:
            out["default"] = self.default
        out.update(enum=list(self.enum) or None, description=self.description or None)
        return out


@dataclass(frozen=True)
class ModelInfo:
    """One model of a provider's list (``raw``: the provider's own object)."""

    provider: str
    id: str  # the provider's id
    run: str  # the model name to type after `g3w run`
    run_flags: str = ""  # flags that name must come with ("--api v3" for a v3 id of 3+ segments)
    type: str = ""
    price: float | None = None
    price_unit: str = ""  # "USD/run", "credits/run"
    name: str = ""
    description: str = ""
    inputs: tuple[ModelInput, ...] | None = None  # None: the provider published no schema
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def price_text(self) -> str:
        """The price with its unit: ``$0.025/run``, ``1 credit/run``, or "" when unknown."""
        if self.price is None:
            return ""
        amount = f"{self.price:g}"
        if self.price_unit == "USD/run":
            return f"${amount}/run"
        if self.price_unit == "credits/run":
            return f"{amount} credit{'' if self.price == 1 else 's'}/run"
        return f"{amount} {self.price_unit}".strip()

    @property
    def run_command(self) -> str:
        """What follows `g3w run` to run this model: its name, and flags it needs."""
        return f"{self.run} {self.run_flags}".strip()

    def as_json(self, *, raw: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.run, "run_flags": self.run_flags or None, "id": self.id, "provider": self.provider,
            "name": self.name or None,
            "type": self.type or None, "price": self.price, "price_unit": self.price_unit or None,
            "description": self.description or None,
            "inputs": None if self.inputs is None else [each.as_json() for each in self.inputs],
        }
        if raw:
            out["raw"] = dict(self.raw)
        return out


def model_from_json(obj: Mapping[str, Any]) -> ModelInfo:
    """A ModelInfo back from ``as_json`` (the models cache); raises KeyError/TypeError when malformed."""
    inputs = obj.get("inputs")
    return ModelInfo(
        provider=str(obj["provider"]), id=str(obj["id"]), run=str(obj["run"]),
        run_flags=str(obj.get("run_flags") or ""), type=str(obj.get("type") or ""),
        price=_number(obj.get("price")), price_unit=str(obj.get("price_unit") or ""),
        name=str(obj.get("name") or ""), description=str(obj.get("description") or ""),
        inputs=None if inputs is None else tuple(_input_from_json(each) for each in inputs),
        raw=obj.get("raw") or {},
    )


def _input_from_json(obj: Mapping[str, Any]) -> ModelInput:
    return ModelInput(name=str(obj["name"]), type=str(obj.get("type") or ""), required=bool(obj.get("required")),
                      default=obj.get("default", _NO_DEFAULT),
                      enum=tuple(obj.get("enum") or ()), description=str(obj.get("description") or ""))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def inputs_from_schema(schema: object) -> tuple[ModelInput, ...] | None:
    """The inputs a JSON Schema object describes (``properties`` in order, ``required``), or None
    when ``schema`` is no object schema."""
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return None
    required = schema.get("required")
    needed = {str(name) for name in required} if isinstance(required, list) else set()
    found = []
    for name, prop in properties.items():
        spec = prop if isinstance(prop, Mapping) else {}
        enum = spec.get("enum")
        found.append(ModelInput(
            name=str(name), type=_type_text(spec), required=str(name) in needed or spec.get("required") is True,
            default=spec.get("default", _NO_DEFAULT),
            enum=tuple(enum) if isinstance(enum, list) else (),
            description=" ".join(str(spec.get("description") or spec.get("title") or "").split()),
        ))
    return tuple(found)


def _type_text(spec: Mapping[str, Any]) -> str:
    kind = spec.get("type")
    if isinstance(kind, str):
        if kind == "array" and isinstance(spec.get("items"), Mapping) and spec["items"].get("type"):
            return f"array of {spec['items']['type']}"
        return kind
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    for key in ("anyOf", "oneOf"):
        options = spec.get(key)
        if isinstance(options, list):
            return "|".join(_type_text(o) for o in options if isinstance(o, Mapping) and _type_text(o))
    return ""


def missing_inputs(inputs: Iterable[ModelInput], given: Iterable[str]) -> list[str]:
    """The required inputs without a default that ``given`` lacks, in the schema's order."""
    present = set(given)
    return [each.name for each in inputs if each.required and not each.has_default and each.name not in present]


def unknown_inputs(inputs: Iterable[ModelInput], given: Iterable[str]) -> list[str]:
    """The names in ``given`` that the schema does not list, in ``given``'s order."""
    known = {each.name for each in inputs}
    return [name for name in given if name not in known]


def default_text(value: Any) -> str:
    """A default or enum value as one short table cell (strings bare, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
