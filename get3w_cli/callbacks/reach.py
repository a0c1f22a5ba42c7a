"""Making a local server reachable: ``--public-url``, else a tunnel (ngrok, cloudflared), else local.

Shared by the channel of run/batch (its listener), ``g3w relay`` (the relay's public side) and
``g3w listen --tunnel``. Every public URL is checked end to end (one request through it must
reach the server) before anything is paid for; a tunnel that fails its start or its check is
closed at once, and under ``--tunnel auto`` the next choice is tried after one warning line.
What is opened is closed by the caller's exit stack, on every exit path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from get3w_cli.constants import CLOUDFLARED_REACH_PATIENCE
from get3w_cli.errors import TunnelError, WebhookSetupError
from get3w_cli.names import TunnelKind

if TYPE_CHECKING:
    from get3w_cli.callbacks.choices import ChannelOptions
    from get3w_cli.webhooks.listener import Probed

Notify = Callable[[str, str], None]
NGROK_DROPPED = "the ngrok agent's session closed"


@dataclass
class Way:
    """How callbacks reach us: the public base URL (None: the local address), what it is, and a
    future resolved with a reason if it drops while we wait (None: it cannot drop)."""

    public: str | None
    how: str  # "public-url" | "relay" | "ngrok" | "cloudflared" | "local"
    dropped: asyncio.Future[str] | None = None

    @property
    def what(self) -> str:
        return {"relay": "the relay", "ngrok": "the ngrok tunnel", "cloudflared": "the cloudflared tunnel"}.get(
            self.how, "the callback URL")


def no_public_url() -> TunnelError:
    return TunnelError(
        "no public URL for webhooks: the provider cannot reach this machine",
        kind="no_public_url",
        hint="set NGROK_AUTHTOKEN (or --tunnel ngrok), install cloudflared (--tunnel cloudflared), start a relay "
             "(g3w relay), give --public-url, or use --via poll",
    )


async def open_public(stack: AsyncExitStack, port: int, probed: Probed, options: ChannelOptions, notify: Notify, *,
                      allow_local: bool, failure: WebhookSetupError | None = None) -> Way:
    """Make ``127.0.0.1:port`` reachable: ``--public-url``, else the tunnel choices in order.

    ``allow_local``: with no tunnel to try, the local address will do (providers on this machine).
    ``failure``: an earlier choice's failure (the relay's), raised if nothing else can be tried.

    Raises:
        TunnelError, WebhookSetupError: no choice worked (the last one's failure).
    """
    from get3w_cli.callbacks.choices import tunnel_choices
    from get3w_cli.webhooks.listener import check_reachable

    if options.public_url:
        public = options.public_url.rstrip("/")
        notify("phase", "checking the callback URL")
        await check_reachable(public, probed)
        return Way(public, "public-url")
    kinds = tunnel_choices(options)
    for index, kind in enumerate(kinds):
        try:
            async with AsyncExitStack() as attempt:  # a tunnel that fails its check is closed at once
                way = await open_tunnel(attempt, kind, port, probed, options, notify)
                stack.push_async_exit(attempt.pop_all())
                return way
        except WebhookSetupError as exc:
            failure = exc
            if index + 1 < len(kinds):
                notify("warn", f"{exc.message}; trying {kinds[index + 1]}")
    if kinds and failure is not None:
        raise failure
    if allow_local:
        return Way(None, "local")
    raise failure or no_public_url()


async def open_tunnel(stack: AsyncExitStack, kind: TunnelKind, port: int, probed: Probed, options: ChannelOptions,
                      notify: Notify) -> Way:
    """Open one tunnel to ``127.0.0.1:port`` and check it end to end; ``stack`` closes it.

    Raises:
        TunnelError: it could not be opened, or a request through it did not arrive.
    """
    from get3w_cli.webhooks.listener import check_reachable

    patience = 0.0
    if kind == TunnelKind.NGROK:
        from get3w_cli.webhooks.tunnel import open_ngrok

        notify("phase", "opening ngrok tunnel")
        ngrok = await open_ngrok(port, authtoken=options.ngrok_authtoken, ngrok_path=options.ngrok_path,
                                 search=options.ngrok_search, notify=notify)
        stack.push_async_callback(ngrok.close)
        public = ngrok.public_url
        dropped = reason_future(ngrok.dropped, lambda: ngrok.drop_reason or NGROK_DROPPED)
    elif kind == TunnelKind.CLOUDFLARED:
        from get3w_cli.webhooks.cloudflared import open_cloudflared

        notify("phase", "opening cloudflared quick tunnel")
        quick = await open_cloudflared(port, path=options.cloudflared_path)
        stack.push_async_callback(quick.close)
        public, dropped, patience = quick.public_url, quick.dropped, CLOUDFLARED_REACH_PATIENCE
    else:
        raise ValueError(f"not a tunnel: {kind}")
    public = public.rstrip("/")
    notify("phase", "checking the callback URL")
    await check_reachable(public, probed, patience=patience)
    return Way(public, kind.value, dropped)


def reason_future(event: asyncio.Event, reason: Callable[[], str]) -> asyncio.Future[str]:
    """A future resolved with ``reason()`` once ``event`` (the ngrok tunnel's ``dropped``) is set;
    cancelling the future stops the watch (``event`` itself is left alone)."""
    loop = asyncio.get_running_loop()
    out: asyncio.Future[str] = loop.create_future()
    waiter = loop.create_task(event.wait())

    def settle(done: asyncio.Task[Any]) -> None:
        if not done.cancelled() and not out.done():
            out.set_result(reason())

    waiter.add_done_callback(settle)
    out.add_done_callback(lambda _: waiter.cancel())
    return out
