"""The pace of a batch's submits to one provider: AIMD on the number of tasks in flight.

A slot is held from the submit until the task is finished (providers limit the tasks an
account has running). A 429 halves the allowed number of slots (once per round: the 429s of
requests that were sent before the last decrease say nothing new) and pauses new submits
for the provider's ``Retry-After``, else for an exponential backoff. Each accepted submit
grows the allowance by 1/allowance, so it climbs back to ``-j`` by one slot per round while
the provider allows it. Every wait takes the line's deadline: a storm of 429s cannot hold a
line past its ``--timeout``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from get3w_cli.constants import BATCH_THROTTLE_BACKOFF_BASE, BATCH_THROTTLE_BACKOFF_CAP, RETRY_AFTER_MAX
from get3w_cli.retry import backoff


class Pacer:
    """Slots for one provider: ``await acquire()`` before a submit, ``release()`` when done."""

    def __init__(self, ceiling: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = max(1, ceiling)
        self.allowance = float(self.ceiling)
        self.active = 0
        self.throttles = 0  # 429s answered, in total
        self._epoch = 0  # bumped by every decrease
        self._streak = 0  # 429s in a row, for the backoff without Retry-After
        self._resume_at = 0.0
        self._clock = clock
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def limit(self) -> int:
        """Slots that may be held right now."""
        return max(1, int(self.allowance))

    async def acquire(self, deadline: float | None = None) -> int | None:
        """Wait for a slot (and for any pause to end); return the round it was taken in, or None
        when ``deadline`` (on this pacer's clock) comes first: no wait outlives a line's timeout."""
        while True:
            now = self._clock()
            left = None if deadline is None else deadline - now
            if left is not None and left <= 0:
                return None
            pause = self._resume_at - now
            if pause > 0:
                await asyncio.sleep(pause if left is None else min(pause, left))
                continue
            if self.active < self.limit:
                self.active += 1
                return self._epoch
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except asyncio.TimeoutError:
                return None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def accepted(self) -> None:
        """A submit was accepted: grow back towards the ceiling."""
        self._streak = 0
        if self.allowance < self.ceiling:
            self.allowance = min(float(self.ceiling), self.allowance + 1.0 / self.allowance)
            self._wake()

    def throttled(self, epoch: int, retry_after: float | None) -> float:
        """A submit taken in round ``epoch`` got a 429; return the pause it caused (seconds).

        Call it after ``release()`` of that submit's slot.
        """
        self.throttles += 1
        self._streak += 1
        if epoch == self._epoch:
            self.allowance = max(1.0, min(self.allowance, float(self.active + 1)) / 2)
            self._epoch += 1
        if retry_after is not None:
            pause = min(max(0.0, retry_after), RETRY_AFTER_MAX)
        else:
            pause = backoff(min(BATCH_THROTTLE_BACKOFF_CAP, BATCH_THROTTLE_BACKOFF_BASE * 2 ** min(self._streak - 1, 16)))
        self._resume_at = max(self._resume_at, self._clock() + pause)
        return pause

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
