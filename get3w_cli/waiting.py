"""The one waiting engine: a callback inbox raced against adaptive polling, with a deadline.

``run``, ``wait`` and ``batch`` all wait through ``wait_for``. The rules:

- webhook mode: wait for a trusted final callback; a signed (verified) one is trusted as is,
  an unsigned one only after one confirming GET. No callback within ``fallback_after``: poll,
  and keep listening.
- poll mode: first poll near the provider's estimated duration, then back off to ``poll_max``.
  Transient poll failures are retried until the deadline; they never end a paid wait early.
- on the deadline, or on cancellation (Ctrl-C), cancel the task only if asked to.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from get3w_cli import constants as C
from get3w_cli.errors import NetworkError, TransientError, UsageError, WaitTimeoutError
from get3w_cli.records import Task

if TYPE_CHECKING:
    from get3w_cli.providers import Adapter
    from get3w_cli.webhooks.inbox import Delivery

WEBHOOK, POLL, SYNC = "webhook", "poll", "sync"


class CallbackSource(Protocol):
    def take(self, task_id: str) -> Delivery | None: ...

    async def next(self, task_id: str) -> Delivery: ...

    def settle(self, task_id: str, status: object) -> None: ...

    def forget(self, task_id: str) -> None: ...


@dataclass(frozen=True)
class WaitPlan:
    """How to wait: ``mode`` is webhook, poll or sync (``auto`` is resolved before)."""

    mode: str = POLL
    timeout: float = C.DEFAULT_WAIT_TIMEOUT
    fallback_after: float | None = None
    poll_max: float = C.POLL_MAX_DEFAULT
    on_timeout: str = "detach"

    def fallback_for(self, task: Task) -> float:
        if self.fallback_after is not None:
            return self.fallback_after
        return max(C.FALLBACK_MIN, C.FALLBACK_FACTOR * (task.estimated_duration or 0.0))


@dataclass(frozen=True)
class Outcome:
    task: Task
    via: str | None
    elapsed: float


Notify = Callable[[str, str], None]  # (kind, text): kind is "phase" or "note"


def _ignore(kind: str, text: str) -> None:
    return None


def first_poll_delay(task: Task, plan: WaitPlan) -> float:
    """Start near the provider's estimate, within [POLL_MIN, poll_max]."""
    guess = task.estimated_duration if task.estimated_duration else C.POLL_INITIAL
    return min(max(guess, C.POLL_MIN), max(plan.poll_max, C.POLL_MIN))


