"""Reading the ngrok agent's log once its tunnel is open: the lines that say the tunnel dropped, the
signal that carries it to the event loop, and the filter that keeps the authtoken out of what
pyngrok logs. No pyngrok import (tunnel.py hands in pyngrok's parsed lines).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

# What an agent logs when its session to ngrok's service goes away (real agents 2.x and 3.x):
# the session closing, each failed reconnect (every second while the network is down), its end.
DROP_MESSAGES = frozenset({
    "session closing", "session closed", "failed to reconnect session", "terminating with error", "command failed",
})
_PYNGROK_LOGGERS = ("pyngrok.process.ngrok", "pyngrok.process", "pyngrok.ngrok")


class LogLine(Protocol):
    """A parsed agent log line (pyngrok's ``NgrokLog``)."""

    msg: str | None
    err: str | None


def drop_reason(line: LogLine) -> str | None:
    """What the line says about the session going away, or None when it says nothing of it."""
    message = line.msg or ""
    if message not in DROP_MESSAGES and not message.startswith("heartbeat timeout"):
        return None
    return f"{message}: {line.err}" if line.err and line.err != "nil" else message


class DropWatch:
    """Carries "the tunnel dropped" from the thread reading the agent's log to an ``asyncio.Event``."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.reason: str | None = None
        self.closing = False  # set by close(): the agent's end is then expected, not a drop

    def report(self, reason: str) -> None:
        """Called from any thread; the first report wins."""
        if self.closing or self.event.is_set():
            return
        if self.loop is None:
            self._set(reason)
            return
        try:
            self.loop.call_soon_threadsafe(self._set, reason)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    def _set(self, reason: str) -> None:
        if not self.closing and not self.event.is_set():
            self.reason = reason
            self.event.set()


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


@contextmanager
def redacting(secret: str) -> Iterator[None]:
    """Keep ``secret`` out of what pyngrok logs meanwhile (logger filters do not inherit)."""
    redact = _Redact(secret)
    loggers = [logging.getLogger(name) for name in _PYNGROK_LOGGERS]
    for each in loggers:
        each.addFilter(redact)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(redact)
