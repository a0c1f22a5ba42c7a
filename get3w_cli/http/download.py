"""One attempt at streaming an output file to disk, bounded in time and in size.

``HttpSession.download`` runs these attempts under its retry loop. An attempt is cut when the
output host stops making progress: fewer than DOWNLOAD_STALL_MIN_BYTES in a stall window (the
answer's headers count as progress in the window they arrive). Each read's timeout alone lets a
host that trickles a byte at a time hold a command forever.

We ask for ``Accept-Encoding: identity``. A host that compresses anyway is decoded here, in
steps of at most DOWNLOAD_CHUNK_BYTES (httpx's decoders would inflate a whole network read at
once), and never past DOWNLOAD_MAX_EXPANSION times the bytes received (after a floor) nor past
DOWNLOAD_MAX_DECODED_BYTES: 300 KiB of gzip must not become 300 MiB on disk.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from get3w_cli.constants import (
    DOWNLOAD_CHUNK_BYTES,
    DOWNLOAD_EXPANSION_FLOOR,
    DOWNLOAD_MAX_DECODED_BYTES,
    DOWNLOAD_MAX_EXPANSION,
    DOWNLOAD_READ_TIMEOUT,
    DOWNLOAD_STALL_MIN_BYTES,
    HTTP_CONNECT_TIMEOUT,
)
from get3w_cli.errors import DownloadError
from get3w_cli.http.failures import Failure, brief, describe, failure_kind, short
from get3w_cli.retry import LOST, parse_retry_after

Progress = Callable[[int, "int | None"], None]
_T = TypeVar("_T")
_MIB = 1024 * 1024
# The bytes as stored: outputs are images and video, which do not compress anyway.
_HEADERS = {"Accept-Encoding": "identity"}


class Stalled(Exception):
    """The watchdog cut an attempt that made too little progress in a window."""


@dataclass
class Meter:
    """What an attempt has received so far; the watchdog reads it at the end of each window."""

    received: int = 0  # body bytes as they came off the wire, before any decoding
    answered: bool = False  # the answer's headers are in


async def download_once(
    client: httpx.AsyncClient, url: str, dest: Path, *, on_progress: Progress | None, stall_window: float,
) -> str | Failure:
    """Stream ``url`` into ``dest``; its Content-Type, or the Failure for the retry policy.

    Raises DownloadError for what retrying cannot mend (a body that expands too far, an
    encoding we cannot decode, a file we cannot write).
    """
    meter = Meter()
    try:
        return await watched(_fetch(client, url, dest, meter, on_progress), meter, window=stall_window)
    except Stalled as exc:
        slow = f"less than {DOWNLOAD_STALL_MIN_BYTES // 1024} KiB in {stall_window:g}s"
        stalled = DownloadError(f"download of {short(url)} stalled ({slow})", urls=(url,))
        return Failure(stalled, failure=LOST, cause=exc, reason="download stalled")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = DownloadError(f"download of {short(url)} failed: {describe(exc)}", urls=(url,))
        return Failure(error, failure=failure_kind(exc), cause=exc, reason=brief(exc))
    except OSError as exc:
        raise DownloadError(f"cannot write {dest}: {exc.strerror or exc}", urls=(url,)) from exc


async def watched(work: Coroutine[Any, Any, _T], meter: Meter, *, window: float,
                  min_bytes: int = DOWNLOAD_STALL_MIN_BYTES) -> _T:
    """``work``'s result, or Stalled once a window passes in which ``meter`` moved too little."""
    task = asyncio.ensure_future(work)
    try:
        answered, received = False, 0
        while True:
            done, _ = await asyncio.wait((task,), timeout=window)
            if done:
                return task.result()
            if meter.received - received < min_bytes and meter.answered == answered:
                raise Stalled
            answered, received = meter.answered, meter.received
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))
        if not task.cancelled():
            task.exception()  # retrieved: it is raised above or superseded by Stalled


