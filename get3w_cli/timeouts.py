"""``within``: await something for at most N seconds, without ever losing a cancellation.

``asyncio.wait_for`` before Python 3.12 returns the result when the awaited work finishes in
the same turn as the caller is cancelled, and the cancellation is lost: a batch worker stopped
by Ctrl-C then carried on and waited forever on its queue. Every bounded wait in g3w goes
through ``within`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


async def within(work: Awaitable[_T], seconds: float | None) -> _T:
    """The result of ``work``, or ``asyncio.TimeoutError`` after ``seconds`` (None: no limit).

    On timeout, or when the caller is cancelled, ``work`` is cancelled and waited for; the
    caller's cancellation is always raised.
    """
    if seconds is None:
        return await work
    inner = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({inner}, timeout=max(seconds, 0.0))
    except asyncio.CancelledError:
        await _stop(inner)
        raise
    if not done:
        await _stop(inner)
        if inner.cancelled() or inner.exception() is not None:
            raise asyncio.TimeoutError
    return inner.result()


async def _stop(inner: asyncio.Future[_T]) -> None:
    """Cancel ``inner`` and wait until it has finished (its own clean-up included)."""
    inner.cancel()
    try:
        await asyncio.wait({inner})
    finally:
        if inner.done() and not inner.cancelled():
            inner.exception()  # retrieved: the outcome is reported by the caller, not logged
