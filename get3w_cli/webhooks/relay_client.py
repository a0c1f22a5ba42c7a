"""A borrower's side of the relay: its token registered for as long as one connection lives.

``RelayLink.open`` connects to the relay's control port (127.0.0.1, with the control secret
from relay.json) and registers the endpoint's token; each delivery the relay pushes is answered
by the endpoint, the same ``CallbackEndpoint`` a listener of this process would use, so it is
verified and de-duplicated here, in the process that waits for the task. When the connection
ends without ``close()`` (the relay died, stopped, or lost its tunnel), ``lost`` is resolved with
the reason: the channel says so and its waiters poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import (
    ClientError,
    ClientSession,
    ClientTimeout,
    ClientWebSocketResponse,
    WSMsgType,
    WSServerHandshakeError,
)
from multidict import CIMultiDict

from get3w_cli.constants import RELAY_CONNECT_TIMEOUT, RELAY_FRAME_MAX_BYTES, RELAY_HEARTBEAT
from get3w_cli.errors import plain_reason
from get3w_cli.webhooks.endpoint import CallbackEndpoint, Reply
from get3w_cli.webhooks.relay_state import CONTROL_HOST, RelayInfo, unreachable
from get3w_cli.webhooks.relay_wire import header_pairs, pack, unpack

log = logging.getLogger("g3w.relay")


class RelayLink:
    """One registration at the relay; ``close()`` ends it (and so does this process's end)."""

    def __init__(self, info: RelayInfo, endpoint: CallbackEndpoint) -> None:
        self.info, self.endpoint = info, endpoint
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._session: ClientSession | None = None
        self._ws: ClientWebSocketResponse[bool] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"<RelayLink pid={self.info.pid}>"

    @property
    def public_base(self) -> str:
        return self.info.public_url

    async def open(self, *, timeout: float = RELAY_CONNECT_TIMEOUT) -> None:
        """Connect and register the endpoint's token.

        Raises:
            TunnelError: kind "relay_unreachable": no relay answers, or it refused us.
        """
        url = f"http://{CONTROL_HOST}:{self.info.control_port}/connect"
        session = self._session = ClientSession(timeout=ClientTimeout(total=None, sock_connect=timeout))

        async def connect() -> ClientWebSocketResponse[bool]:
            return await session.ws_connect(
                url, params={"token": self.endpoint.token}, headers={"Authorization": f"Bearer {self.info.secret}"},
                heartbeat=RELAY_HEARTBEAT, max_msg_size=RELAY_FRAME_MAX_BYTES)

        try:
            ws = self._ws = await asyncio.wait_for(connect(), timeout)
        except WSServerHandshakeError as exc:
            await self._session.close()
            raise unreachable(self.info, f"it refused the connection: HTTP {exc.status}") from exc
        except (ClientError, OSError, asyncio.TimeoutError) as exc:
            await self._session.close()
            raise unreachable(self.info, plain_reason(exc)) from exc
        self._reader = asyncio.create_task(self._serve(ws), name="g3w-relay-link")

    async def close(self) -> None:
        """Unregister (close the connection); idempotent, never raises."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(ClientError, OSError, RuntimeError):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._session is not None:
            await self._session.close()

    async def _serve(self, ws: ClientWebSocketResponse[bool]) -> None:
        reason = "the connection to the relay closed"
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    await ws.send_bytes(self._answer(message.data))
                elif message.type == WSMsgType.TEXT:
                    reason = _bye(message.data) or reason
                elif message.type == WSMsgType.ERROR:
                    reason = f"the connection to the relay failed: {ws.exception()}"
                    break
        except (ClientError, OSError, RuntimeError) as exc:
            reason = f"the connection to the relay failed: {plain_reason(exc)}"
        finally:
            if not self._closing and not self.lost.done():
                self.lost.set_result(reason)

    def _answer(self, frame: bytes) -> bytes:
        """The endpoint's answer to one relayed request, as a frame."""
        try:
            header, body = unpack(frame)
            headers = dict(CIMultiDict(header_pairs(header.get("headers"))))  # as the listener sees them
            method, rest = str(header["method"]), str(header["rest"])
        except (KeyError, ValueError) as exc:
            log.debug("relay: a bad frame from the relay: %s", exc)
            return pack({"id": -1, "status": 400, "headers": {}}, b"")
        try:
            reply = self.endpoint.answer(method, rest, headers, body)
        except Exception as exc:  # noqa: BLE001 - like the listener's catch-all: a 500, never a dead link
            self.endpoint.internal_error(exc)
            reply = Reply(500, b'{"error": "internal error"}')
        return pack({"id": header.get("id"), "status": reply.status, "content_type": reply.content_type,
                     "headers": dict(reply.headers)}, reply.body)


def _bye(text: str) -> str | None:
    try:
        reason = json.loads(text).get("bye")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) and reason else None