async def _fetch(
    client: httpx.AsyncClient, url: str, dest: Path, meter: Meter, on_progress: Progress | None
) -> str | Failure:
    timeout = httpx.Timeout(DOWNLOAD_READ_TIMEOUT, connect=HTTP_CONNECT_TIMEOUT)
    async with client.stream("GET", url, headers=_HEADERS, follow_redirects=True, timeout=timeout) as response:
        meter.answered = True
        status = response.status_code
        if not 200 <= status < 300:
            what = f"HTTP {status} {response.reason_phrase}"
            error = DownloadError(f"download of {short(url)} failed: {what}", urls=(url,), status=status)
            return Failure(error, status=status, retry_after=parse_retry_after(response.headers.get("retry-after")))
        decoder = BodyDecoder(url, response.headers.get("content-encoding", ""))
        total = _content_length(response.headers.get("content-length")) if decoder.identity else None
        written = 0
        with dest.open("wb") as out:
            async for raw in response.aiter_raw():
                meter.received += len(raw)
                for piece in decoder.decode(raw):
                    written = _write(out, piece, written, meter.received, decoder, url)
                    if on_progress is not None:
                        on_progress(written, total)
        if not decoder.complete:
            error = DownloadError(f"download of {short(url)} failed: the compressed body was cut short", urls=(url,))
            return Failure(error, failure=LOST)
        return str(response.headers.get("content-type", ""))


def _write(out: IO[bytes], piece: bytes, written: int, received: int, decoder: BodyDecoder, url: str) -> int:
    """Write one decoded piece unless it takes the output past its bounds; the new size."""
    if not decoder.identity and (trouble := expansion_error(written + len(piece), received)):
        raise DownloadError(f"download of {short(url)} refused: {trouble}", urls=(url,),
                            hint="the output host compressed the file although asked not to; fetch the URL yourself")
    out.write(piece)
    return written + len(piece)


def expansion_error(
    decoded: int, received: int, *, expansion: int = DOWNLOAD_MAX_EXPANSION, floor: int = DOWNLOAD_EXPANSION_FLOOR,
    cap: int = DOWNLOAD_MAX_DECODED_BYTES,
) -> str | None:
    """Why a compressed body that decoded to ``decoded`` bytes from ``received`` must stop, or None."""
    if decoded > cap:
        return f"it decodes to more than {cap // _MIB} MiB"
    if decoded > max(floor, expansion * received):
        return f"{received} compressed bytes decode to more than {decoded} (over {expansion}x)"
    return None


class BodyDecoder:
    """A Content-Encoding (gzip or deflate, else none) undone in bounded steps."""

    def __init__(self, url: str, content_encoding: str) -> None:
        named = (part.strip().lower() for part in content_encoding.split(","))
        codings = [c for c in named if c not in ("", "identity")]
        self._url = url
        self._zlib: Any = None
        if codings in (["gzip"], ["x-gzip"], ["deflate"]):
            # 32 + MAX_WBITS: a gzip or a zlib header, recognised (servers mix up the two names).
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        elif codings:
            raise DownloadError(f"download of {short(url)} failed: the host sent Content-Encoding "
                                f"{content_encoding.strip()!r}, which g3w cannot decode", urls=(url,))

    @property
    def identity(self) -> bool:
        return self._zlib is None

    @property
    def complete(self) -> bool:
        """The compressed stream reached its end (an identity body: always, httpx checks its length)."""
        return self._zlib is None or bool(self._zlib.eof)

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            yield data
            return
        while True:
            try:
                piece = self._zlib.decompress(data, DOWNLOAD_CHUNK_BYTES)
            except zlib.error as exc:
                raise DownloadError(f"download of {short(self._url)} failed: its compressed body is corrupt",
                                    urls=(self._url,)) from exc
            data = self._zlib.unconsumed_tail  # kept back when the piece is full; more may be pending
            if not piece:
                return
            yield piece


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
