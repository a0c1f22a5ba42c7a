"""The retry policy, as pure functions: when to retry a request, and how long to wait first.

Like stamina: a budget of attempts *and* of time, exponential backoff with full jitter, and the
provider's own advice (``Retry-After``, Abstrakt's ``error.retry_after``) taking precedence.
A POST is retried only when the provider cannot have created anything (429, 503, a connection
that never opened), so a task is never submitted twice. ``http.HttpSession`` runs the loop.

Every pause that g3w's own back-off computes (here, the forwarder's, the batch pacer's and the
batch submits') is passed through ``backoff``, which ``set_testing`` switches (like stamina's
``set_testing``): the failure paths of the test suite then take milliseconds, not seconds.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from datetime import timezone
from typing import Callable

from get3w_cli.constants import RETRY_AFTER_MAX, RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP, RETRY_BUDGET, RETRY_MAX_ATTEMPTS

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
# Network-level failure kinds: "connect" = the request never left (safe to resend even a POST);
# "lost" = it may have reached the server.
CONNECT, LOST = "connect", "lost"

# The test switch: None in production; under ``set_testing`` the longest pause g3w's own
# back-off may take. Only in-process: no environment variable turns it on.
_testing_pause: float | None = None


def set_testing(testing: bool, *, pause: float = 0.0) -> None:
    """Tests: make every back-off pause at most ``pause`` seconds (``testing=False`` restores them).

    Only what g3w computes is shortened; a provider's ``Retry-After`` is still honoured as asked
    (tests choose it through their stand-in servers), and the attempt budgets are unchanged.
    """
    global _testing_pause
    _testing_pause = max(0.0, pause) if testing else None


def is_testing() -> bool:
    return _testing_pause is not None


def backoff(seconds: float) -> float:
    """The pause g3w takes for a back-off that computed ``seconds``: the one function every
    back-off delay passes through, so that ``set_testing`` reaches them all."""
    return seconds if _testing_pause is None else min(seconds, _testing_pause)


def retry_delay(
    method: str,
    attempt: int,
    *,
    status: int | None = None,
    failure: str | None = None,
    retry_after: float | None = None,
    remaining: float = RETRY_BUDGET,
    max_attempts: int = RETRY_MAX_ATTEMPTS,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to stop and raise.

    ``status`` is the HTTP status of an error answer, ``failure`` the network failure kind
    (CONNECT or LOST); ``retry_after`` the provider's advice; ``remaining`` the time budget left.
    """
    idempotent = method.upper() in IDEMPOTENT_METHODS
    if failure is not None:
        retryable = failure == CONNECT or idempotent
    elif status is not None:
        retryable = status in (429, 503) or (status >= 500 and idempotent)
    else:
        retryable = False
    if not retryable or attempt >= max_attempts:
        return None
    if retry_after is not None:
        wait = max(0.0, retry_after)
        if wait > RETRY_AFTER_MAX:
            return None
    else:
        ceiling = min(RETRY_BACKOFF_CAP, RETRY_BACKOFF_BASE * 2 ** min(attempt - 1, 32))
        wait = backoff(rand() * ceiling)  # full jitter: spreads out clients that failed together
    return wait if wait <= remaining else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (delta-seconds or HTTP-date) as seconds from now, or None."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
