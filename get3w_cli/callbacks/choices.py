"""How a provider can reach this machine, decided without opening anything (CONTRACT 8 and 9).

The order ``--tunnel auto`` tries: a live relay; ngrok when an authtoken is set; a cloudflared
quick tunnel when a ``cloudflared`` executable is found; else none (the listener is local, which
works only when every provider is on this machine, like the sandbox). ``--public-url`` comes
before all of them. A relay is borrowed unless ``--no-relay``, ``--public-url``, ``--listen-port``
or ``--tunnel none`` is given, and only when its public URL can reach the providers (a relay
without a tunnel serves only providers on this machine).

Light on purpose: ``--via auto`` is decided here, before any server or tunnel is loaded.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from get3w_cli.names import TunnelKind

if TYPE_CHECKING:
    from get3w_cli.webhooks.ngrok_agent import AgentSearch
    from get3w_cli.webhooks.relay_state import RelayInfo


@dataclass(frozen=True)
class ChannelOptions:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    tunnel: str = TunnelKind.AUTO
    public_url: str | None = None
    ngrok_authtoken: str | None = field(default=None, repr=False)
    ngrok_path: str | None = None
    ngrok_search: AgentSearch | None = None  # where the agent may be, may pyngrok install it (wins over ngrok_path)
    cloudflared_path: str | None = None  # CLOUDFLARED_PATH; None: look on PATH
    relay_dir: str | None = None  # where relay.json lives (G3W_HOME); None: never borrow a relay
    no_relay: bool = False
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    provider_urls: tuple[str, ...] = ()  # base URLs of the providers that will call back


def is_local_url(url: str) -> bool:
    """True when the host is this machine (the sandbox): no tunnel is needed to reach us."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def providers_local(options: ChannelOptions) -> bool:
    """Every provider that will call back is on this machine."""
    return bool(options.provider_urls) and all(is_local_url(u) for u in options.provider_urls)


def relay_allowed(options: ChannelOptions) -> bool:
    """Whether a running relay may be borrowed (CONTRACT 8: not with --no-relay, --public-url,
    --listen-port; and not with --tunnel none, which asks for the local listener itself)."""
    return (options.relay_dir is not None and not options.no_relay and not options.public_url
            and options.listen_port == 0 and options.tunnel != TunnelKind.NONE)


def usable_relay(options: ChannelOptions) -> RelayInfo | None:
    """The running relay to borrow, if one may be and its URL reaches the providers."""
    if not relay_allowed(options) or options.relay_dir is None:
        return None
    from get3w_cli.webhooks.relay_state import live_info

    info = live_info(Path(options.relay_dir))
    if info is None or (is_local_url(info.public_url) and not providers_local(options)):
        return None
    return info


def tunnel_choices(options: ChannelOptions) -> list[TunnelKind]:
    """The tunnels to try, in order (after the relay): what ``--tunnel`` names, or auto's order."""
    if options.tunnel == TunnelKind.NGROK:
        return [TunnelKind.NGROK]
    if options.tunnel == TunnelKind.CLOUDFLARED:
        return [TunnelKind.CLOUDFLARED]
    if options.tunnel != TunnelKind.AUTO:
        return []
    from get3w_cli.webhooks.cloudflared import find_cloudflared

    found = find_cloudflared(options.cloudflared_path)
    return ([TunnelKind.NGROK] if options.ngrok_authtoken else []) + (
        [TunnelKind.CLOUDFLARED] if found and os.path.isfile(found) else [])


def webhook_possible(options: ChannelOptions) -> bool:
    """``--via auto`` picks webhooks when a reachable URL can be had without a prompt."""
    return (bool(options.public_url) or usable_relay(options) is not None or bool(tunnel_choices(options))
            or providers_local(options))
