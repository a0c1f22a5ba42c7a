"""Adapters by route: the one table of (provider, API) -> adapter class, and the ways to build one.

    async with HttpSession() as http:
        adapter = open_adapter(http, route, api_key=key)    # or make_adapter(route, http.api(...))
        task = await adapter.submit(route.model, {"prompt": "a cat"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from get3w_cli.errors import UsageError
from get3w_cli.names import FACTS, Api, Provider, provider_named
from get3w_cli.providers.abstrakt import Abstrakt
from get3w_cli.providers.get3w_v1 import Get3wV1
from get3w_cli.providers.get3w_v3 import Get3wV3
from get3w_cli.providers.routing import Route

if TYPE_CHECKING:
    from get3w_cli.http import ApiClient, ErrorParser, HttpSession
    from get3w_cli.providers.base import Adapter

AdapterClass = type[Get3wV3] | type[Get3wV1] | type[Abstrakt]
ADAPTERS: dict[tuple[Provider, Api], AdapterClass] = {
    (Provider.GET3W, Api.V3): Get3wV3,
    (Provider.GET3W, Api.V1): Get3wV1,
    (Provider.ABSTRAKT, Api.V1): Abstrakt,
}


def adapter_class(route: Route | tuple[str, str]) -> AdapterClass:
    """The adapter class of a Route (or a ``(provider, api)`` pair).

    Raises:
        UsageError: no such provider and API.
    """
    provider, api = (route.provider, route.api) if isinstance(route, Route) else route
    found = ADAPTERS.get((Provider(provider), Api(api))) if provider_named(provider) and api in tuple(Api) else None
    if found is None:
        raise UsageError(f"no adapter for provider {provider!r} API {api!r}")
    return found


def error_parser(route: Route | tuple[str, str]) -> ErrorParser:
    """The ErrorParser of a route's API, for ``HttpSession.api``."""
    return adapter_class(route).parse_error


def make_adapter(route: Route | tuple[str, str], client: ApiClient) -> Adapter:
    """The adapter for a Route (or a ``(provider, api)`` pair) over an ApiClient."""
    return adapter_class(route)(client)


def default_base_url(provider: str) -> str:
    """The provider's public base URL (no path).

    Raises:
        UsageError: an unknown provider.
    """
    known = provider_named(provider)
    if known is None:
        raise UsageError(f"unknown provider {provider!r}", hint="use --provider get3w or --provider abstrakt")
    return FACTS[known].base_url


def open_adapter(
    http: HttpSession, route: Route | tuple[str, str], *, api_key: str | None, base_url: str | None = None
) -> Adapter:
    """Build the ApiClient (base URL, key, the API's error parser) and the adapter in one step."""
    provider = route.provider if isinstance(route, Route) else route[0]
    client = http.api(base_url or default_base_url(provider), api_key, errors=error_parser(route), provider=provider)
    return make_adapter(route, client)
