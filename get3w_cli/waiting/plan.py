"""What the waiting engine is given and gives back: the plan, the outcome, the callback source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from get3w_cli import constants as C
from get3w_cli.names import OnTimeout, Via
from get3w_cli.records import Status, Task

if TYPE_CHECKING:
    from get3w_cli.webhooks.inbox import Delivery


class CallbackSource(Protocol):
    def take(self, task_id: str) -> Delivery | None: ...

    async def next(self, task_id: str) -> Delivery: ...

    def rejection_signal(self) -> asyncio.Future[None]: ...

    def loss_signal(self) -> asyncio.Future[None]: ...

    def settle(self, task_id: str, status: Status) -> None: ...

    def forget(self, task_id: str) -> None: ...


@dataclass(frozen=True)
class WaitPlan:
    """How to wait: ``mode`` is webhook, poll or sync (``auto`` is resolved before)."""

    mode: str = Via.POLL
    timeout: float = C.DEFAULT_WAIT_TIMEOUT
    fallback_after: float | None = None
    poll_max: float = C.POLL_MAX_DEFAULT
    on_timeout: str = OnTimeout.DETACH

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


def ignore(kind: str, text: str) -> None:
    return None


def first_poll_delay(task: Task, plan: WaitPlan) -> float:
    """Start near the provider's estimate, within [POLL_MIN, poll_max]."""
    guess = task.estimated_duration or C.POLL_INITIAL
    return min(max(guess, C.POLL_MIN), max(plan.poll_max, C.POLL_MIN))
