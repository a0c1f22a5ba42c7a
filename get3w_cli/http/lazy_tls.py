"""httpx's transport as g3w starts it: its TLS context built only when an https URL is asked
for, and its connections on asyncio's own streams.

Loading the CA bundle for a TLS context costs ~40 ms, a noticeable share of a short command's
start-up, and a command talking to the sandbox (or any http:// URL) never needs it; anyio, which
httpcore would load for its I/O and its locks, costs about as much again (see asyncio_backend). The
one context built is shared by every client of the process (``tls_context``).
"""

from __future__ import annotations

import functools
import ssl
import sys

import httpx


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: loading the CA bundle costs ~40 ms each."""
    return httpx.create_ssl_context()


class LazyTlsTransport(httpx.AsyncBaseTransport):
    """httpx's own pool for http URLs, and another one (with the TLS context) built on first https use."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._plain: httpx.AsyncHTTPTransport | None = None
        self._tls: httpx.AsyncHTTPTransport | None = None

    def _pool(self, scheme: str) -> httpx.AsyncHTTPTransport:
        if scheme == "https":
            if self._tls is None:
                self._tls = _asyncio_transport(tls_context(), self._limits)
            return self._tls
        if self._plain is None:
            self._plain = _asyncio_transport(httpx.create_ssl_context(verify=False), self._limits)  # no TLS on http
        return self._plain

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(request.url.scheme).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in (self._plain, self._tls):
            if pool is not None:
                await pool.aclose()


def _asyncio_transport(context: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport with its pool's connections on asyncio streams (3.11+: start_tls)."""
    transport = httpx.AsyncHTTPTransport(verify=context, limits=limits)
    if sys.version_info >= (3, 11):
        import httpcore

        from get3w_cli.http.asyncio_backend import AsyncioBackend, use_asyncio_primitives

        use_asyncio_primitives()
        # httpx takes no network backend of its own: its pool is rebuilt with the same settings.
        transport._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001 - httpx's pool, pinned httpx<1
            ssl_context=context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend())
    return transport
