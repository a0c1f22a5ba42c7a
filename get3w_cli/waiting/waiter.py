"""The waiter of one task: a callback inbox raced against adaptive polling, with a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from get3w_cli import constants as C
from get3w_cli.errors import NetworkError, TransientError, WaitTimeoutError
from get3w_cli.names import OnTimeout, Via
from get3w_cli.records import Status, Task, unknown_status_note
from get3w_cli.retry import NONE, backoff
from get3w_cli.timeouts import within
from get3w_cli.waiting.cancel import cancel_within_budget
from get3w_cli.waiting.plan import CallbackSource, Notify, Outcome, WaitPlan, first_poll_delay

if TYPE_CHECKING:
    from get3w_cli.providers import Adapter
    from get3w_cli.webhooks.inbox import Delivery


class Waiter:
    def __init__(self, adapter: Adapter, task: Task, plan: WaitPlan, inbox: CallbackSource | None, notify: Notify):
        self.adapter, self.task, self.plan, self.inbox, self.notify = adapter, task, plan, inbox, notify
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.deadline = self.start + plan.timeout
        self.first_interval = self.interval = first_poll_delay(task, plan)
        self.gets = 0  # GETs made: the poll interval backs off with them
        self.polling = inbox is None
        # The next poll; until polling starts, the moment the fallback starts it.
        self.next_poll = self.start + (self.interval if self.polling else plan.fallback_for(task))
        self.confirm_at: float | None = None  # a hint that came too soon after a GET is confirmed then
        self.last_get: float | None = None
        self.said: set[str] = set()  # what was said once for this task
        self.on_poll: Callable[[Task], None] = lambda task: None  # told each unfinished snapshot

    def outcome(self, task: Task, via: str) -> Outcome:
        return Outcome(task=task, via=via, elapsed=self.loop.time() - self.start)

    async def run(self) -> Outcome:
        self.notify("phase", "waiting for callback" if self.inbox else "polling")
        self._observe(self.task)
        pending: asyncio.Future[Delivery] | None = None
        try:
            while True:
                now = self.loop.time()
                if now >= self.deadline:
                    return await self._deadline_passed()
                if self.inbox is not None and pending is None:
                    here = self.inbox.take(self.task.id)  # no task and no timer when it is here
                    if here is not None:
                        if (final := await self._on_delivery(here)) is not None:
                            return final
                        continue
                    pending = asyncio.ensure_future(self.inbox.next(self.task.id))
                alarms = self._alarms()
                done = await self._until(min(self._due(), self.deadline) - now, pending, *alarms.values())
                self._hear(alarms, done)
                if pending is not None and pending in done:
                    delivery, pending = pending.result(), None
                    if (final := await self._on_delivery(delivery)) is not None:
                        return final
                elif self.loop.time() >= self._due() and (final := await self._due_get()) is not None:
                    return final
        finally:
            if pending is not None:
                pending.cancel()
            if self.inbox is not None:
                self.inbox.forget(self.task.id)

    @staticmethod
    async def _until(wait: float, *futures: asyncio.Future[Any] | None) -> set[asyncio.Future[Any]]:
        """Sleep ``wait`` seconds, or less when one of ``futures`` is done first; return the done ones."""
        waiting = {f for f in futures if f is not None}
        if not waiting:
            await asyncio.sleep(max(wait, 0))
            return set()
        done: set[asyncio.Future[Any]]
        done, _ = await asyncio.wait(waiting, timeout=max(wait, 0), return_when=asyncio.FIRST_COMPLETED)
        return done

    def _alarms(self) -> dict[str, asyncio.Future[None]]:
        """The inbox's signals not heard yet: a signature rejected, the channel lost. Each is one
        future shared by every waiter: never cancelled here."""
        if self.inbox is None:
            return {}
        alarms = {}
        if "secret" not in self.said:
            alarms["secret"] = self.inbox.rejection_signal()
        if "lost" not in self.said:
            alarms["lost"] = self.inbox.loss_signal()
        return alarms

    def _hear(self, alarms: dict[str, asyncio.Future[None]], done: set[asyncio.Future[Any]]) -> None:
        if alarms.get("secret") in done:
            self._secret_rejected()
        if alarms.get("lost") in done:
            self._channel_lost()

    def _due(self) -> float:
        """When the next GET is due: the next poll (or fallback), or a hint's confirmation."""
        return self.next_poll if self.confirm_at is None else min(self.next_poll, self.confirm_at)

    async def _on_delivery(self, delivery: Delivery) -> Outcome | None:
        """The outcome a delivery proves (at once, or after a confirming GET), or None."""
        claimed = delivery.task
        if claimed is None:
            return None
        if delivery.trusted_for(self.adapter.provider):
            self._observe(claimed)
            if not claimed.status.terminal:
                return None
            trusted = dataclasses.replace(claimed, provider=self.adapter.provider, api=self.adapter.api,
                                          model=claimed.model or self.task.model)
            self._settle(trusted.status)
            return self.outcome(trusted, Via.WEBHOOK)
        if not claimed.status.terminal:
            return None
        # A hint: anyone who can reach the URL can post one. Ask the provider, but at most
        # once an interval, so that a flood of forged hints costs no more than polling would.
        now = self.loop.time()
        if self.last_get is not None and now < self.last_get + self.interval:
            due = self.last_get + self.interval
            self.confirm_at = due if self.confirm_at is None else min(self.confirm_at, due)
            return None
        return await self._fetch(hint=True)

    async def _due_get(self) -> Outcome | None:
        """The GET whose time has come: a hint's confirmation, or a poll."""
        hint = self.confirm_at is not None and self.loop.time() >= self.confirm_at
        if not hint:
            self._start_polling(f"no callback within {self.plan.fallback_for(self.task):g}s; polling")
        return await self._fetch(hint=hint)

    async def _fetch(self, *, hint: bool) -> Outcome | None:
        """One GET (``hint``: to confirm a callback); the outcome when the task has ended."""
        self.last_get, self.confirm_at = self.loop.time(), None  # any GET answers every hint so far
        try:
            task = await self._get()
        except (TransientError, NetworkError) as exc:
            if hint and not self.polling:
                # The callback hints the task is done: keep waiting by polling, not by failing.
                self._start_polling(f"could not confirm a callback ({exc.message}); polling")
            else:
                self.notify("note", f"poll failed ({exc.message}); retrying")
            self._after_get(max(self.interval, getattr(exc, "retry_after", None) or 0.0))
            return None
        if task is None:
            return None  # the deadline passed during the GET; the loop reports the timeout
        self._observe(task)
        if task.status.terminal:
            self._settle(task.status)
            return self.outcome(task, Via.WEBHOOK if hint else Via.POLL)
        if hint:
            self._say_once("hint", f"ignored an unconfirmed callback: the provider says {task.status.value}")
        self.task = dataclasses.replace(task, estimated_duration=self.task.estimated_duration)
        self.on_poll(self.task)
        self._after_get(self.interval)
        return None

    def _after_get(self, delay: float) -> None:
        """Schedule the next poll (when polling) ``delay`` from now, and back the interval off."""
        if self.polling:
            self.next_poll = self.loop.time() + delay
        self.gets += 1
        self.interval = backoff(self.gets + 1, base=self.first_interval, cap=max(self.plan.poll_max, C.POLL_MIN),
                                factor=C.POLL_BACKOFF_FACTOR, jitter=NONE, after_failure=False)

    def _start_polling(self, why: str) -> None:
        if not self.polling:
            self.polling = True
            self.notify("note", why)
            self.notify("phase", "polling")

    def _secret_rejected(self) -> None:
        """A delivery was rejected for its signature: say so once, and check the task now."""
        self.said.add("secret")
        why = ("a callback was rejected for its signature: the webhook secret looks wrong (check "
               "--webhook-secret, GET3W_WEBHOOK_SECRET or ABSTRAKT_WEBHOOK_SECRET)")
        if self.polling:
            self.notify("note", why)
        else:
            self._start_polling(f"{why}; checking the task now, then polling")
            self.next_poll = self.loop.time()

    def _channel_lost(self) -> None:
        """No callback can reach us any more (the channel has said why, once): poll now, and on."""
        self.said.add("lost")
        if not self.polling:
            self.polling = True
            self.notify("phase", "polling")
            self.next_poll = self.loop.time()

    def _observe(self, task: Task) -> None:
        note = unknown_status_note(task)
        if note is not None:
            self._say_once(f"status {task.unknown_status}", note)

    def _say_once(self, key: str, text: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.notify("note", text)

    def _settle(self, status: Status) -> None:
        if self.inbox is not None:
            self.inbox.settle(self.task.id, status)

    async def _get(self) -> Task | None:
        """One GET of the task, cut short at the deadline (None then): --timeout bounds the whole
        wait, even when the HTTP layer is sleeping out a long Retry-After."""
        remaining = max(self.deadline - self.loop.time(), 0.0)
        try:
            return await within(self.adapter.get(self.task.id), remaining)
        except asyncio.TimeoutError:
            return None

    async def _deadline_passed(self) -> Outcome:
        """The wait ran out: raise WaitTimeoutError (cancelling first when asked). A look before
        cancelling that finds the task finished returns it instead: that paid result is kept."""
        cancelled = False
        if self.plan.on_timeout == OnTimeout.CANCEL:
            cancelled, finished = await cancel_within_budget(self.adapter, self.task.id, self.notify)
            if finished is not None:
                return self.outcome(finished, Via.POLL)
        raise WaitTimeoutError(self.task.id, cancelled=cancelled, task=self.task)
