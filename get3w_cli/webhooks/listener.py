"""The local webhook listener (an aiohttp server) and the end-to-end reachability probe.

The callback URL carries an unguessable token; anything without it gets 404 and changes
nothing. The handler only checks (``delivery.Classifier``, the same checks as ``g3w listen``)
and queues, answering at once; the waiter behind the ``Inbox`` does the slow work (confirming
unverified deliveries with a GET, downloading). It never prints: rejections are counted in
``stats`` (and logged at debug level), and a signature rejection is reported to the inbox,
whose waiters say so through their own ``notify``.
This module and the sandbox are the only places that import aiohttp.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from get3w_cli.constants import (
    TUNNEL_PROBE_TIMEOUT,
    WEBHOOK_HEADER_TIMEOUT,
    WEBHOOK_MAX_BODY_BYTES,
    WEBHOOK_PROBE_NONCE_BYTES,
    WEBHOOK_PROBES_MAX,
    WEBHOOK_TOKEN_BYTES,
)
from get3w_cli.errors import ListenerError, TunnelError, plain_reason
from get3w_cli.webhooks.delivery import NEW, STALE, Classifier
from get3w_cli.webhooks.http_common import Served, line_logger, read_body, serve_app
from get3w_cli.webhooks.http_common import json_reply as _reply
from get3w_cli.webhooks.http_common import url_host as _url_host
from get3w_cli.webhooks.inbox import Inbox

log = logging.getLogger("g3w.webhooks")

PROBE_SEGMENT = "_probe"


@dataclass
class ListenerStats:
    """Counters of what the listener did with requests that carried the token."""

    received: int = 0  # POSTs at the token path, before any check
    accepted: int = 0  # queued in the inbox
    duplicates: int = 0  # acknowledged, not queued (duplicate or stale)
    rejected_signature: int = 0  # 401
    rejected_other: int = 0  # 400, 405, 413, 422, 500


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
    ) -> None:
        self.inbox = inbox
        self.host = host
        self.port = port
        self.token = token if token is not None else _new_token()
        self.provider_hint = provider_hint
        self.stats = ListenerStats()
        self.probes: set[str] = set()
        self._classifier = Classifier(secrets, provider=provider_hint)
        self._header_timeout = header_timeout
        self._served: Served | None = None

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs
        return f"<CallbackListener {self.host}:{self.port}>"

    @property
    def local_url(self) -> str:
        """The callback URL on this machine (token included)."""
        return self.callback_url()

    def callback_url(self, public_base: str | None = None) -> str:
        """Return ``(public_base or the local base) + "/" + token``."""
        base = public_base.rstrip("/") if public_base else f"http://{_url_host(self.host)}:{self.port}"
        return f"{base}/{self.token}"

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
                                           on_error=self._internal_error, logger=server_log,
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

    def _internal_error(self, exc: Exception) -> None:
        self.stats.rejected_other += 1
        log.error("webhook handler failed: %s", plain_reason(exc))
        log.debug("webhook handler traceback", exc_info=exc)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rest = self._after_token(request.path)
        if rest is None:
            return _reply(404, error="not found")
        probe = rest.split("/")
        if request.method == "GET" and len(probe) == 2 and probe[0] == PROBE_SEGMENT and probe[1]:
            return self._probe(probe[1])
        if request.method != "POST":
            self.stats.rejected_other += 1
            return web.json_response({"error": "method not allowed"}, status=405, headers={"Allow": "POST"})
        self.stats.received += 1
        return await self._delivery(request)

    def _after_token(self, path: str) -> str | None:
        """The path after ``/<token>`` ("" for none), or None when the token is wrong."""
        first, _, rest = path.lstrip("/").partition("/")
        if not hmac.compare_digest(first.encode("utf-8", "replace"), self.token.encode("utf-8")):
            return None
        return rest

    def _probe(self, nonce: str) -> web.Response:
        if len(self.probes) >= WEBHOOK_PROBES_MAX:
            self.probes.clear()
        self.probes.add(nonce)
        return web.Response(text=nonce)

    async def _delivery(self, request: web.Request) -> web.Response:
        body = await read_body(request, WEBHOOK_MAX_BODY_BYTES)
        if body is None:
            return self._reject(413, "body too large")
        examined = self._classifier.examine(dict(request.headers), body, received_at=time.time())
        if examined.status == 401:
            self.stats.rejected_signature += 1
            self.inbox.signature_rejected()
            log.debug("webhook rejected (401): %s", examined.reason)
            return _reply(401, error=examined.reason)
        if examined.delivery is None:
            return self._reject(examined.status, examined.reason)
        verdict = self.inbox.offer(examined.delivery)
        if verdict != NEW:
            self.stats.duplicates += 1
            if verdict == STALE:
                return _reply(200, received=True, stale=True)
            return _reply(200, received=True, duplicate=True)
        self.stats.accepted += 1
        return _reply(200, received=True)

    def _reject(self, status: int, reason: str) -> web.Response:
        self.stats.rejected_other += 1
        # Not a warning: it would be printed over the progress display of the run.
        log.debug("webhook rejected (%s): %s", status, reason)
        return _reply(status, error=reason)


def _new_token() -> str:
    return secrets.token_urlsafe(WEBHOOK_TOKEN_BYTES)


async def check_reachable(
    public_url: str, listener: CallbackListener, *, timeout: float = TUNNEL_PROBE_TIMEOUT
) -> None:
    """Send one GET through ``public_url`` and check that ``listener`` received it.

    Raises:
        TunnelError: kind "unreachable", when the probe does not arrive.
    """
    nonce = secrets.token_urlsafe(WEBHOOK_PROBE_NONCE_BYTES)
    url = f"{listener.callback_url(public_url)}/{PROBE_SEGMENT}/{nonce}"
    # ngrok's free tier shows browsers an interstitial page unless asked not to.
    headers = {"ngrok-skip-browser-warning": "1"}
    status, detail = None, ""
    try:
        async with ClientSession(timeout=ClientTimeout(total=timeout)) as session, \
                session.get(url, headers=headers, allow_redirects=False) as response:
            status = response.status
            detail = (await response.text())[:200]
    except (ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        detail = plain_reason(exc)
    if status == 200 and detail == nonce and nonce in listener.probes:
        return
    got = f"HTTP {status}" if status is not None else detail
    raise TunnelError(
        f"a test request to {public_url} did not reach the local listener ({got})",
        kind="unreachable",
        hint="check that the tunnel or --public-url forwards to this machine's listener, or use --via poll",
    )
