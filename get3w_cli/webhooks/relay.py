"""The relay server: one public listener that every g3w process on the machine borrows (CONTRACT 8).

Two servers, each with the listener's limits (``serve_app``: header timeout, body size):

- the **public side** (``--host``:``--port``, where the tunnel forwards): ``/<token>/...`` goes to
  the borrower that registered ``token``, raw (method, the path after the token, every header,
  the body byte for byte), and the borrower's own answer goes back to the sender: the borrower
  classifies and de-duplicates it exactly as its own listener would (``CallbackEndpoint``). A
  token nobody holds gets 404.
- the **control side**, on 127.0.0.1 only, every request carrying the control secret as a Bearer
  token: ``GET /connect?token=T`` (a WebSocket) registers T for as long as that connection lives,
  so a borrower that dies (kill -9 too: the kernel closes its socket) leaves nothing behind;
  ``GET /status``; ``POST /stop``.

The frames on a borrower's connection are in ``relay_wire``. The relay keeps no delivery: one
that its borrower does not answer within RELAY_REPLY_TIMEOUT gets 504, one whose borrower goes
away meanwhile 502; the provider retries, as with any receiver.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from get3w_cli.constants import (
    RELAY_FRAME_MAX_BYTES,
    RELAY_HEARTBEAT,
    RELAY_MAX_CLIENTS,
    RELAY_REPLY_TIMEOUT,
    RELAY_TOKEN_MAX_CHARS,
    RELAY_TOKEN_MIN_CHARS,
    WEBHOOK_HEADER_TIMEOUT,
    WEBHOOK_MAX_BODY_BYTES,
)
from get3w_cli.errors import ListenerError, plain_reason
from get3w_cli.webhooks.endpoint import NOT_FOUND, CallbackEndpoint, Reply, json_answer
from get3w_cli.webhooks.http_common import Served, line_logger, read_body, serve_app, url_host
from get3w_cli.webhooks.inbox import Inbox
from get3w_cli.webhooks.listener import to_response
from get3w_cli.webhooks.relay_state import CONTROL_HOST
from get3w_cli.webhooks.relay_wire import pack, unpack

log = logging.getLogger("g3w.relay")

_TOKEN = re.compile(rf"^[A-Za-z0-9_-]{{{RELAY_TOKEN_MIN_CHARS},{RELAY_TOKEN_MAX_CHARS}}}$")
Headers = list[tuple[str, str]]


class Holder(Protocol):
    """Whoever answers the requests for one token."""

    async def forward(self, method: str, rest: str, headers: Headers, body: bytes) -> Reply: ...


class _Local:
    """A token answered inside the relay (its own end-to-end probe)."""

    def __init__(self, endpoint: CallbackEndpoint) -> None:
        self.endpoint = endpoint

    async def forward(self, method: str, rest: str, headers: Headers, body: bytes) -> Reply:
        return self.endpoint.answer(method, rest, dict(CIMultiDict(headers)), body)


class _Borrower:
    """A token answered by another g3w process, over its WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, reply_timeout: float) -> None:
        self.ws, self.reply_timeout = ws, reply_timeout
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Reply]] = {}

    async def forward(self, method: str, rest: str, headers: Headers, body: bytes) -> Reply:
        ident = next(self._ids)
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[ident] = answer
        try:
            await self.ws.send_bytes(pack({"id": ident, "method": method, "rest": rest, "headers": headers}, body))
            return await asyncio.wait_for(answer, self.reply_timeout)
        except asyncio.TimeoutError:
            return json_answer(504, error="the waiting g3w process did not answer")
        except (ConnectionError, RuntimeError):  # its connection is closing
            return json_answer(502, error="the waiting g3w process went away")
        finally:
            self._pending.pop(ident, None)

    def answered(self, frame: bytes) -> None:
        """Raises: ValueError, for a frame that is not an answer."""
        header, body = unpack(frame)
        status, headers = header.get("status"), header.get("headers") or {}
        if not isinstance(status, int) or not isinstance(headers, dict):
            raise ValueError("not an answer")
        answer = self._pending.get(header.get("id", -1))
        if answer is not None and not answer.done():
            answer.set_result(Reply(status, body, str(header.get("content_type") or "application/json"),
                                    {str(k): str(v) for k, v in headers.items()}))

    def gone(self) -> None:
        for answer in self._pending.values():
            if not answer.done():
                answer.set_result(json_answer(502, error="the waiting g3w process went away"))

    async def bye(self, reason: str) -> None:
        """Tell the borrower why the relay closes, then close (it polls from then on)."""
        try:
            await self.ws.send_str(json.dumps({"bye": reason}))
            await self.ws.close()
        except (ConnectionError, RuntimeError):
            pass