class _Waiter:
    def __init__(self, adapter: Adapter, task: Task, plan: WaitPlan, inbox: CallbackSource | None, notify: Notify):
        self.adapter, self.task, self.plan, self.inbox, self.notify = adapter, task, plan, inbox, notify
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.deadline = self.start + plan.timeout
        self.interval = first_poll_delay(task, plan)
        self.polling = inbox is None
        self.next_poll = self.start + (self.interval if self.polling else plan.fallback_for(task))
        self.on_poll: Callable[[Task], None] = lambda task: None  # told each unfinished snapshot polled

    def outcome(self, task: Task, via: str) -> Outcome:
        return Outcome(task=task, via=via, elapsed=self.loop.time() - self.start)

    async def run(self) -> Outcome:
        self.notify("phase", "waiting for callback" if self.inbox else "polling")
        pending: asyncio.Future[Delivery] | None = None
        try:
            while True:
                now = self.loop.time()
                if now >= self.deadline:
                    raise await self._timed_out()
                if self.inbox is not None and pending is None:
                    here = self.inbox.take(self.task.id)  # no task and no timer when it is here
                    if here is not None:
                        final = await self._trusted(here)
                        if final is not None:
                            return self.outcome(final, WEBHOOK)
                        continue
                    pending = asyncio.ensure_future(self.inbox.next(self.task.id))
                wait = min(self.next_poll, self.deadline) - now
                if pending is not None:
                    done, _ = await asyncio.wait({pending}, timeout=max(wait, 0))
                    if done:
                        delivery, pending = pending.result(), None
                        final = await self._trusted(delivery)
                        if final is not None:
                            return self.outcome(final, WEBHOOK)
                        continue
                else:
                    await asyncio.sleep(max(wait, 0))
                if self.loop.time() >= self.next_poll:
                    final = await self._poll_once()
                    if final is not None:
                        return self.outcome(final, POLL)
        finally:
            if pending is not None:
                pending.cancel()
            if self.inbox is not None:
                self.inbox.forget(self.task.id)

    async def _trusted(self, delivery: Delivery) -> Task | None:
        """The final task a delivery proves, or None when it proves nothing yet."""
        claimed = delivery.task
        if claimed is None or not claimed.status.terminal:
            return None
        if delivery.verified:
            trusted = dataclasses.replace(
                claimed, provider=self.adapter.provider, api=self.adapter.api, model=claimed.model or self.task.model
            )
        else:
            # Anyone who can reach the URL can post; without a signature, ask the provider.
            try:
                trusted = await self._get()
            except (TransientError, NetworkError) as exc:
                # The callback hints the task is done: keep waiting by polling, not by failing.
                self._start_polling(f"could not confirm a callback ({exc.message}); polling")
                self.next_poll = min(self.next_poll, self.loop.time() + self.interval)
                return None
            if trusted is None:
                return None  # the deadline passed during the GET; the loop reports the timeout
            if not trusted.status.terminal:
                self.notify("note", f"ignored an unconfirmed callback claiming {claimed.status.value}")
                return None
        assert self.inbox is not None
        self.inbox.settle(self.task.id, trusted.status)
        return trusted

    def _start_polling(self, why: str) -> None:
        if not self.polling:
            self.polling = True
            self.notify("note", why)
            self.notify("phase", "polling")

    async def _get(self) -> Task | None:
        """One GET of the task, cut short at the deadline (None then): --timeout bounds the whole
        wait, even when the HTTP layer is sleeping out a long Retry-After."""
        remaining = max(self.deadline - self.loop.time(), 0.0)
        try:
            return await asyncio.wait_for(self.adapter.get(self.task.id), remaining)
        except asyncio.TimeoutError:
            return None

    async def _poll_once(self) -> Task | None:
        self._start_polling(f"no callback within {self.plan.fallback_for(self.task):g}s; polling")
        delay = self.interval
        try:
            task = await self._get()
        except (TransientError, NetworkError) as exc:
            self.notify("note", f"poll failed ({exc.message}); retrying")
            retry_after = getattr(exc, "retry_after", None)
            delay = max(delay, retry_after or 0.0)
        else:
            if task is not None and task.status.terminal:
                return task
            if task is not None:
                self.task = dataclasses.replace(task, estimated_duration=self.task.estimated_duration)
                self.on_poll(self.task)
        self.next_poll = self.loop.time() + delay
        self.interval = min(self.interval * C.POLL_BACKOFF_FACTOR, max(self.plan.poll_max, C.POLL_MIN))
        return None

    async def _timed_out(self) -> WaitTimeoutError:
        cancelled = False
        if self.plan.on_timeout == "cancel":
            cancelled = await cancel_quietly(self.adapter, self.task.id, self.notify)
        return WaitTimeoutError(self.task.id, cancelled=cancelled, task=self.task)


async def cancel_quietly(adapter: Adapter, task_id: str, notify: Notify = _ignore) -> bool:
    """Best-effort cancel when leaving early; report, never raise (the exit code is about the wait)."""
    if not adapter.can_cancel:
        notify("note", f"{adapter.provider} {adapter.api} cannot cancel tasks; task {task_id} keeps running")
        return False
    try:
        await asyncio.wait_for(adapter.cancel(task_id), C.CANCEL_ON_EXIT_BUDGET)
    except (asyncio.TimeoutError, UsageError, NetworkError, TransientError) as exc:
        notify("note", f"could not cancel task {task_id}: {exc}")
        return False
    except Exception as exc:  # noqa: BLE001 - any provider refusal is reported, not raised
        notify("note", f"could not cancel task {task_id}: {exc}")
        return False
    notify("note", f"cancelled task {task_id}")
    return True


async def wait_for(
    adapter: Adapter,
    task: Task,
    plan: WaitPlan,
    *,
    inbox: CallbackSource | None = None,
    notify: Notify = _ignore,
    via_if_done: str | None = None,
    on_poll: Callable[[Task], None] = lambda task: None,
) -> Outcome:
    """Wait until ``task`` is terminal; return it with the path that delivered it.

    ``task`` is the latest known snapshot (the submit answer); when it is already terminal
    (a sync answer) it is returned at once with ``via_if_done``. Cancellation (Ctrl-C)
    cancels the task at the provider only when ``plan.on_timeout == "cancel"``.

    Raises:
        WaitTimeoutError: the deadline passed first.
        AuthError, RejectedError: polling was refused for good.
    """
    if task.status.terminal:
        return Outcome(task=task, via=via_if_done, elapsed=0.0)
    waiter = _Waiter(adapter, task, plan, inbox if plan.mode == WEBHOOK else None, notify)
    waiter.on_poll = on_poll
    try:
        return await waiter.run()
    except asyncio.CancelledError:
        if plan.on_timeout == "cancel":
            await asyncio.shield(cancel_quietly(adapter, task.id, notify))
        raise
