"""The HTTP layer: one httpx client per command, the retry policy, and error translation.

The only package that imports httpx (``aio`` holds its aiohttp-backed transport). Provider
adapters talk to their API through ``ApiClient`` (which adds the Bearer key to its own base URL,
and nowhere else); output files are fetched with ``HttpSession.download`` (``download``: one
attempt), which never sends a key. Every httpx exception is translated into the
``get3w_cli.errors`` tree in this package (``failures`` words them).

Every request ends: an API request within its overall deadline (its answer read whole), a
download when it stops making progress. Each read's timeout alone cannot end an answer that
trickles in a byte at a time.

Retries: ``retry_delay`` is the whole policy (pure); ``HttpSession._retry`` is the one loop. A POST
is retried only when the provider cannot have created anything (429, 503, a connection that never
opened), so a task is never submitted twice. Before each back-off the loop tells its ``on_retry``
hook (a ``Retrying``: why, which attempt comes next, after how long), so the CLI can say so.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from get3w_cli import __version__
from get3w_cli.constants import (
    DOWNLOAD_STALL_WINDOW,
    HTTP_CONNECT_TIMEOUT,
    HTTP_PARSED_URLS,
    HTTP_POOL_LIMIT,
    HTTP_READ_TIMEOUT,
    HTTP_REQUEST_DEADLINE,
    HTTP_SYNC_REQUEST_DEADLINE,
    HTTP_UPLOAD_MIN_BYTES_PER_S,
    RETRY_BUDGET,
    RETRY_MAX_ATTEMPTS,
    STREAM_IDLE_TIMEOUT,
)
from get3w_cli.errors import ConfigError, DownloadError, error_for_status
from get3w_cli.http.failures import Failure as _Failure
from get3w_cli.http.failures import (
    Retrying,
    answer_failure,
    deadline_failure,
    json_or_none,
    network_failure,
)
from get3w_cli.http.lazy_tls import LazyTlsTransport, tls_context
from get3w_cli.names import FACTS, ProviderFacts, provider_named
from get3w_cli.retry import CONNECT, LOST, parse_retry_after, retry_delay
from get3w_cli.timeouts import within

if TYPE_CHECKING:
    from get3w_cli.http.stream import EventStream

__all__ = ["AIOHTTP", "BACKENDS", "CONNECT", "HTTPCORE", "LOST", "PROXIED", "ApiClient", "ErrorParser", "EventStream",
           "HttpSession", "Reply", "Retrying", "error_for_status", "parse_retry_after", "retry_delay"]

ErrorParser = Callable[[int, object, str], tuple[str | None, str, float | None]]
"""(http_status, parsed_json_or_None, text) -> (provider code or None, message or "", retry_after)."""

USER_AGENT = f"g3w/{__version__}"
# Where requests go over the wire: httpx's own pool (PROXIED: the one that honours ``*_PROXY``),
# the same pool with its TLS context built on the first https request (HTTPCORE: 40 ms less
# start-up for http:// commands), or aiohttp's (``aio``: less CPU a request, for a batch's
# thousands of submits). The CLI picks PROXIED whenever a proxy is configured.
PROXIED, HTTPCORE, AIOHTTP = "proxied", "httpcore", "aiohttp"
BACKENDS = (PROXIED, HTTPCORE, AIOHTTP)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Reply:
    """A 2xx answer. ``body`` is the parsed JSON or None; ``headers`` keys are lower-case."""

    status: int
    body: object
    headers: Mapping[str, str]


class HttpSession:
    """One httpx.AsyncClient per command; use as ``async with HttpSession() as http``.

    ``request_deadline`` ends every API request, ``sync_deadline`` a request given its own longer
    read timeout (the sync-mode submit); ``stall_window`` is how long a download may go without
    receiving DOWNLOAD_STALL_MIN_BYTES; ``on_retry`` is told about each retry before its back-off.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_budget: float = RETRY_BUDGET,
        max_attempts: int = RETRY_MAX_ATTEMPTS,
        max_connections: int = HTTP_POOL_LIMIT,
        backend: str = HTTPCORE,
        request_deadline: float = HTTP_REQUEST_DEADLINE,
        sync_deadline: float = HTTP_SYNC_REQUEST_DEADLINE,
        stall_window: float = DOWNLOAD_STALL_WINDOW,
        on_retry: Callable[[Retrying], None] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown HTTP backend {backend!r}")
        self._sleep = sleep
        self._backend = backend
        self._max_connections = max_connections
        self._transport = transport
        self._budget = retry_budget
        self._max_attempts = max_attempts
        self._request_deadline = request_deadline
        self._sync_deadline = sync_deadline
        self._stall_window = stall_window
        self._on_retry = on_retry
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> HttpSession:
        limits = httpx.Limits(max_connections=self._max_connections)
        transport = self._transport
        if transport is None and self._backend == AIOHTTP:
            from get3w_cli.http.aio import AiohttpTransport  # aiohttp only for the commands that ask

            transport = AiohttpTransport(max_connections=self._max_connections, ssl_context=tls_context)
        self._client = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(HTTP_READ_TIMEOUT, connect=HTTP_CONNECT_TIMEOUT),
            limits=limits,
            follow_redirects=False,
            transport=transport if transport or self._backend == PROXIED else LazyTlsTransport(limits=limits),
            verify=tls_context() if self._backend == PROXIED else True,  # a transport brings its own
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("HttpSession used outside `async with`")
        return self._client

    def api(
        self, base_url: str, api_key: str | None, *, errors: ErrorParser, max_attempts: int | None = None,
        provider: str | None = None, post_headers: Mapping[str, str] | None = None,
    ) -> ApiClient:
        """A client for one provider API; the key is sent only to ``base_url``.

        ``max_attempts`` overrides the session's for this client's requests (a batch's submits
        make one, so that 429s reach its pacer); ``provider`` is named in its errors' hints;
        ``post_headers`` go with its POSTs (a submit's ``Idempotency-Key``).
        """
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"invalid base URL {base_url!r}", hint="use e.g. https://api.get3w.com")
        if api_key is not None and not (api_key.isascii() and api_key.isprintable() and " " not in api_key):
            raise ConfigError("the API key contains spaces or invalid characters")
        known = provider_named(provider) if provider else None
        return ApiClient(base_url.strip().rstrip("/"), self, api_key or None, errors, max_attempts,
                         FACTS[known] if known else None, dict(post_headers or {}))

    async def download(
        self, url: str, dest: Path, *, on_progress: Callable[[int, int | None], None] | None = None
    ) -> str:
        """Stream ``url`` into ``dest`` (no key, redirects followed); return its Content-Type.

        Raises DownloadError; a partly written ``dest`` is removed first. An attempt that stalls
        is retried like a dropped connection.
        """
        if urlsplit(url).scheme not in ("http", "https"):
            raise DownloadError(f"cannot download {url!r}: not an http(s) URL", urls=(url,))
        from get3w_cli.http.download import download_once  # only the commands that download

        window = self._stall_window
        try:
            return await self._retry(
                "GET", lambda: download_once(self._http, url, dest, on_progress=on_progress, stall_window=window)
            )
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    async def _retry(
        self, method: str, once: Callable[[], Awaitable[_T | _Failure]], *, max_attempts: int | None = None
    ) -> _T:
        """Run ``once`` until it succeeds or ``retry_delay`` says stop (attempts and time budget)."""
        started, slept, attempt = time.monotonic(), 0.0, 0
        while True:
            attempt += 1
            outcome = await once()
            if not isinstance(outcome, _Failure):
                return outcome
            # An injected sleep may not pass real time; count what we asked to sleep as spent.
            spent = max(time.monotonic() - started, slept)
            delay = retry_delay(
                method, attempt, status=outcome.status, failure=outcome.failure,
                retry_after=outcome.retry_after, remaining=self._budget - spent,
                max_attempts=max_attempts or self._max_attempts,
            )
            if delay is None:
                raise outcome.error from outcome.cause
            if self._on_retry is not None:
                self._on_retry(Retrying(method, attempt + 1, max_attempts or self._max_attempts, delay,
                                        outcome.brief(), rate_limited=outcome.status == 429))
            await self._sleep(delay)
            slept += delay

    def _deadline(self, *, sync: bool, sending: int) -> float:
        """The overall deadline of one API request that sends ``sending`` bytes of files."""
        return (self._sync_deadline if sync else self._request_deadline) + sending / HTTP_UPLOAD_MIN_BYTES_PER_S

    async def _request_once(
        self, method: str, url: str, errors: ErrorParser, headers: dict[str, str], options: dict[str, Any],
        deadline: float, about: ProviderFacts | None = None,
    ) -> Reply | _Failure:
        try:
            response = await _within(deadline, self._http.request(method, _parsed_url(url), headers=headers, **options))
        except asyncio.TimeoutError as exc:
            return deadline_failure(method, url, deadline, exc)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return network_failure(method, url, exc)
        body = json_or_none(response.content)
        if 200 <= response.status_code < 300:
            return Reply(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})
        return answer_failure(response, url, errors, about=about)


