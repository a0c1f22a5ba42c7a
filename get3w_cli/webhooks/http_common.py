"""aiohttp pieces shared by the webhook servers (the ephemeral listener and ``g3w listen``).

URL hosts for display, JSON replies, reading a body under the size limit, a private logger
that turns aiohttp's own server errors (malformed HTTP from a stranger) into one line instead
of a traceback on stderr, and a rate limiter for such lines, so a flood cannot flood the
terminal.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from get3w_cli.constants import ERROR_MESSAGE_MAX_CHARS, LISTEN_NOTE_INTERVAL


def url_host(host: str) -> str:
    """The host to put in a URL for a bound address (a wildcard becomes loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def json_reply(status: int, *, headers: dict[str, str] | None = None, **body: object) -> web.Response:
    """A small JSON answer; never carries internals (no exception text, no traceback)."""
    return web.json_response(body, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """Read the whole body, or return None when it is over ``limit`` (announced or not)."""
    if (request.content_length or 0) > limit:
        return None
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past client_max_size
        return None


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
                message = f"{message}: {type(exc).__name__}: {exc}"
            self.sink(one_line(message))
        except Exception:  # noqa: BLE001, S110 - a sink must never raise (nor print a traceback)
            pass


def line_logger(name: str, sink: Callable[[str], None]) -> logging.Logger:
    """A logger outside logging's registry whose records reach ``sink`` as one line each.

    Given to ``web.AppRunner(logger=...)``: aiohttp logs malformed requests with a traceback
    on its global ``aiohttp.server`` logger, which Python's last-resort handler would print.
    """
    logger = logging.Logger(name, logging.INFO)  # not getLogger(): no global state, no parent
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
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - the catch-all the contract asks for
            on_error(exc)
            return json_reply(500, error="internal error")

    return guard
