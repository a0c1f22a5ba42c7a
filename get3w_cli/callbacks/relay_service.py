"""``g3w relay``: one listener and one tunnel that every g3w process on the machine borrows.

``serve_relay`` takes the relay lock (one relay per G3W_HOME), starts the relay's servers
(webhooks/relay.py), makes the public side reachable (``--public-url``, else a tunnel, checked end
to end with the relay's own token; without one the relay serves only providers on this
machine), then describes itself in relay.json and serves until ``g3w relay stop`` (or Ctrl-C).
On the way out relay.json is removed first, so no new run borrows a relay that is going, then
every borrower is told why (they poll from then on), then the tunnel is closed. A tunnel that
drops makes the relay do the same and end with a ``TunnelError`` (kind "dropped", exit 7).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from get3w_cli.callbacks.choices import ChannelOptions
from get3w_cli.callbacks.reach import Way, open_public
from get3w_cli.constants import RELAY_SECRET_BYTES
from get3w_cli.errors import TunnelError
from get3w_cli.records import utc_now_iso
from get3w_cli.redaction import register
from get3w_cli.webhooks.relay import RelayServer
from get3w_cli.webhooks.relay_state import RelayInfo, relay_lock, remove_info, write_info

Notify = Callable[[str, str], None]


@dataclass(frozen=True)
class RelayOptions:
    host: str
    port: int
    state_dir: Path  # where relay.json and relay.lock live (G3W_HOME)
    reach: ChannelOptions  # --tunnel, --public-url and the tunnels' settings


async def serve_relay(options: RelayOptions, *, notify: Notify, ready: Callable[[RelayInfo], None]) -> None:
    """Serve until asked to stop; ``ready`` is told the relay's description once it is reachable.

    Raises:
        UsageError: a relay is already running (exit 2).
        ListenerError, TunnelError, WebhookSetupError: it cannot be set up, or its tunnel dropped.
    """
    with relay_lock(options.state_dir):
        async with AsyncExitStack() as stack:
            secret = secrets.token_urlsafe(RELAY_SECRET_BYTES)
            register(secret)
            server = RelayServer(host=options.host, port=options.port, secret=secret)
            await server.start()
            stack.push_async_callback(server.close)
            register(server.probe.token)
            way = await open_public(stack, server.port, server.probe, options.reach, notify, allow_local=True)
            if way.how == "local":
                notify("warn", "no tunnel (no ngrok authtoken, no cloudflared, no --public-url): the relay serves "
                               "only providers on this machine")
            info = RelayInfo(pid=os.getpid(), local_url=server.local_url, public_url=way.public or server.local_url,
                             control_port=server.control_port, tunnel=way.how, started_at=utc_now_iso(),
                             secret=secret)
            write_info(options.state_dir, info)
            stack.callback(remove_info, options.state_dir, info.pid)
            ready(info)
            reason = await _until_stopped(server, way)
            if reason is not None:
                remove_info(options.state_dir, info.pid)
                await server.close(f"the relay's tunnel dropped ({reason})")
                raise TunnelError(f"{way.what} dropped ({reason}); the relay stopped and its borrowers poll",
                                  kind="dropped", hint="start the relay again: g3w relay (see --tunnel)")


async def _until_stopped(server: RelayServer, way: Way) -> str | None:
    """Wait for ``relay stop``; return None then, or the reason the tunnel dropped first."""
    stop = asyncio.ensure_future(server.stop_requested.wait())
    waiting: set[asyncio.Future[Any]] = {stop}
    if way.dropped is not None:
        waiting.add(asyncio.ensure_future(asyncio.shield(way.dropped)))
    try:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for each in waiting:
            each.cancel()
    return None if stop in done else str(next(iter(done)).result())
