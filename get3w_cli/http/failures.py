"""One failed HTTP attempt, in the words g3w reports it with and the terms the retry policy needs.

httpx exceptions are classified here: "connect" (the request never left, so even a POST may be
sent again) against "lost" (it may have reached the server). Messages never quote a URL's query
(signed output URLs carry tokens) nor a header value (they may hold the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from get3w_cli.constants import ERROR_MESSAGE_MAX_CHARS
from get3w_cli.errors import NetworkError, SubmitUnknownError, plain_reason
from get3w_cli.retry import CONNECT, LOST

_OUR_FAULT = (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError, httpx.TooManyRedirects)


@dataclass
class Failure:
    """One failed attempt: what to raise if we stop, and what the retry policy needs to know."""

    error: Exception
    status: int | None = None
    failure: str | None = None
    retry_after: float | None = None
    cause: BaseException | None = None


def network_failure(method: str, url: str, exc: Exception) -> Failure:
    """An API request that raised ``exc`` before its answer was read whole."""
    return _failed(method, url, failure_kind(exc), describe(exc), exc)


def deadline_failure(method: str, url: str, deadline: float, exc: BaseException) -> Failure:
    """An API request cut by its overall deadline: it was sent (the deadline is longer than the
    connect and pool waits), so the provider may have it."""
    return _failed(method, url, LOST, f"no complete answer within {deadline:g}s", exc)


def _failed(method: str, url: str, kind: str | None, reason: str, cause: BaseException) -> Failure:
    where = f"{method} {short(url)}"
    if method == "POST" and kind == LOST:
        error: Exception = SubmitUnknownError(f"no answer to {where} ({reason}); the request may have been received")
    else:
        error = NetworkError(f"{where} failed: {reason}")
    return Failure(error, failure=kind, cause=cause)


def failure_kind(exc: Exception) -> str | None:
    """CONNECT, LOST, or None when our own request is at fault (retrying cannot help)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return CONNECT
    if isinstance(exc, _OUR_FAULT):
        return None
    return LOST


def describe(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the answer"
    if isinstance(exc, httpx.LocalProtocolError):
        return "the request could not be sent"  # its text may quote header values
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection"
    return one_line(plain_reason(exc)) or "no details given"


def one_line(text: object) -> str:
    """A short single line, or "" for empty text and markup (HTML error pages)."""
    if not isinstance(text, str):
        return ""
    line = " ".join(text.split())
    if not line or line.startswith("<"):
        return ""
    if len(line) > ERROR_MESSAGE_MAX_CHARS:
        return line[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"
    return line


def host(url: str) -> str:
    return urlsplit(url).netloc or url


def short(url: str) -> str:
    """``url`` without query or fragment, which may carry signed tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