class RelayServer:
    """The relay's two servers and the tokens registered with it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, secret: str,
                 max_clients: int = RELAY_MAX_CLIENTS, reply_timeout: float = RELAY_REPLY_TIMEOUT,
                 header_timeout: float = WEBHOOK_HEADER_TIMEOUT) -> None:
        self.host, self.port, self.control_port = host, port, 0
        self._secret = f"Bearer {secret}".encode()
        self._max_clients, self._reply_timeout, self._header_timeout = max_clients, reply_timeout, header_timeout
        self._holders: dict[str, Holder] = {}
        self._borrowers: dict[str, _Borrower] = {}
        self.probe = CallbackEndpoint(Inbox())  # the relay's own token, for its end-to-end check
        self._holders[self.probe.token] = _Local(self.probe)
        self.stop_requested = asyncio.Event()
        self.forwarded = 0
        self._served: list[Served] = []

    def __repr__(self) -> str:  # tokens and the secret stay out of logs
        return f"<RelayServer {self.host}:{self.port}>"

    @property
    def local_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def clients(self) -> int:
        return len(self._borrowers)

    def holds(self, token: str) -> bool:
        return token in self._holders

    async def start(self) -> None:
        """Bind the public side on host:port and the control side on 127.0.0.1 (any free port).

        Raises:
            ListenerError: an address cannot be bound.
        """
        public = await self._serve(self._public, self.host, self.port)
        self.port = public.port
        control = await self._serve(self._control, CONTROL_HOST, 0)
        self.control_port = control.port
        log.debug("relay on %s:%s, control on %s:%s", self.host, self.port, CONTROL_HOST, self.control_port)

    async def close(self, reason: str = "the relay stopped") -> None:
        """Say goodbye to every borrower (they poll from then on), then stop serving (idempotent)."""
        await asyncio.gather(*(borrower.bye(reason) for borrower in list(self._borrowers.values())))
        served, self._served = self._served, []
        for each in served:
            await each.close()

    async def _serve(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], host: str, port: int
                     ) -> Served:
        server_log = line_logger("g3w.relay.http", lambda text: log.debug("bad request: %s", text))
        try:
            served = await serve_app(handler, host=host, port=port, on_error=self._internal_error, logger=server_log,
                                     warn=lambda text: log.warning("%s", text), header_timeout=self._header_timeout)
        except (OSError, OverflowError, ValueError) as exc:
            await self.close()
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ListenerError(f"cannot listen on {host}:{port}: {reason}") from exc
        self._served.append(served)
        return served

    def _internal_error(self, exc: Exception) -> None:
        log.error("relay handler failed: %s", plain_reason(exc))
        log.debug("relay handler traceback", exc_info=exc)

    async def _public(self, request: web.Request) -> web.StreamResponse:
        token, _, rest = request.path.lstrip("/").partition("/")
        holder = self._holders.get(token)
        if holder is None:
            return to_response(NOT_FOUND)
        body = await read_body(request, WEBHOOK_MAX_BODY_BYTES) if request.method == "POST" else b""
        if body is None:
            return to_response(json_answer(413, error="body too large"))
        self.forwarded += 1
        return to_response(await holder.forward(request.method, rest, list(request.headers.items()), body))

    async def _control(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._secret):
            return to_response(json_answer(401, error="this relay's control secret is required"))
        route = (request.method, request.path)
        if route == ("GET", "/connect"):
            return await self._connect(request)
        if route == ("GET", "/status"):
            return web.json_response({"pid": os.getpid(), "clients": self.clients, "forwarded": self.forwarded})
        if route == ("POST", "/stop"):
            self.stop_requested.set()
            return web.json_response({"stopping": True})
        return to_response(NOT_FOUND)

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        if not _TOKEN.match(token):
            return to_response(json_answer(400, error="a token of URL-safe characters is required"))
        if token in self._holders:
            return to_response(json_answer(409, error="that token is registered already"))
        if self.clients >= self._max_clients:
            return to_response(json_answer(503, error="the relay has as many borrowers as it takes"))
        ws = web.WebSocketResponse(heartbeat=RELAY_HEARTBEAT, max_msg_size=RELAY_FRAME_MAX_BYTES)
        borrower = _Borrower(ws, self._reply_timeout)
        # Registered before the handshake is answered: once connected, a borrower's URL works.
        self._holders[token] = self._borrowers[token] = borrower
        try:
            await ws.prepare(request)
            async for message in ws:
                if message.type != WSMsgType.BINARY:
                    continue
                try:
                    borrower.answered(message.data)
                except ValueError as exc:
                    log.debug("relay: a borrower sent a bad frame: %s", exc)
        finally:
            self._holders.pop(token, None)
            self._borrowers.pop(token, None)
            borrower.gone()
        return ws
