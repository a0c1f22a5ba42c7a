"""The local webhook listener (an aiohttp server) and the end-to-end reachability probe.

The callback URL carries an unguessable token; anything without it gets 404 and changes
nothing. The server only reads the request and hands it to its ``CallbackEndpoint``
(endpoint.py), which answers it the way every server carrying a token answers (the relay's
borrowers too): it checks (``delivery.Classifier``, the same checks as ``g3w listen``) and
queues, answering at once; the waiter behind the ``Inbox`` does the slow work (confirming
unverified deliveries with a GET, downloading). It never prints.
This module, the relay and the sandbox are the places that import aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Mapping
from types import TracebackType
from typing import Protocol

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, web

from get3w_cli.constants import (
    CLOUDFLARED_REACH_RETRY,
    TUNNEL_PROBE_TIMEOUT,
    WEBHOOK_HEADER_TIMEOUT,
    WEBHOOK_MAX_BODY_BYTES,
    WEBHOOK_PROBE_NONCE_BYTES,
)
from get3w_cli.errors import ListenerError, TunnelError, plain_reason
from get3w_cli.webhooks.endpoint import PROBE_SEGMENT, CallbackEndpoint, ListenerStats, Reply
from get3w_cli.webhooks.http_common import Served, line_logger, read_body, serve_app
from get3w_cli.webhooks.http_common import json_reply as _reply
from get3w_cli.webhooks.http_common import url_host as _url_host
from get3w_cli.webhooks.inbox import Inbox

__all__ = ["PROBE_SEGMENT", "CallbackListener", "ListenerStats", "Probed", "check_reachable", "to_response"]

log = logging.getLogger("g3w.webhooks")


class CallbackListener:
    """An ephemeral webhook receiver at ``http://host:port/<token>`` feeding an ``Inbox``."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        secrets: Mapping[str, str] | None = None,  # provider -> webhook secret
        token: str | None = None,
        provider_hint: str | None = None,
        header_timeout: float = WEBHOOK_HEADER_TIMEOUT,  # to send a request's headers, or idle
        endpoint: CallbackEndpoint | None = None,  # who answers (default: a new one for inbox)
    ) -> None:
        self.endpoint = endpoint or CallbackEndpoint(inbox, secrets=secrets, token=token, provider_hint=provider_hint)
        self.inbox = self.endpoint.inbox
        self.host = host
        self.port = port
        self._header_timeout = header_timeout
        self._served: Served | None = None

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs
        return f"<CallbackListener {self.host}:{self.port}>"

    @property
    def token(self) -> str:
        return self.endpoint.token

    @property
    def stats(self) -> ListenerStats:
        return self.endpoint.stats

    @property
    def probes(self) -> set[str]:
        return self.endpoint.probes

    @property
    def local_url(self) -> str:
        """The callback URL on this machine (token included)."""
        return self.callback_url()

    def callback_url(self, public_base: str | None = None) -> str:
        """Return ``(public_base or the local base) + "/" + token``."""
        return self.endpoint.callback_url(public_base or f"http://{_url_host(self.host)}:{self.port}")

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            ListenerError: the address cannot be bound (port taken, bad host, ...).
        """
        if self._served is not None:
            return
        # Malformed HTTP from a stranger becomes one debug line, not aiohttp's traceback on stderr.
        server_log = line_logger("g3w.webhooks.http", lambda text: log.debug("bad request: %s", text))
        try:
            self._served = await serve_app(self._handle, host=self.host, port=self.port,
                                           on_error=self.endpoint.internal_error, logger=server_log,
                                           warn=lambda text: log.warning("%s", text),
                                           header_timeout=self._header_timeout)
        except (OSError, OverflowError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ListenerError(f"cannot listen on {self.host}:{self.port}: {reason}") from exc
        self.port = self._served.port
        log.debug("webhook listener on %s:%s", self.host, self.port)

    async def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        served, self._served = self._served, None
        if served is not None:
            await served.close()

    async def __aenter__(self) -> CallbackListener:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rest = self.endpoint.rest_of(request.path)
        if rest is None:
            return _reply(404, error="not found")
        body = await read_body(request, WEBHOOK_MAX_BODY_BYTES) if request.method == "POST" else b""
        return to_response(self.endpoint.answer(request.method, rest, dict(request.headers), body))


def to_response(reply: Reply) -> web.Response:
    """The aiohttp response of an endpoint's (or the relay's) ``Reply``."""
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type,
                        headers=dict(reply.headers) or None)


class Probed(Protocol):
    """What the probe needs of a receiver: its callback URL, and the probes it has seen."""

    @property
    def probes(self) -> set[str]: ...

    def callback_url(self, base: str) -> str: ...


async def check_reachable(
    public_url: str, listener: Probed, *, timeout: float = TUNNEL_PROBE_TIMEOUT, patience: float = 0.0
) -> None:
    """Send one GET through ``public_url`` and check that ``listener`` received it.

    ``patience``: for a tunnel still coming up (cloudflared's URL "may take some time to be
    reachable"), the probe is sent again while the answer says so (a 502, 503 or 530 from the
    tunnel's edge, or a name that does not resolve yet), for this long at most.

    Raises:
        TunnelError: kind "unreachable", when the probe does not arrive.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        status, detail, nonce, not_yet = await _probe(public_url, listener, timeout)
        if status == 200 and detail == nonce and nonce in listener.probes:
            return
        if not not_yet or loop.time() + CLOUDFLARED_REACH_RETRY > deadline:
            break
        await asyncio.sleep(CLOUDFLARED_REACH_RETRY)
    got = f"HTTP {status}" if status is not None else detail
    raise TunnelError(
        f"a test request to {public_url} did not reach the local listener ({got})",
        kind="unreachable",
        hint="check that the tunnel or --public-url forwards to this machine's listener, or use --via poll",
    )


# What a tunnel's edge answers while the tunnel behind it is not connected yet (Cloudflare: 530,
# "error 1033"; a proxy: 502, 503).
_NOT_YET = frozenset({502, 503, 530})


async def _probe(public_url: str, listener: Probed, timeout: float) -> tuple[int | None, str, str, bool]:
    """One probe: (HTTP status or None, the answer's text or the failure, the nonce sent, whether
    the answer means "not up yet")."""
    nonce = secrets.token_urlsafe(WEBHOOK_PROBE_NONCE_BYTES)
    url = f"{listener.callback_url(public_url)}/{PROBE_SEGMENT}/{nonce}"
    # ngrok's free tier shows browsers an interstitial page unless asked not to.
    headers = {"ngrok-skip-browser-warning": "1"}
    status, detail, not_yet = None, "", False
    try:
        async with ClientSession(timeout=ClientTimeout(total=timeout)) as session, \
                session.get(url, headers=headers, allow_redirects=False) as response:
            status = response.status
            detail = (await response.text())[:200]
            not_yet = status in _NOT_YET
    except (ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        detail = plain_reason(exc)
        not_yet = isinstance(exc, ClientConnectorError) and isinstance(exc.os_error, socket.gaierror)
    return status, detail, nonce, not_yet
