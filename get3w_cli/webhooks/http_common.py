"""aiohttp pieces shared by the webhook servers (the ephemeral listener and ``g3w listen``).

URL hosts for display, JSON replies, reading a body under the size limit, and a private
logger that turns aiohttp's own server errors (malformed HTTP from a stranger) into one
line instead of a traceback on stderr.
"""

from __future__ import annotations

import logging
from typing import Callable

from aiohttp import web

from get3w_cli.constants import ERROR_MESSAGE_MAX_CHARS


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
    """Collapse whitespace and cut: stranger-controlled text stays one short line."""
    flat = " ".join(text.split())
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