@dataclass(eq=False)
class ApiClient:
    """Requests to one provider API: ``base_url + path``, with ``Authorization: Bearer <key>``."""

    base_url: str
    _session: HttpSession = field(repr=False)
    _api_key: str | None = field(repr=False)
    _errors: ErrorParser = field(repr=False)
    _max_attempts: int | None = field(default=None, repr=False)
    _about: ProviderFacts | None = field(default=None, repr=False)
    _post_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    async def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Reply:
        return await self._send("GET", path, _query(params), self._session._deadline(sync=False, sending=0))  # noqa: SLF001 - a collaborating class of the same module

    async def delete(self, path: str) -> Reply:
        return await self._send("DELETE", path, {}, self._session._deadline(sync=False, sending=0))  # noqa: SLF001 - a collaborating class of the same module

    async def post(
        self,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        read_timeout: float | None = None,
    ) -> Reply:
        """POST; ``read_timeout`` is for a request the provider may hold (the sync-mode submit),
        which also gets the session's longer deadline. Uploaded files lengthen the deadline."""
        options = _query(params)
        if files is not None:
            options["files"] = dict(files)
        elif json is not None:
            options["json"] = json
        if read_timeout is not None:
            options["timeout"] = httpx.Timeout(read_timeout, connect=HTTP_CONNECT_TIMEOUT)
        sending = sum(len(content) for _, content, _ in files.values()) if files else 0
        return await self._send("POST", path, options,
                                self._session._deadline(sync=read_timeout is not None, sending=sending))  # noqa: SLF001 - a collaborating class of the same module

    @asynccontextmanager
    async def post_events(self, path: str, *, json: object, idle: float = STREAM_IDLE_TIMEOUT
                          ) -> AsyncIterator[EventStream]:
        """POST asking for Server-Sent Events (see http/stream.py); retried like any POST.

        Raises on opening like ``post``; the stream's ``events()`` raise NetworkError when it breaks.
        """
        from get3w_cli.http.stream import open_stream  # only --via stream

        url = self.base_url + (path if path.startswith("/") else "/" + path)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        session = self._session
        deadline = session._deadline(sync=False, sending=0)  # noqa: SLF001 - a collaborating class of the same module
        stream = await session._retry(  # noqa: SLF001 - a collaborating class of the same module
            "POST", lambda: open_stream(session._http, url, headers=headers, json=json, errors=self._errors,  # noqa: SLF001 - a collaborating class of the same module
                                        deadline=deadline, idle=idle),
            max_attempts=self._max_attempts,
        )
        try:
            yield stream
        finally:
            await stream.aclose()

    async def _send(self, method: str, path: str, options: dict[str, Any], deadline: float) -> Reply:
        # Paths are appended raw: Abstrakt model ids keep their slashes; adapters quote the rest.
        url = self.base_url + (path if path.startswith("/") else "/" + path)
        headers = {"Accept": "application/json", **(self._post_headers if method == "POST" else {})}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        session = self._session
        return await session._retry(  # noqa: SLF001 - a collaborating class of the same module
            method, lambda: session._request_once(method, url, self._errors, headers, options, deadline,  # noqa: SLF001 - a collaborating class of the same module
                                                  self._about),
            max_attempts=self._max_attempts,
        )


async def _within(seconds: float, work: Awaitable[_T]) -> _T:
    """``work``'s result, or asyncio.TimeoutError once ``seconds`` have passed (``work`` cancelled)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):  # no task of its own: a batch makes thousands of requests
            return await work
    return await within(work, seconds)  # not wait_for: before 3.12 it can lose a cancellation


@functools.lru_cache(maxsize=HTTP_PARSED_URLS)
def _parsed_url(url: str) -> httpx.URL:
    # A batch posts thousands of times to a handful of URLs; httpx would parse each one every time.
    return httpx.URL(url)


def _query(params: Mapping[str, str] | None) -> dict[str, Any]:
    # No `params` at all when empty: httpx would otherwise parse the URL once more per request.
    return {"params": dict(params)} if params else {}
