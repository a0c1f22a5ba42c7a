"""A public URL for the local listener through a cloudflared quick tunnel (no account needed).

Used only when a ``cloudflared`` executable is found (CLOUDFLARED_PATH, else PATH): g3w never
downloads one. ``cloudflared tunnel --no-autoupdate --url http://127.0.0.1:PORT`` asks
trycloudflare.com for a quick tunnel and prints its URL on stderr in a boxed banner (each line
starting with its time, e.g. ``2022-01-20T09:56:36Z``):

    INF +--------------------------------------------------------------------------------------------+
    INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |
    INF |  https://disciplinary-tennis-breaking-under.trycloudflare.com                              |
    INF +--------------------------------------------------------------------------------------------+

then ``Registered tunnel connection connIndex=N ...`` as each connection to Cloudflare's edge
comes up (the URL answers only after that). Its log is read for the tunnel's whole life (a full
pipe would block it) and kept at debug level. Failures become ``TunnelError`` kinds:
``binary_missing``; ``rate_limited`` (the quick-tunnel service answered 429: "Error unmarshaling
QuickTunnel response: error code: 1015 ... status_code="429 Too Many Requests""); ``start_timeout``
(no URL in time); ``other`` (it exited first; its last error line is quoted). ``dropped``
resolves when, once up, cloudflared exits or loses every connection to the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
from collections import deque
from typing import Any

from get3w_cli.constants import (
    CLOUDFLARED_LOG_TAIL,
    CLOUDFLARED_STOP_GRACE,
    CLOUDFLARED_VERSION_TIMEOUT,
    TUNNEL_START_TIMEOUT,
)
from get3w_cli.errors import TunnelError

_FALLBACK = "or use --public-url URL, or --via poll"
_DOWNLOADS = "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/"
HINTS = {
    "binary_missing": f"install cloudflared ({_DOWNLOADS}) or set CLOUDFLARED_PATH to the cloudflared executable "
                      f"(g3w does not download executables); {_FALLBACK}",
    "rate_limited": "Cloudflare's quick-tunnel service is rate limiting this address (429): wait a few minutes, "
                    f"or set NGROK_AUTHTOKEN to use ngrok; {_FALLBACK}",
    "start_timeout": "cloudflared printed no tunnel URL in time: check the network (it needs api.trycloudflare.com "
                     f"and outbound port 7844); {_FALLBACK}",
    "other": f"--debug shows cloudflared's log; {_FALLBACK}",
}
agent_log = logging.getLogger("g3w.webhooks.cloudflared")

_CREATED = "Your quick Tunnel has been created"
_BOXED_URL = re.compile(r"\|\s+(https?://[^\s|]+)\s+\|")
_CONN_INDEX = re.compile(r"\bconnIndex=(\d+)")
_REGISTERED = ("Registered tunnel connection", " registered connIndex=")  # 2021.10+, and older releases
_CONN_LOST = ("Unregistered tunnel connection", "Connection terminated", "Lost connection with the edge")
_RATE_LIMITED = "429 Too Many Requests"
_ERROR = re.compile(r"\s(ERR|FTL)\s|^(failed|error)\b", re.IGNORECASE)


def find_cloudflared(path: str | None) -> str | None:
    """The cloudflared to run: ``path`` (CLOUDFLARED_PATH) if given, else ``cloudflared`` on PATH."""
    return path or shutil.which("cloudflared")


def resolve_cloudflared(path: str | None) -> str:
    """Raises: TunnelError kind "binary_missing", when there is no executable to run."""
    candidate = find_cloudflared(path)
    if not candidate or not os.path.isfile(candidate) or not os.access(candidate, os.X_OK):
        where = f"at {candidate}" if path else "(not on PATH)"
        raise TunnelError(f"cloudflared is not installed {where}", kind="binary_missing", hint=HINTS["binary_missing"])
    return candidate


def cloudflared_version(path: str) -> str:
    """What ``cloudflared --version`` says (one line), or why it said nothing."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True,  # noqa: S603 - the user's own binary
                              timeout=CLOUDFLARED_VERSION_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"does not run: {exc}"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else f"no version (exit {done.returncode})"


