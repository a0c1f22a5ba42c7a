"""Provider adapters behind one interface, and the routing of model names to them.

    resolve_route("flux-dev")                               -> get3w v3, model get3w/flux-dev
    resolve_route("google/nano-banana-pro/text-to-image")   -> get3w v1
    resolve_route("abstrakt:fal-ai/flux/schnell")           -> abstrakt v1

    async with HttpSession() as http:
        adapter = open_adapter(http, route, api_key=key)    # or make_adapter(route, http.api(...))
        task = await adapter.submit(route.model, {"prompt": "a cat"})

Account operations (``g3w models``, ``balance``, ``upload``) are extra methods on some adapters:
``ModelLister`` (Get3W v3, Abstrakt) and ``Account`` (Get3W v3); check with ``isinstance``.
Tables come back as ``AccountRows``: string cells ready for a table, plus the provider's ``raw`` data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, runtime_checkable
from urllib.parse import quote

from get3w_cli.constants import ABSTRAKT_BASE_URL, GET3W_BASE_URL
from get3w_cli.errors import TransientError, UsageError
from get3w_cli.http import Reply
from get3w_cli.payloads import ABSTRAKT, GET3W

if TYPE_CHECKING:
    from get3w_cli.http import ApiClient, ErrorParser, HttpSession
    from get3w_cli.records import Task

PROVIDERS = (GET3W, ABSTRAKT)
GET3W_APIS = ("v1", "v3")


@dataclass(frozen=True)
class Route:
    """Where a model's tasks go: provider, API surface and the canonical model id."""

    provider: str
    api: str
    model: str


def resolve_route(model: str, *, provider: str | None = None, api: str | None = None) -> Route:
    """Route a model name as CONTRACT.md section 1 says.

    Raises:
        UsageError: empty model, unknown provider or API, or a model that fits no API.
    """
    name = (model or "").strip()
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PROVIDERS and "/" not in prefix:
        if provider and provider != prefix:
            raise UsageError(f"model {name!r} names provider {prefix!r} but --provider is {provider!r}")
        provider, name = prefix, rest.strip()
    elif sep and "/" not in prefix:
        raise UsageError(f"unknown provider prefix {prefix!r} in {model!r}", hint="use get3w: or abstrakt:")
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise UsageError(f"invalid model name {model!r}", hint="e.g. flux-dev, get3w/flux-dev, abstrakt:flux-schnell")
    provider = provider or GET3W
    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r}", hint="use --provider get3w or --provider abstrakt")
    if provider == ABSTRAKT:
        if api not in (None, "v1"):
            raise UsageError(f"Abstrakt has only API v1, not {api!r}")
        return Route(ABSTRAKT, "v1", name)
    segments = name.split("/")
    if api is None:
        api = "v1" if len(segments) >= 3 else "v3"
    if api not in GET3W_APIS:
        raise UsageError(f"unknown API {api!r}", hint="use --api v1 or --api v3")
    if api == "v3":
        if len(segments) == 1:
            segments = ["get3w", *segments]
        if len(segments) != 2:
            raise UsageError(f"Get3W v3 models are owner/name, not {name!r}")
    elif len(segments) < 3:
        raise UsageError(f"Get3W v1 models are provider/model/task, not {name!r}")
    return Route(GET3W, api, "/".join(segments))


class Adapter(Protocol):
    """One provider API. Every method raises only ``G3wError`` subclasses."""

    provider: str
    api: str
    can_cancel: bool
    has_sync: bool

    async def submit(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        webhook_url: str | None = None,
        sync: bool = False,
    ) -> Task: ...

    async def get(self, task_id: str) -> Task: ...

    async def cancel(self, task_id: str) -> Task: ...


