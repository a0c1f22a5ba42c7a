"""The callback channel: one listener (+ tunnel or public URL) and its inbox, for run and batch.

Decides how a provider can reach us: the user's ``--public-url``, an ngrok tunnel, or, when
the provider itself is on this machine (the sandbox), the listener's own address. Before a
paid task is submitted, one request is sent through the public URL to prove it arrives.
Everything opened here is closed on every exit path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from get3w_cli.errors import TunnelError, WebhookSetupError
from get3w_cli.names import TunnelKind
from get3w_cli.redaction import register

if TYPE_CHECKING:
    from get3w_cli.webhooks.inbox import Inbox
    from get3w_cli.webhooks.listener import CallbackListener
    from get3w_cli.webhooks.ngrok_agent import AgentSearch


@dataclass(frozen=True)
class ChannelOptions:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    tunnel: str = TunnelKind.AUTO
    public_url: str | None = None
    ngrok_authtoken: str | None = field(default=None, repr=False)
    ngrok_path: str | None = None
    ngrok_search: AgentSearch | None = None  # where the agent may be, may pyngrok install it (wins over ngrok_path)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    provider_urls: tuple[str, ...] = ()  # base URLs of the providers that will call back


@dataclass
class Channel:
    inbox: Inbox
    listener: CallbackListener
    url: str  # the callback URL to register with tasks
    how: str  # "public-url" | "ngrok" | "local"


def is_local_url(url: str) -> bool:
    """True when the host is this machine (the sandbox): no tunnel is needed to reach us."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wants_tunnel(options: ChannelOptions) -> bool:
    return options.tunnel == TunnelKind.NGROK or (options.tunnel == TunnelKind.AUTO and bool(options.ngrok_authtoken))


def webhook_possible(options: ChannelOptions) -> bool:
    """``--via auto`` picks webhooks when a reachable URL can be had without a prompt."""
    if options.public_url or wants_tunnel(options):
        return True
    return bool(options.provider_urls) and all(is_local_url(u) for u in options.provider_urls)


@asynccontextmanager
async def open_channel(options: ChannelOptions, *, notify: Callable[[str, str], None]) -> AsyncIterator[Channel]:
    """Start the listener and make it reachable; yield the channel; close everything after.

    Raises:
        ListenerError, TunnelError, WebhookSetupError: the channel cannot be set up.
    """
    # Imported here: deciding whether webhooks are possible must not load the server (aiohttp).
    from get3w_cli.webhooks.inbox import Inbox
    from get3w_cli.webhooks.listener import CallbackListener, check_reachable

    async with AsyncExitStack() as stack:
        inbox = Inbox()
        listener = CallbackListener(inbox, host=options.listen_host, port=options.listen_port, secrets=options.secrets)
        register(listener.token)  # anyone holding it can post callbacks: keep it out of every log
        await listener.start()
        stack.push_async_callback(listener.close)
        if options.public_url:
            public, how = options.public_url.rstrip("/"), "public-url"
        elif wants_tunnel(options):
            from get3w_cli.webhooks.tunnel import open_ngrok

            notify("phase", "opening ngrok tunnel")
            tunnel = await open_ngrok(listener.port, authtoken=options.ngrok_authtoken, ngrok_path=options.ngrok_path,
                                      search=options.ngrok_search, notify=notify)
            stack.push_async_callback(tunnel.close)
            public, how = tunnel.public_url.rstrip("/"), "ngrok"
        elif options.provider_urls and all(is_local_url(u) for u in options.provider_urls):
            public, how = None, "local"
        else:
            raise TunnelError(
                "no public URL for webhooks: the provider cannot reach this machine",
                kind="no_public_url",
                hint="set NGROK_AUTHTOKEN (or --tunnel ngrok), give --public-url, or use --via poll",
            )
        if public is not None:
            notify("phase", "checking the callback URL")
            await check_reachable(public, listener)
        url = listener.callback_url(public)
        if public is not None:
            register(url)  # a public callback URL is a secret too (a CI log masks it whole)
        notify("note", f"listening for callbacks at {_redact(url, listener.token)}")
        yield Channel(inbox=inbox, listener=listener, url=url, how=how)


def _redact(url: str, token: str) -> str:
    return url.replace(token, token[:4] + "…")


def setup_failed_message(exc: WebhookSetupError) -> str:
    return f"webhook setup failed ({exc.message}); falling back to polling"
