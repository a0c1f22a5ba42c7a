"""An httpx transport on aiohttp's connection pool, for the many short API calls of a batch.

httpx's own pool (httpcore on anyio) costs about 0.6 ms of CPU a request, the largest share of
a batch's work per task; a batch already has aiohttp loaded for its listener. This transport
keeps the httpx client (its URLs, headers, redirects and exceptions stay the ones the rest of
``http`` knows) and hands only the wire to aiohttp.

Every aiohttp exception becomes the httpx exception of the same meaning, here and nowhere else.
The line that matters is "the connection never opened" (``httpx.ConnectError`` or
``ConnectTimeout``: a POST may be sent again) against everything after it (the request may
have reached the provider, so a POST is never sent again). aiohttp itself sends an idempotent
request (GET, DELETE) once more at once when its connection drops; never a POST.

aiohttp ignores ``*_PROXY`` here (``trust_env`` off: it would also read ``~/.netrc``), so the CLI
chooses this transport only when no proxy is configured.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
import yarl

from get3w_cli.errors import plain_reason


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(...))``; one aiohttp session, opened lazily."""

    def __init__(self, *, max_connections: int, ssl_context: Callable[[], ssl.SSLContext]) -> None:
        self._max_connections = max_connections
        self._ssl_context = ssl_context  # called for https only: building it costs ~30 ms
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on the first request, inside the running loop, as aiohttp requires.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() != b"transfer-encoding"]  # the body is sent whole, with its length
        body = await request.aread()
        try:
            response = await self._client().request(
                # encoded=True: the request line is exactly what httpx built, not requoted by yarl
                request.method, yarl.URL(str(request.url), encoded=True), headers=headers, data=body or None,
                allow_redirects=False, timeout=_timeout(request),
                ssl=self._ssl_context() if request.url.scheme == "https" else True,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _translate(exc, request) from exc
        return httpx.Response(
            response.status, headers=list(response.raw_headers), stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode("latin-1")},
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp as httpx asks for it (downloads stream, API calls read whole)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _translate(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()  # back to the pool when read to the end, closed otherwise


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    limits = request.extensions.get("timeout", {})
    connect, pool, read = limits.get("connect"), limits.get("pool"), limits.get("read")
    # aiohttp's `connect` covers the wait for a pooled connection and the connecting itself.
    waiting = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=read)


def _translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    text = plain_reason(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # includes DNS, refused, TLS handshake
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(text, request=request)
    return httpx.ReadError(text, request=request)  # after connecting: the request may have arrived
