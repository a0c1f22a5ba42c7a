"""Bytes held in memory by webhook deliveries, under a limit (``g3w listen``'s byte bound).

A delivery's bytes are charged as its body is read and stay charged until every holder of it
lets go: the receiver's queue, then the output thread, ``--exec`` and ``--forward-to`` (each
holds the delivery until its work on it is done). Over the limit the receiver answers 503 with
``Retry-After``, so a slow consumer pushes back on the senders instead of growing memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class NoRoom(Exception):
    """The byte budget has no room for the body being read (the sender should retry later)."""


class ByteBudget:
    """Bytes held by deliveries (being read, queued, not yet completely handled), under ``limit``.

    Thread-safe: a delivery may be let go from another thread (``g3w listen``'s output thread).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def fits(self, nbytes: int) -> bool:
        return self.used + nbytes <= self.limit

    def claim(self) -> Claim:
        """An empty claim with one holder (the caller)."""
        return Claim(self)


class Claim:
    """One delivery's share of a ``ByteBudget``, given back when the last of its holders lets go."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.nbytes = 0
        self._holders = 1

    def grow(self, nbytes: int) -> bool:
        """Charge ``nbytes`` more, or return False (charging nothing) when the budget is short."""
        budget = self._budget
        with budget._lock:  # noqa: SLF001 - a collaborating class of the same module
            if self._holders == 0 or budget.used + nbytes > budget.limit:
                return False
            budget.used += nbytes
            self.nbytes += nbytes
            return True

    def fits(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more would fit in the budget now."""
        return self._budget.fits(nbytes)

    def hold(self) -> Callable[[], None]:
        """One more holder; returns its ``release``."""
        with self._budget._lock:  # noqa: SLF001 - a collaborating class of the same module
            self._holders += 1
        return self.release

    def release(self) -> None:
        """One holder lets go; the last one gives the bytes back."""
        budget = self._budget
        with budget._lock:  # noqa: SLF001 - a collaborating class of the same module
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0:
                budget.used -= self.nbytes