@dataclass(frozen=True)
class AccountRows:
    """An account listing (models, balance): column names, string cells, and the provider's data."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    raw: object


@runtime_checkable
class ModelLister(Protocol):
    async def list_models(self, search: str | None = None) -> AccountRows: ...


@runtime_checkable
class Account(Protocol):
    async def balance(self) -> AccountRows: ...

    async def upload(self, path: Path) -> str: ...


def default_base_url(provider: str) -> str:
    """The provider's public base URL (no path)."""
    urls = {GET3W: GET3W_BASE_URL, ABSTRAKT: ABSTRAKT_BASE_URL}
    if provider not in urls:
        raise UsageError(f"unknown provider {provider!r}", hint="use --provider get3w or --provider abstrakt")
    return urls[provider]


def _adapter_class(route: Route | tuple[str, str]) -> Any:
    # Imported here, not at the top: the adapter modules import this module's helpers.
    from get3w_cli.providers import abstrakt, get3w_v1, get3w_v3

    provider, api = (route.provider, route.api) if isinstance(route, Route) else route
    classes = {
        (GET3W, "v3"): get3w_v3.Get3wV3,
        (GET3W, "v1"): get3w_v1.Get3wV1,
        (ABSTRAKT, "v1"): abstrakt.Abstrakt,
    }
    if (provider, api) not in classes:
        raise UsageError(f"no adapter for provider {provider!r} API {api!r}")
    return classes[(provider, api)]


def error_parser(route: Route | tuple[str, str]) -> ErrorParser:
    """The ErrorParser of a route's API, for ``HttpSession.api``."""
    return _adapter_class(route).parse_error


def make_adapter(route: Route | tuple[str, str], client: ApiClient) -> Adapter:
    """The adapter for a Route (or a ``(provider, api)`` pair) over an ApiClient."""
    return _adapter_class(route)(client)


def open_adapter(
    http: HttpSession, route: Route | tuple[str, str], *, api_key: str | None, base_url: str | None = None
) -> Adapter:
    """Build the ApiClient (base URL, key, the API's error parser) and the adapter in one step."""
    provider = route.provider if isinstance(route, Route) else route[0]
    client = http.api(base_url or default_base_url(provider), api_key, errors=error_parser(route))
    return make_adapter(route, client)


# --- helpers shared by the adapters ------------------------------------------------------------


def id_segment(task_id: str) -> str:
    """A task id as one URL path segment (quoted; dot segments refused)."""
    text = str(task_id).strip()
    if text in ("", ".", ".."):
        raise UsageError(f"invalid task id {task_id!r}")
    return quote(text, safe="")


def model_path(model: str) -> str:
    """A model id as URL path segments: slashes stay raw, everything else is quoted."""
    parts = model.strip().split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UsageError(f"invalid model name {model!r}")
    return "/".join(quote(part, safe="") for part in parts)


def expect_object(reply: Reply, what: str) -> Mapping[str, Any]:
    """The reply body as a JSON object, or a TransientError naming what was expected."""
    if not isinstance(reply.body, Mapping):
        shape = "a non-JSON body" if reply.body is None else f"JSON {type(reply.body).__name__}"
        message = f"unexpected answer to {what}: {shape} (HTTP {reply.status})"
        raise TransientError(message, status=reply.status)
    return reply.body


def unexpected(what: str, detail: str, reply: Reply) -> TransientError:
    return TransientError(f"unexpected answer to {what}: {detail}", status=reply.status, details=reply.body)


def table(items: Iterable[object], preferred: tuple[str, ...], raw: object) -> AccountRows:
    """AccountRows from a list of JSON objects: the ``preferred`` columns present, in that order."""
    objects = [item for item in items if isinstance(item, Mapping)]
    columns = tuple(name for name in preferred if any(name in item for item in objects))
    if not columns and objects:
        columns = tuple(objects[0])
    rows = tuple(tuple(cell(item.get(name)) for name in columns) for item in objects)
    return AccountRows(columns, rows, raw)


def cell(value: object) -> str:
    """One table cell: strings as they are, None as "", anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
