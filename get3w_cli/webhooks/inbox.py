"""Routing of webhook deliveries to the waiter of their task (pure asyncio, no I/O).

Rules (CONTRACT.md section 5):
- a delivery that arrives before anyone waits for its task is held (``early_hold`` seconds,
  at most ``early_max`` of them, oldest dropped first), since a callback can beat the submit
  answer that tells us the task id;
- repeated deliveries are de-duplicated by ``delivery.Deduper`` (the one de-duplication of
  both servers): only verified deliveries and those the waiter confirmed (``settle``) count,
  so a forged unverified one never masks a genuine one;
- once the waiter settles a terminal status, later deliveries for that task are dropped;
- the listener reports every delivery it rejected for its signature (``signature_rejected``):
  waiters hear of it through ``rejection_signal()`` and check their task at once, since a
  wrong secret would otherwise leave them waiting for ``--fallback-after``;
- the channel reports losing its way in (``channel_lost``: the tunnel or the relay dropped):
  waiters hear of it through ``loss_signal()`` and poll at once, since no callback can come.
Every operation is O(1) (amortized); memory is bounded by the constants above.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from get3w_cli.constants import WEBHOOK_EARLY_HOLD, WEBHOOK_EARLY_MAX
from get3w_cli.records import Status
from get3w_cli.webhooks.delivery import NEW, Deduper, Delivery

__all__ = ["Delivery", "Inbox"]


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
        self._dedupe = Deduper()  # unverified deliveries never count: the waiter confirms them
        self.rejected_signatures = 0  # deliveries the listener answered 401
        self._rejection: asyncio.Future[None] | None = None  # shared by every waiter
        self.lost: str | None = None  # why callbacks can no longer reach us, once they cannot
        self._loss: asyncio.Future[None] | None = None  # shared by every waiter

    def put(self, delivery: Delivery) -> bool:
        """Queue ``delivery`` for its task; return False when it was a duplicate or stale (ignored).

        Raises:
            ValueError: the delivery has no parsed task.
        """
        return self.offer(delivery) == NEW

    def offer(self, delivery: Delivery) -> str:
        """Like ``put``, but return the verdict: ``NEW`` (queued), ``DUPLICATE`` or ``STALE``.

        Raises:
            ValueError: the delivery has no parsed task.
        """
        task = delivery.task
        if task is None:
            raise ValueError("a delivery without a task cannot be routed")
        self._expire()
        verdict = self._dedupe.classify(delivery)
        if verdict != NEW:
            return verdict
        if task.id in self._queues:
            self._queues[task.id].append(delivery)
            self._wake(task.id)
        else:
            seq = next(self._seq)
            self._early[seq] = (self._clock(), delivery)
            self._early_ids.setdefault(task.id, deque()).append(seq)
            self._expire()
        return NEW

    def signature_rejected(self) -> None:
        """The listener answered a delivery 401: resolve the rejection signal."""
        self.rejected_signatures += 1
        if self._rejection is not None and not self._rejection.done():
            self._rejection.set_result(None)

    def rejection_signal(self) -> asyncio.Future[None]:
        """A future done once the listener has rejected a delivery for its signature (done already
        if it has). One future shared by every waiter, so a waiter must not cancel it."""
        if self._rejection is None:
            self._rejection = asyncio.get_running_loop().create_future()
            if self.rejected_signatures:
                self._rejection.set_result(None)
        return self._rejection

    def channel_lost(self, reason: str) -> None:
        """The way in (tunnel, relay) is gone: resolve the loss signal (the first reason is kept)."""
        if self.lost is None:
            self.lost = reason
        if self._loss is not None and not self._loss.done():
            self._loss.set_result(None)

    def loss_signal(self) -> asyncio.Future[None]:
        """A future done once the channel was lost (done already if it was). One future shared by
        every waiter, so a waiter must not cancel it."""
        if self._loss is None:
            self._loss = asyncio.get_running_loop().create_future()
            if self.lost is not None:
                self._loss.set_result(None)
        return self._loss

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
        self._dedupe.confirm(task_id, status)
        if status.terminal:
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
            _seq, (arrived, delivery) = next(iter(self._early.items()))
            if arrived > deadline and len(self._early) <= self._early_max:
                break
            self._early.popitem(last=False)
            task_id = delivery.task.id if delivery.task else ""
            seqs = self._early_ids[task_id]
            seqs.popleft()  # the oldest of this task is the oldest overall: same seq
            if not seqs:
                del self._early_ids[task_id]
