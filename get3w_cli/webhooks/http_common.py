"""aiohttp pieces shared by the webhook servers (the ephemeral listener and ``g3w listen``).

URL hosts for display, JSON replies, reading a body under the size limit (and under a byte
budget), a private logger that turns aiohttp's own server errors (malformed HTTP from a
stranger) into one line instead of a traceback on stderr, and a rate limiter for such lines, so
a flood cannot flood the terminal.

``serve_app`` starts either server with the limits strangers need (CONTRACT.md section 5):
a connection that does not send a request's headers within ``header_timeout`` (from its start,
or from the previous answer: the keep-alive idle time) is closed, so trickling connections
cannot hold every file descriptor; and running out of file descriptors on accept, which
asyncio reports through the loop's exception handler with a traceback, becomes one
rate-limited note. aiohttp has no header timeout of its own: each connection's protocol is
wrapped, a timer armed when it opens and re-armed after each answer, and a middleware tells the
wrapper when a request (whose headers are in, by then) reaches the application.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from get3w_cli.constants import (
    ERROR_MESSAGE_MAX_CHARS,
    LISTEN_NOTE_INTERVAL,
    WEBHOOK_ACCEPT_NOTE_INTERVAL,
    WEBHOOK_HEADER_TIMEOUT,
    WEBHOOK_MAX_BODY_BYTES,
    WEBHOOK_SHUTDOWN_TIMEOUT,
)
from get3w_cli.errors import plain_reason
from get3w_cli.webhooks.budget import Claim, NoRoom

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def url_host(host: str) -> str:
    """The host to put in a URL for a bound address (a wildcard becomes loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compares with the wildcard address, binds nothing
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def json_reply(status: int, *, headers: dict[str, str] | None = None, **body: object) -> web.Response:
    """A small JSON answer; never carries internals (no exception text, no traceback)."""
    return web.json_response(body, status=status, headers=headers)


async def read_body(request: web.Request, limit: int, claim: Claim | None = None) -> bytes | None:
    """Read the whole body, or return None when it is over ``limit`` (announced or not).

    With ``claim``, each chunk is charged to it as it arrives: a sender holds only the bytes it
    really sent, and one whose announced length cannot fit is turned away before any is read.

    Raises:
        NoRoom: the claim's budget has no room for the body (what was charged stays charged).
    """
    announced = request.content_length or 0
    if announced > limit:
        return None
    if claim is None:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past client_max_size
            return None
    if not claim.fits(announced):
        raise NoRoom
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        if not claim.grow(len(chunk)):
            raise NoRoom
        chunks.append(chunk)
    return b"".join(chunks)


def one_line(text: str, limit: int = ERROR_MESSAGE_MAX_CHARS) -> str:
    """Collapse whitespace, replace control characters, cut: stranger text stays one short line.

    Control characters matter: a path or task id carrying ESC could drive the user's terminal.
    """
    flat = " ".join(text.split())
    flat = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _LineHandler(logging.Handler):
    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                message = f"{message}: {plain_reason(exc)}"
            self.sink(one_line(message))
        except Exception:  # noqa: BLE001, S110 - a sink must never raise (nor print a traceback)
            pass


def line_logger(name: str, sink: Callable[[str], None]) -> logging.Logger:
    """A logger outside logging's registry whose records reach ``sink`` as one line each.

    Given to ``web.AppRunner(logger=...)``: aiohttp logs malformed requests with a traceback
    on its global ``aiohttp.server`` logger, which Python's last-resort handler would print.
    """
    logger = logging.Logger(name, logging.INFO)  # noqa: LOG001 - not getLogger(): no global state, no parent
    logger.addHandler(_LineHandler(sink))
    return logger


class NoteLimiter:
    """At most one note per kind per ``interval``; the ones held back are counted into the next."""

    def __init__(self, sink: Callable[[str], None], *, interval: float = LISTEN_NOTE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sink, self._interval, self._clock = sink, interval, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def note(self, kind: str, text: str) -> None:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        self._sink(text + (f" (+{held} more like it)" if held else ""))

    def flush(self) -> None:
        """Report what was held back (at exit)."""
        for kind, held in sorted(self._held.items()):
            self._sink(f"{held} more {kind} note(s) were not shown")
        self._held.clear()


def catch_all(on_error: Callable[[Exception], None]) -> Any:
    """An aiohttp middleware: whatever goes wrong, the sender gets a 500 line, never a traceback."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - the catch-all the contract asks for
            on_error(exc)
            return json_reply(500, error="internal error")

    return guard


class _HeaderDeadline(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, aborted when a request's headers are late.

    The deadline runs from the connection's start, and again from each answer (so it is also
    the keep-alive idle time); it is paused while a request is being handled. Like aiohttp's
    own keep-alive timer, one timer a connection, moved lazily rather than re-created.
    """

    def __init__(self, inner: asyncio.Protocol, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        self._inner, self._timeout, self._loop = inner, timeout, loop
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._handling = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # create_server makes stream transports
        self._inner.connection_made(transport)
        self.expect_headers()

    def request_started(self) -> None:
        """A request's headers are in: no deadline while it is handled."""
        self._handling = True

    def expect_headers(self) -> None:
        """The next request's headers are due within the timeout from now."""
        self._handling = False
        self._due = self._loop.time() + self._timeout
        if self._timer is None and self._transport is not None:
            self._timer = self._loop.call_at(self._due, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._handling or self._transport is None:
            return  # expect_headers() arms it again
        if self._loop.time() < self._due:
            self._timer = self._loop.call_at(self._due, self._expire)
            return
        self._transport.abort()  # abort, not close: a peer that does not read must not hold it either

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


@web.middleware
async def _pause_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's deadline that a request (its headers complete) is being handled."""
    transport = request.transport
    deadline = transport.get_protocol() if transport is not None else None
    if not isinstance(deadline, _HeaderDeadline):
        return await handler(request)
    deadline.request_started()
    try:
        return await handler(request)
    finally:
        deadline.expect_headers()


# accept() failing for want of resources: asyncio reports it to the loop's exception handler
# (whose default prints a traceback), stops accepting for a second, then tries again.
_ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _AcceptTrouble:
    """The loop's exception handler while a server runs: out-of-resource accepts become a note."""

    def __init__(self, loop: asyncio.AbstractEventLoop, warn: Callable[[str], None]) -> None:
        self._loop = loop
        self._notes = NoteLimiter(warn, interval=WEBHOOK_ACCEPT_NOTE_INTERVAL)
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS and "socket" in context:
            why = exc.strerror or str(exc)
            self._notes.note("accept-failure", f"cannot accept new connections ({why}); they wait until open ones "
                                               "close (raise the open files limit: ulimit -n)")
        elif isinstance(exc, (ValueError, OSError)) and "._start_serving(" in repr(context.get("handle")):
            pass  # that retry, come after close() closed the socket (see remove): nothing left to serve
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def remove(self) -> None:
        """The server is closed: flush the notes. The handler stays: asyncio's retry of a refused
        accept(), a second later, is not cancelled by close() and would meet the closed socket with
        a traceback (a Ctrl-C in the middle of a flood); everything else still goes on as before."""
        self._notes.flush()


class Served:
    """A running webhook server: its bound port, and ``close()``."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server, trouble: _AcceptTrouble) -> None:
        self._runner, self._server, self._trouble = runner, server, trouble
        self.port: int = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting, then close the connections (in-flight requests get a short grace)."""
        self._server.close()
        self._trouble.remove()
        await self._runner.cleanup()


async def serve_app(handler: Handler, *, host: str, port: int, on_error: Callable[[Exception], None],
                    logger: logging.Logger, warn: Callable[[str], None],
                    header_timeout: float = WEBHOOK_HEADER_TIMEOUT) -> Served:
    """Serve ``handler`` for every method and path on ``host:port``, with the limits above.

    ``on_error`` hears of a handler's bug (the sender gets a 500), ``logger`` gets aiohttp's own
    lines (malformed requests), ``warn`` the rate-limited out-of-resources notes.

    Raises:
        OSError, OverflowError, ValueError: the address cannot be bound (the caller translates).
    """
    app = web.Application(client_max_size=WEBHOOK_MAX_BODY_BYTES, middlewares=[_pause_deadline, catch_all(on_error)])
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, logger=logger, shutdown_timeout=WEBHOOK_SHUTDOWN_TIMEOUT)
    await runner.setup()
    protocols = runner.server
    assert protocols is not None  # set by setup()
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(lambda: _HeaderDeadline(protocols(), header_timeout, loop), host, port)
    except BaseException:
        await runner.cleanup()
        raise
    return Served(runner, server, _AcceptTrouble(loop, warn))
