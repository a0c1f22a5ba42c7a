"""The retry policy, as pure functions: when to retry, and how long to wait first.

``backoff`` is the one back-off computation of g3w (HTTP retries, webhook forwards, the batch's
pacer and submits, the poller's growing interval all call it). ``retry_delay`` decides whether
and when an HTTP request is tried again. Like stamina: a budget of attempts *and* of time,
exponential backoff with full jitter, and the provider's own advice (``Retry-After``,
Abstrakt's ``error.retry_after``) taking precedence. A POST is retried only when the provider
cannot have created anything (429, 503, a connection that never opened), so a task is never
submitted twice. ``http.HttpSession`` runs the loop.

``set_testing`` (like stamina's) shortens every pause a back-off after a failure computes, so
the failure paths of the test suite take milliseconds, not seconds; the poller's interval and a
provider's own advice are left as they are.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from datetime import timezone

from get3w_cli.constants import (
    RETRY_AFTER_MAX,
    RETRY_BACKOFF_BASE,
    RETRY_BACKOFF_CAP,
    RETRY_BUDGET,
    RETRY_MAX_ATTEMPTS,
)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
# Network-level failure kinds: "connect" = the request never left (safe to resend even a POST);
# "lost" = it may have reached the server.
CONNECT, LOST = "connect", "lost"
# How a back-off is spread out: FULL draws from [0, delay] (clients that failed together do not
# retry together), NARROW from [0.75 delay, delay] (a steady pace, still not in lock-step),
# NONE keeps the delay as it is (a poller's interval).
FULL, NARROW, NONE = "full", "narrow", "none"


def backoff(attempt: int, *, base: float, cap: float, factor: float = 2.0, jitter: str = FULL,
            rand: Callable[[], float] = random.random, after_failure: bool = True) -> float:
    """The pause before try ``attempt + 1`` (``attempt`` >= 1): ``base * factor ** (attempt - 1)``,
    at most ``cap``, spread by ``jitter``; under ``set_testing``, at most its pause when
    ``after_failure`` (a poller's growing interval is not a failure's back-off)."""
    delay = min(cap, base * factor ** min(max(attempt, 1) - 1, 64))
    if jitter == FULL:
        delay = rand() * delay
    elif jitter == NARROW:
        delay = delay * (0.75 + 0.25 * rand())
    return min(delay, _testing_pause) if after_failure and _testing_pause is not None else delay


# The test switch: None in production; under ``set_testing`` the longest pause g3w's own
# back-off may take. Only in-process: no environment variable turns it on.
_testing_pause: float | None = None


def set_testing(testing: bool, *, pause: float = 0.0) -> None:
    """Tests: make every back-off pause at most ``pause`` seconds (``testing=False`` restores them).

    Only what g3w computes is shortened; a provider's ``Retry-After`` is still honoured as asked
    (tests choose it through their stand-in servers), and the attempt budgets are unchanged.
    """
    global _testing_pause  # noqa: PLW0603 - the one process-wide test switch
    _testing_pause = max(0.0, pause) if testing else None


def is_testing() -> bool:
    return _testing_pause is not None


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
        wait = backoff(attempt, base=RETRY_BACKOFF_BASE, cap=RETRY_BACKOFF_CAP, rand=rand)
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
