"""The one waiting engine: a callback inbox raced against adaptive polling, with a deadline.

``run``, ``wait`` and ``batch`` all wait through ``wait_for``. The rules:

- webhook mode: wait for a trusted final callback: one the secret of the task's provider
  verified. Any other is a hint, believed after a confirming GET; at most one such GET per
  poll interval (a hint inside it moves the next GET to its end), so forged hints cannot
  multiply API calls. No callback within ``fallback_after``: poll, and keep listening. A
  callback rejected for its signature (a wrong secret?) is said once, and the task is
  checked at once and then polled, instead of waiting out ``fallback_after``. A channel that
  loses its way in (the tunnel or the relay dropped; the channel says so once) means polling
  at once.
- poll mode: first poll near the provider's estimated duration, then back off to ``poll_max``.
  Transient poll failures are retried until the deadline; they never end a paid wait early.
- a status word g3w does not know counts as processing; the waiter says so once per word.
- on the deadline, or on cancellation (Ctrl-C), cancel the task only if asked to, and only
  when a look shows it unfinished (a Get3W v3 DELETE of a finished task deletes its outputs).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from get3w_cli.names import OnTimeout, Via
from get3w_cli.records import Status, Task
from get3w_cli.waiting.cancel import cancel_quietly
from get3w_cli.waiting.plan import CallbackSource, Notify, Outcome, WaitPlan, first_poll_delay, ignore
from get3w_cli.waiting.waiter import Waiter

if TYPE_CHECKING:
    from get3w_cli.providers import Adapter

__all__ = ["CallbackSource", "Notify", "Outcome", "WaitPlan", "cancel_quietly", "first_poll_delay", "wait_for"]


async def wait_for(
    adapter: Adapter,
    task: Task,
    plan: WaitPlan,
    *,
    inbox: CallbackSource | None = None,
    notify: Notify = ignore,
    via_if_done: str | None = None,
    on_poll: Callable[[Task], None] | None = None,
    on_cancelled: Callable[[Task], None] | None = None,
) -> Outcome:
    """Wait until ``task`` is terminal; return it with the path that delivered it.

    ``task`` is the latest snapshot. Already terminal, it is returned at once with ``via_if_done``
    (Via.POLL: it came from a GET), else as a submit answer: ``webhook`` when its callback is already
    in ``inbox``, else ``sync``. Ctrl-C cancels the task only when ``plan.on_timeout == "cancel"``;
    ``on_cancelled`` is then told the task as it is left (cancelled), so the caller journals that.

    Raises:
        WaitTimeoutError: the deadline passed first.
        AuthError, RejectedError: polling was refused for good.
    """
    if task.status.terminal:
        return Outcome(task=task, via=via_if_done or _answer_via(task, inbox), elapsed=0.0)
    waiter = Waiter(adapter, task, plan, inbox if plan.mode == Via.WEBHOOK else None, notify)
    if on_poll is not None:
        waiter.on_poll = on_poll
    try:
        return await waiter.run()
    except asyncio.CancelledError:
        if plan.on_timeout == OnTimeout.CANCEL:
            sent = await asyncio.shield(cancel_quietly(adapter, task.id, notify))
            if sent and on_cancelled is not None:
                on_cancelled(dataclasses.replace(waiter.task, status=Status.CANCELLED))
        raise


def _answer_via(task: Task, inbox: CallbackSource | None) -> str:
    """The path of a submit answer that is already final: webhook when a callback saying the
    same already arrived (signed, or confirmed by the answer itself), else sync."""
    if inbox is None:
        return Via.SYNC
    via = Via.SYNC
    while (delivery := inbox.take(task.id)) is not None:
        if delivery.task is not None and delivery.task.status is task.status:
            via = Via.WEBHOOK
    inbox.settle(task.id, task.status)
    return via
