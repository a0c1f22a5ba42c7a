"""One failed HTTP attempt, in the words g3w reports it with and the terms the retry policy needs.

httpx exceptions are classified here: "connect" (the request never left, so even a POST may be
sent again) against "lost" (it may have reached the server). Messages never quote a URL's query
(signed output URLs carry tokens) nor a header value (they may hold the key).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from get3w_cli.constants import ERROR_MESSAGE_MAX_CHARS
from get3w_cli.errors import NetworkError, SubmitUnknownError, error_for_status, plain_reason
from get3w_cli.retry import CONNECT, LOST, parse_retry_after

if TYPE_CHECKING:
    from get3w_cli.names import ProviderFacts

_OUR_FAULT = (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError, httpx.TooManyRedirects)


@dataclass
class Failure:
    """One failed attempt: what to raise if we stop, and what the retry policy needs to know.

    ``reason``: a few words for the retry note ("connection refused"); by default from the status.
    """

    error: Exception
    status: int | None = None
    failure: str | None = None
    retry_after: float | None = None
    cause: BaseException | None = None
    reason: str = ""

    def brief(self) -> str:
        if self.reason:
            return self.reason
        if self.status == 429:
            return "rate limited"
        return f"HTTP {self.status}" if self.status is not None else "request failed"


@dataclass(frozen=True)
class Retrying:
    """What ``HttpSession``'s ``on_retry`` hook is told before it sleeps out a back-off."""

    method: str
    next_attempt: int  # 2 for the first retry
    max_attempts: int
    delay: float  # seconds before that attempt
    reason: str  # "rate limited", "HTTP 503", "connection refused", "timed out", ...
    rate_limited: bool = False  # a 429: the provider asked us to slow down


def network_failure(method: str, url: str, exc: Exception) -> Failure:
    """An API request that raised ``exc`` before its answer was read whole."""
    failed = _failed(method, url, failure_kind(exc), describe(exc), exc)
    failed.reason = brief(exc)
    return failed


def deadline_failure(method: str, url: str, deadline: float, exc: BaseException) -> Failure:
    """An API request cut by its overall deadline: it was sent (the deadline is longer than the
    connect and pool waits), so the provider may have it."""
    failed = _failed(method, url, LOST, f"no complete answer within {deadline:g}s", exc)
    failed.reason = "no answer in time"
    return failed


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


def brief(exc: Exception) -> str:
    """A few words on a network failure, for a retry note ("connection refused, retry 2 of 5")."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if _refused(exc) else "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return "connection lost"


def _refused(exc: BaseException) -> bool:
    """Whether a connect error was a refusal (the OS's error sits in the exception's chain)."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain is short; never follow a cycle
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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


def answer_failure(response: httpx.Response, url: str,
                   errors: Callable[[int, object, str], tuple[str | None, str, float | None]], *,
                   about: ProviderFacts | None = None) -> Failure:
    """The Failure for an error answer whose body has been read: the provider's code and message
    (``about``: the provider that answered, named in the hints)."""
    body = json_or_none(response.content)
    code, message, body_retry = errors(response.status_code, body, response.text)
    if body_retry is not None:
        retry_after: float | None = body_retry
    else:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    if not one_line(message) and body is None:
        message = one_line(response.text)  # a short plain-text answer; HTML pages give ""
    message = one_line(message) or response.reason_phrase or "error"
    error = error_for_status(
        response.status_code, f"HTTP {response.status_code} from {host(url)}: {message}",
        code=code, retry_after=retry_after, details=body, about=about,
    )
    return Failure(error, status=response.status_code, retry_after=retry_after)


def json_or_none(content: bytes) -> object:
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None
