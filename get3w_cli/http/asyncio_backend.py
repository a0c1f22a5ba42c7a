"""httpcore on asyncio itself, instead of through anyio: its network I/O and its locks.

httpcore reaches the network through a pluggable backend, and builds its pool's locks, events and
cancel shields with anyio whenever it runs on asyncio. anyio's asyncio layer is the largest share
of what a one-request command (``g3w get``) spends starting up (~35 ms), for nothing g3w uses: g3w
runs on asyncio only. ``AsyncioBackend`` speaks httpcore's network interface on
``asyncio.open_connection`` and ``StreamWriter.start_tls`` (Python 3.11+; on 3.10 httpcore keeps
its default), raising httpcore's own exceptions, which httpx then translates as usual;
``use_asyncio_primitives`` gives httpcore's synchronisation module asyncio's own primitives.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpcore

from get3w_cli.timeouts import within

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: reads and writes with httpcore's timeouts and exceptions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await within(self._reader.read(max_bytes), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "timed out reading") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await within(self._writer.drain(), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "timed out writing") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass  # the peer is gone already: the connection is closed either way

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        start_tls = getattr(self._writer, "start_tls", None)  # Python 3.11+ (lazy_tls checks)
        if start_tls is None:  # pragma: no cover
            raise httpcore.ConnectError("TLS on asyncio streams needs Python 3.11")
        try:
            await within(start_tls(ssl_context, server_hostname=server_hostname), timeout)
        except asyncio.TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc) or "timed out during the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
                 "socket": "socket"}
        if info == "is_readable":  # httpcore asks this of an idle pooled connection before reuse
            sock = self._writer.get_extra_info("socket")
            return sock is not None and _readable(sock)
        return self._writer.get_extra_info(names[info]) if info in names else None


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: an EOF or data nobody asked for."""
    import select

    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections on asyncio streams, with httpcore's connect timeouts and exceptions."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            reader, writer = await within(asyncio.open_connection(host, port, local_addr=local), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        try:
            reader, writer = await within(asyncio.open_unix_connection(path), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or f"timed out connecting to {path}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _FailAfter:
    """anyio.fail_after on asyncio: TimeoutError when the block outlives ``delay`` (None: never)."""

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> _FailAfter:
        if self._delay is not None:
            self._task = asyncio.current_task()
            self._handle = asyncio.get_running_loop().call_later(max(0.0, self._delay), self._expire)
        return self

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if not (self._expired and exc_type is asyncio.CancelledError and self._task is not None):
            return
        if sys.version_info >= (3, 11) and self._task.uncancel() > 0:
            return  # somebody else cancelled the task too: their cancel goes on
        raise TimeoutError from exc


class _NoShield:
    """anyio.CancelScope(shield=True) on asyncio, where it has nothing to do: asyncio's cancellation
    interrupts one await, so the clean-up httpcore shields after it runs unless the task is
    cancelled again, which only a second Ctrl-C does, when the process is ending anyway."""

    def __init__(self, *, shield: bool = True) -> None:
        del shield

    def __enter__(self) -> _NoShield:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


class _AsyncioPrimitives:
    """The part of anyio httpcore's ``_synchronization`` uses, built on asyncio."""

    Lock = asyncio.Lock
    Event = asyncio.Event
    fail_after = _FailAfter
    CancelScope = _NoShield

    @staticmethod
    def Semaphore(initial_value: int, *, max_value: int) -> asyncio.BoundedSemaphore:  # noqa: N802 - anyio's name
        del max_value  # a BoundedSemaphore's bound is its initial value, as httpcore builds them
        return asyncio.BoundedSemaphore(initial_value)


def use_asyncio_primitives() -> bool:
    """Have httpcore build its locks, events and shields on asyncio instead of importing anyio's
    asyncio layer. Only on the httpcore 1.x this was written against (its ``_synchronization``
    holds anyio as a module attribute); anything else keeps httpcore's own. True when in use."""
    from httpcore import _synchronization

    if not httpcore.__version__.startswith("1.") or getattr(_synchronization, "anyio", None) is None:
        return False
    _synchronization.anyio = _AsyncioPrimitives  # type: ignore[attr-defined,assignment]  # the subset httpcore uses
    return True