class LogWatch:
    """What cloudflared's log lines say: its URL, its connections, a 429, its last error."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.connections: set[str] = set()
        self.connected_once = False
        self.rate_limited = ""  # the line saying so
        self.tail: deque[str] = deque(maxlen=CLOUDFLARED_LOG_TAIL)
        self._in_banner = False

    def feed(self, line: str) -> str | None:
        """Take one line; return "url", "connected" or "lost" when it changes the tunnel's state."""
        line = line.rstrip()
        self.tail.append(line)
        if _RATE_LIMITED in line:
            self.rate_limited = " ".join(line.split())
        if self.url is None:
            if _CREATED in line:
                self._in_banner = True
            elif self._in_banner and (found := _BOXED_URL.search(line)):
                self.url = found.group(1)
                return "url"
            return None
        index = _CONN_INDEX.search(line)
        key = index.group(1) if index else "?"
        if any(mark in line for mark in _REGISTERED):
            self.connections.add(key)
            first, self.connected_once = not self.connected_once, True
            return "connected" if first else None
        if any(mark in line for mark in _CONN_LOST) and self.connections:
            self.connections.discard(key)
            return "lost" if not self.connections else None
        return None

    def last_error(self) -> str:
        """cloudflared's own words for its failure: its last error line, else its last line."""
        for line in reversed(self.tail):
            if _ERROR.search(line):
                return " ".join(line.split())
        return " ".join(self.tail[-1].split()) if self.tail else "no output"


class CloudflaredTunnel:
    """A running quick tunnel: ``public_url``, ``dropped`` (resolved with the reason), ``close()``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.public_url = ""
        self.watch = LogWatch()
        loop = asyncio.get_running_loop()
        self._url: asyncio.Future[str | None] = loop.create_future()  # None: it exited first
        self._connected: asyncio.Future[None] = loop.create_future()
        self.dropped: asyncio.Future[str] = loop.create_future()
        self._closing = False
        self._reader = asyncio.create_task(self._read(), name="g3w-cloudflared-log")

    def __repr__(self) -> str:
        return f"<CloudflaredTunnel pid={self.proc.pid}>"

    async def started(self, timeout: float) -> None:
        """Wait for the URL, then (within the same time) for a first connection to the edge.

        Raises:
            TunnelError: rate_limited, start_timeout or other.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        done, _ = await asyncio.wait({self._url}, timeout=timeout)
        if not done:
            raise TunnelError(f"cloudflared printed no quick tunnel URL within {timeout:g}s", kind="start_timeout",
                              hint=HINTS["start_timeout"])
        url = self._url.result()
        if url is None:
            raise self._failure()
        self.public_url = url
        either: set[asyncio.Future[Any]] = {self._connected, self.dropped}
        await asyncio.wait(either, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED)
        if self.dropped.done():
            raise self._failure()
        # Not connected yet: the end-to-end probe decides (it is patient with a tunnel still coming up).

    def _failure(self) -> TunnelError:
        words = self.watch.last_error()
        if self.watch.rate_limited:
            return TunnelError(f"cloudflared could not get a quick tunnel: {self.watch.rate_limited}",
                               kind="rate_limited", hint=HINTS["rate_limited"])
        code = self.proc.returncode
        return TunnelError(f"cloudflared exited (code {code}): {words}", kind="other", hint=HINTS["other"])

    async def _read(self) -> None:
        stream = self.proc.stderr
        assert stream is not None  # started with stderr=PIPE
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line beyond the reader's limit: skip it
                raw = await stream.read(2 ** 16) or b""
                continue
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip()
            agent_log.debug("%s", line)
            self._on(self.watch.feed(line))
        code = await self.proc.wait()
        _settle(self._url, None)
        _settle(self._connected, None)
        if not self._closing:
            _settle(self.dropped, f"cloudflared exited (code {code}): {self.watch.last_error()}")

    def _on(self, event: str | None) -> None:
        if event == "url":
            _settle(self._url, self.watch.url)
        elif event == "connected":
            _settle(self._connected, None)
        elif event == "lost" and not self._closing:
            _settle(self.dropped, f"cloudflared lost its connections to Cloudflare: {self.watch.last_error()}")

    async def close(self) -> None:
        """Stop cloudflared (SIGTERM, then SIGKILL after a grace) and its log reader; idempotent."""
        if self._closing:
            return
        self._closing = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), CLOUDFLARED_STOP_GRACE)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._reader, CLOUDFLARED_STOP_GRACE)


def _settle(future: asyncio.Future[Any], value: object) -> None:
    if not future.done():
        future.set_result(value)


async def open_cloudflared(port: int, *, path: str | None = None, timeout: float = TUNNEL_START_TIMEOUT
                           ) -> CloudflaredTunnel:
    """Start a quick tunnel to ``127.0.0.1:port``; close the returned tunnel on every path.

    Raises:
        TunnelError: binary_missing, rate_limited, start_timeout or other.
    """
    exe = resolve_cloudflared(path)
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, "tunnel", "--no-autoupdate", "--url", f"http://127.0.0.1:{port}",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        raise TunnelError(f"cannot run cloudflared at {exe}: {exc.strerror or exc}", kind="binary_missing",
                          hint=HINTS["binary_missing"]) from exc
    tunnel = CloudflaredTunnel(proc)
    try:
        await tunnel.started(timeout)
    except BaseException:
        await tunnel.close()
        raise
    return tunnel
