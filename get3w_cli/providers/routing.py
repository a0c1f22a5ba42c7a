"""Model names to routes (CONTRACT.md section 1): which provider, which API, which model id.

    resolve_route("flux-dev")                               -> get3w v3, model get3w/flux-dev
    resolve_route("google/nano-banana-pro/text-to-image")   -> get3w v1
    resolve_route("abstrakt:fal-ai/flux/schnell")           -> abstrakt v1
    resolve_route("wavespeed-ai/z-image/turbo", api="v3")   -> get3w v3, the id as written

Without ``--api`` three or more segments mean v1; ``--api v3`` takes any model id as v3
(WaveSpeed-style ids such as ``wavespeed-ai/z-image/turbo`` have three).
"""

from __future__ import annotations

from dataclasses import dataclass

from get3w_cli.errors import UsageError
from get3w_cli.names import PROVIDERS, Api, Provider, provider_named


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
    if sep and provider_named(prefix) is not None:
        if provider and provider != prefix:
            raise UsageError(f"model {name!r} names provider {prefix!r} but --provider is {provider!r}")
        provider, name = prefix, rest.strip()
    elif sep and "/" not in prefix:
        raise UsageError(f"unknown provider prefix {prefix!r} in {model!r}", hint="use get3w: or abstrakt:")
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise UsageError(f"invalid model name {model!r}", hint="e.g. flux-dev, get3w/flux-dev, abstrakt:flux-schnell")
    chosen = provider_named(provider or Provider.GET3W)
    if chosen is None:
        raise UsageError(f"unknown provider {provider!r}", hint="use --provider get3w or --provider abstrakt")
    if chosen is Provider.ABSTRAKT:
        if api not in (None, Api.V1):
            raise UsageError(f"Abstrakt has only API v1, not {api!r}")
        return Route(Provider.ABSTRAKT, Api.V1, name)
    return _get3w_route(model, name, api)


def _get3w_route(model: str, name: str, api: str | None) -> Route:
    segments = name.split("/")
    if api is None:
        api = Api.V1 if len(segments) >= 3 else Api.V3
    if api not in tuple(Api):
        raise UsageError(f"unknown API {api!r}", hint="use --api v1 or --api v3")
    if api == Api.V3:
        if len(segments) == 1:
            segments = [Provider.GET3W, *segments]
    elif len(segments) < 3:
        raise UsageError(f"Get3W v1 models are provider/model/task, not {name!r}")
    return Route(Provider.GET3W, Api(api), "/".join(segments))


__all__ = ["PROVIDERS", "Route", "resolve_route"]
