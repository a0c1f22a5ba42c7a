"""An httpx transport that builds its TLS context only when an https URL is asked for.

Loading the CA bundle for a TLS context costs ~40 ms, a noticeable share of a short command's
start-up, and a command talking to the sandbox (or any http:// URL) never needs it. The one
context built is shared by every client of the process (``tls_context``).
"""

from __future__ import annotations

import functools
import ssl

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
                self._tls = httpx.AsyncHTTPTransport(verify=tls_context(), limits=self._limits)
            return self._tls
        if self._plain is None:
            self._plain = httpx.AsyncHTTPTransport(verify=False, limits=self._limits)  # no TLS on http
        return self._plain

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(request.url.scheme).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in (self._plain, self._tls):
            if pool is not None:
                await pool.aclose()
