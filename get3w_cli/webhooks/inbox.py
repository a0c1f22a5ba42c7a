"""Routing of webhook deliveries to the waiter of their task (pure asyncio, no I/O).

Rules (CONTRACT.md section 5):
- a delivery that arrives before anyone waits for its task is held (``early_hold`` seconds,
  at most ``early_max`` of them, oldest dropped first), since a callback can beat the submit
  answer that tells us the task id;
- repeated deliveries of the same (task id, status) are one, but only deliveries that were
  verified (signature checked) or confirmed by the waiter (``settle``) count: an unverified
  delivery is never a duplicate of anything, so a forged one cannot mask a genuine one;
- once the waiter settles a terminal status, later deliveries for that task are dropped.
Every operation is O(1) (amortized); memory is bounded by the constants above.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Mapping

from get3w_cli.constants import WEBHOOK_DEDUPE_MAX, WEBHOOK_EARLY_HOLD, WEBHOOK_EARLY_MAX
from get3w_cli.records import Status, Task


@dataclass(frozen=True)
class Delivery:
    """One webhook request that passed the listener's checks."""

    received_at: float  # time.time()
    provider: str | None  # "get3w" | "abstrakt" | None (unknown)
    task: Task | None  # parsed with payloads.callback_task; None if unparseable
    verified: bool  # True only when a secret was known and the signature matched
    headers: Mapping[str, str]
    body: bytes
    payload: object  # parsed JSON


_Key = tuple[str, Status]


class _Bounded(OrderedDict):  # type: ignore[type-arg]
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class Inbox:
    """Routes deliveries to the waiter for their task id; holds early ones; de-duplicates."""

    def __init__(
        self,
        *,
        early_hold: float = WEBHOOK_EARLY_HOLD,
        early_max: int = WEBHOOK_EARLY_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._early_hold = early_hold
        self._early_max = early_max
        self._clock = clock
        # Deliveries nobody has asked for yet: seq -> (arrival, delivery), in arrival order,
        # plus each task's seqs in the same order, so expiry pops from both fronts in O(1).
        self._early: OrderedDict[int, tuple[float, Delivery]] = OrderedDict()
        self._early_ids: dict[str, deque[int]] = {}
        self._seq = itertools.count()
        self._queues: dict[str, deque[Delivery]] = {}  # tasks someone waits for
        self._wakeups: dict[str, asyncio.Future[None]] = {}
        # (id, status) -> True when confirmed by the waiter, False when only verified.
        self._seen = _Bounded(WEBHOOK_DEDUPE_MAX)
        self._settled = _Bounded(WEBHOOK_DEDUPE_MAX)  # id -> terminal Status

    def put(self, delivery: Delivery) -> bool:
        """Queue ``delivery`` for its task; return False when it was a duplicate (ignored).

        Raises:
            ValueError: the delivery has no parsed task.
        """
        task = delivery.task
        if task is None:
            raise ValueError("a delivery without a task cannot be routed")
        self._expire()
        if self._is_duplicate(task.id, task.status, delivery.verified):
            return False
        if task.id in self._queues:
            self._queues[task.id].append(delivery)
            self._wake(task.id)
        else:
            seq = next(self._seq)
            self._early[seq] = (self._clock(), delivery)
            self._early_ids.setdefault(task.id, deque()).append(seq)
            self._expire()
        return True

    def _is_duplicate(self, task_id: str, status: Status, verified: bool) -> bool:
        if task_id in self._settled:
            return True
        key: _Key = (task_id, status)
        confirmed = self._seen.get(key)
        if confirmed:
            return True
        if not verified:
            return False
        if confirmed is not None:  # an earlier verified delivery of the same status
            return True
        self._seen.remember(key, False)
        return False

    def take(self, task_id: str) -> Delivery | None:
        """The next not-yet-taken delivery for ``task_id`` if one is here already, else None.

        Starts watching ``task_id`` like ``next``; a callback often beats the submit answer.
        """
        queue = self._watch(task_id)
        return queue.popleft() if queue else None

    async def next(self, task_id: str) -> Delivery:
        """Wait for the next not-yet-taken delivery for ``task_id`` (early ones first)."""
        queue = self._watch(task_id)
        while not queue:
            wakeup = asyncio.get_running_loop().create_future()
            self._wakeups[task_id] = wakeup
            try:
                await wakeup
            finally:
                if self._wakeups.get(task_id) is wakeup:
                    del self._wakeups[task_id]
            queue = self._watch(task_id)
        return queue.popleft()

    def settle(self, task_id: str, status: Status) -> None:
        """Record that the waiter confirmed ``status``; after a terminal one, drop the rest.

        A pending ``next(task_id)`` is not woken by a terminal settle: cancel it.
        """
        self._seen.remember((task_id, status), True)
        if status.terminal:
            self._settled.remember(task_id, status)
            self._drop(task_id)

    def forget(self, task_id: str) -> None:
        """The waiter for ``task_id`` is gone: drop what was queued for it."""
        self._drop(task_id)

    def pending(self, task_id: str) -> int:
        """How many deliveries for ``task_id`` are waiting to be taken."""
        queue = self._queues.get(task_id)
        return (len(queue) if queue else 0) + len(self._early_ids.get(task_id, ()))

    def _watch(self, task_id: str) -> deque[Delivery]:
        queue = self._queues.setdefault(task_id, deque())
        for seq in self._early_ids.pop(task_id, ()):
            queue.append(self._early.pop(seq)[1])
        self._expire()
        return queue

    def _drop(self, task_id: str) -> None:
        self._queues.pop(task_id, None)
        for seq in self._early_ids.pop(task_id, ()):
            self._early.pop(seq, None)

    def _wake(self, task_id: str) -> None:
        wakeup = self._wakeups.get(task_id)
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _expire(self) -> None:
        deadline = self._clock() - self._early_hold
        while self._early:
            seq, (arrived, delivery) = next(iter(self._early.items()))
            if arrived > deadline and len(self._early) <= self._early_max:
                break
            self._early.popitem(last=False)
            task_id = delivery.task.id if delivery.task else ""
            seqs = self._early_ids[task_id]
            seqs.popleft()  # the oldest of this task is the oldest overall: same seq
            if not seqs:
                del self._early_ids[task_id]
