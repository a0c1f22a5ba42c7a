"""The names g3w speaks in (providers, APIs, wait modes, tunnels) and the facts about each provider.

One home for each: a provider's default base URL and the environment variables of its key, base
URL and webhook secret are written here once, and every layer (config, routing, the CLI's
choices) reads them from ``FACTS``. The names are ``str`` enums: they compare equal to, print
as and serialise to their plain values (``Provider.GET3W == "get3w"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Name(str, Enum):
    """A ``str`` enum that formats as its value (``f"{Provider.GET3W}"`` is ``get3w``)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Provider(Name):
    GET3W = "get3w"
    ABSTRAKT = "abstrakt"


class Api(Name):
    V1 = "v1"
    V3 = "v3"


class Via(Name):
    """``--via``: how to wait. AUTO is decided (webhook or poll) before waiting starts; it never
    picks STREAM (Get3W v3's Server-Sent Events answer, asked for explicitly)."""

    AUTO = "auto"
    WEBHOOK = "webhook"
    POLL = "poll"
    SYNC = "sync"
    STREAM = "stream"


class TunnelKind(Name):
    """``--tunnel``: how a local listener is made reachable from the provider."""

    AUTO = "auto"
    NGROK = "ngrok"
    CLOUDFLARED = "cloudflared"
    NONE = "none"


class OnTimeout(Name):
    """``--on-timeout``: what happens to a task when the wait ends early (timeout, Ctrl-C)."""

    DETACH = "detach"
    CANCEL = "cancel"


class ServiceChannel(Name):
    """Get3W v1's service tiers (``--channel``)."""

    ECONOMY = "economy"
    STABLE = "stable"
    OFFICIAL = "official"


class SignatureScheme(Name):
    """``g3w sandbox --signature-scheme``: how the sandbox signs its webhook deliveries."""

    NATIVE = "native"  # each API its own documented way (Get3W: GET3W; Abstrakt: ABSTRAKT)
    GET3W = "get3w"  # X-Get3W-Signature: hex HMAC of the raw body
    ABSTRAKT = "abstrakt"  # X-Abstrakt-Signature: hex HMAC of "<X-Abstrakt-Timestamp>.<body>"
    ABSTRAKT_BODY = "abstrakt-body"  # X-Abstrakt-Signature over the raw body alone (the tutorial)
    STANDARD_V1 = "standard-v1"  # webhook-signature: v1,<base64>, key = the decoded whsec_ secret
    WAVESPEED_V3 = "wavespeed-v3"  # webhook-signature: v3,<hex>, key = the whsec_ secret's text


@dataclass(frozen=True)
class ProviderFacts:
    """What g3w knows about a provider before any request (CONTRACT.md sections 1 and 7)."""

    provider: Provider
    title: str  # as the provider writes its own name
    base_url: str  # the public API's base URL, no path (the adapters add /api/v3, /v1)
    key_env: str
    base_url_env: str
    secret_env: str
    apis: tuple[Api, ...]


FACTS: dict[Provider, ProviderFacts] = {
    Provider.GET3W: ProviderFacts(Provider.GET3W, "Get3W", "https://api.get3w.com", "GET3W_API_KEY",
                                  "GET3W_BASE_URL", "GET3W_WEBHOOK_SECRET", (Api.V1, Api.V3)),
    Provider.ABSTRAKT: ProviderFacts(Provider.ABSTRAKT, "Abstrakt", "https://api.abstrakt.one", "ABSTRAKT_API_KEY",
                                     "ABSTRAKT_BASE_URL", "ABSTRAKT_WEBHOOK_SECRET", (Api.V1,)),
}
PROVIDERS: tuple[Provider, ...] = tuple(FACTS)


def provider_named(text: str) -> Provider | None:
    """The provider called ``text`` (exactly), or None."""
    try:
        return Provider(text)
    except ValueError:
        return None
