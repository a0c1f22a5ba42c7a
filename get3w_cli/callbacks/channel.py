"""The callback channel of run and batch: a token, its inbox, and a way for callbacks to reach it.

The way, in order (choices.py): ``--public-url``; a running relay (borrowed: the relay's public
URL plus our own token; no listener of our own); else our own listener, made reachable by a
tunnel, or local when every provider is on this machine. Either way the requests for our token
are answered here by one ``CallbackEndpoint``, so verification and de-duplication are the same.
Before a paid task is submitted, one request is sent through the public URL to prove it arrives.

A way that can drop (a tunnel, the relay) is watched while the channel is open: when it drops,
the channel says so once and tells the inbox (``channel_lost``), whose waiters poll at once.
Everything opened here is closed on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from get3w_cli.callbacks.choices import ChannelOptions, providers_local, usable_relay
from get3w_cli.callbacks.reach import Way, open_public
from get3w_cli.constants import CLOUDFLARED_REACH_PATIENCE
from get3w_cli.errors import WebhookSetupError
from get3w_cli.names import TunnelKind
from get3w_cli.redaction import register
from get3w_cli.webhooks.endpoint import CallbackEndpoint
from get3w_cli.webhooks.inbox import Inbox

if TYPE_CHECKING:
    from get3w_cli.webhooks.listener import CallbackListener

Notify = Callable[[str, str], None]


@dataclass
class Channel:
    inbox: Inbox
    endpoint: CallbackEndpoint
    url: str  # the callback URL to register with tasks
    how: str  # "public-url" | "relay" | "ngrok" | "cloudflared" | "local"
    listener: CallbackListener | None = None  # None while borrowing the relay


@asynccontextmanager
async def open_channel(options: ChannelOptions, *, notify: Notify) -> AsyncIterator[Channel]:
    """Make our token reachable; yield the channel; close everything after.

    Raises:
        ListenerError, TunnelError, WebhookSetupError: the channel cannot be set up.
    """
    async with AsyncExitStack() as stack:
        inbox = Inbox()
        endpoint = CallbackEndpoint(inbox, secrets=options.secrets)
        register(endpoint.token)  # anyone holding it can post callbacks: keep it out of every log
        way, failure = await _borrow_relay(stack, endpoint, options, notify)
        listener = None
        if way is None:
            # Imported here: deciding whether webhooks are possible must not load the server (aiohttp).
            from get3w_cli.webhooks.listener import CallbackListener

            listener = CallbackListener(inbox, host=options.listen_host, port=options.listen_port, endpoint=endpoint)
            await listener.start()
            stack.push_async_callback(listener.close)
            way = await open_public(stack, listener.port, endpoint, options, notify,
                                    allow_local=providers_local(options), failure=failure)
        url = endpoint.callback_url(way.public) if way.public else (listener.local_url if listener else "")
        if way.public is not None:
            register(url)  # a public callback URL is a secret too (a CI log masks it whole)
        through = " (through the relay)" if way.how == "relay" else ""
        notify("note", f"listening for callbacks at {_redact(url, endpoint.token)}{through}")
        if way.dropped is not None:
            watcher = asyncio.create_task(_watch(way, inbox, notify), name="g3w-channel-watch")
            stack.push_async_callback(_stop, watcher)
        yield Channel(inbox=inbox, endpoint=endpoint, url=url, how=way.how, listener=listener)


async def _borrow_relay(stack: AsyncExitStack, endpoint: CallbackEndpoint, options: ChannelOptions, notify: Notify
                        ) -> tuple[Way | None, WebhookSetupError | None]:
    """Register our token with the running relay and check its URL end to end; (None, why) when
    there is no relay to borrow or it cannot be used (said in one warning line: the next choice is tried)."""
    info = usable_relay(options)
    if info is None:
        return None, None
    from get3w_cli.webhooks.listener import check_reachable
    from get3w_cli.webhooks.relay_client import RelayLink

    notify("phase", "connecting to the relay")
    try:
        async with AsyncExitStack() as attempt:
            link = RelayLink(info, endpoint)
            await link.open()
            attempt.push_async_callback(link.close)
            notify("phase", "checking the callback URL")
            patience = CLOUDFLARED_REACH_PATIENCE if info.tunnel == TunnelKind.CLOUDFLARED else 0.0
            await check_reachable(info.public_url, endpoint, patience=patience)
            stack.push_async_exit(attempt.pop_all())
    except WebhookSetupError as exc:
        notify("warn", f"not using the relay: {exc.message}")
        return None, exc
    return Way(info.public_url.rstrip("/"), "relay", link.lost), None


async def _watch(way: Way, inbox: Inbox, notify: Notify) -> None:
    """Wait for the way to drop; then say so once and let every waiter know."""
    assert way.dropped is not None
    reason = await asyncio.shield(way.dropped)
    notify("warn", f"lost {way.what}: {reason}; polling for results")
    inbox.channel_lost(reason)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _redact(url: str, token: str) -> str:
    return url.replace(token, token[:4] + "…")


def setup_failed_message(exc: WebhookSetupError) -> str:
    return f"webhook setup failed ({exc.message}); falling back to polling"
