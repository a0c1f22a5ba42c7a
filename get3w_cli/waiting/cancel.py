"""Cancelling a task when a wait ends early (timeout, Ctrl-C), only after a look at it: a task
that already finished is never cancelled (a Get3W v3 DELETE of a finished task deletes its outputs).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from get3w_cli import constants as C
from get3w_cli.errors import G3wError, NetworkError, TransientError, UsageError
from get3w_cli.timeouts import within
from get3w_cli.waiting.plan import Notify, ignore

if TYPE_CHECKING:
    from get3w_cli.providers import Adapter
    from get3w_cli.records import Task


async def cancel_quietly(adapter: Adapter, task_id: str, notify: Notify = ignore) -> bool:
    """Best-effort cancel when leaving early, only of a task a GET shows unfinished (a Get3W v3
    DELETE of a finished one deletes its outputs); report, never raise: the exit code is the wait's."""
    cancelled, _ = await cancel_within_budget(adapter, task_id, notify)
    return cancelled


async def cancel_within_budget(adapter: Adapter, task_id: str, notify: Notify) -> tuple[bool, Task | None]:
    """(whether a cancel was sent, the task when the look found it finished)."""
    if not adapter.can_cancel:
        notify("note", f"{adapter.provider} {adapter.api} cannot cancel tasks; task {task_id} keeps running")
        return False, None
    try:
        return await within(_look_then_cancel(adapter, task_id, notify), C.CANCEL_ON_EXIT_BUDGET)
    except (asyncio.TimeoutError, UsageError, NetworkError, TransientError) as exc:
        notify("note", f"could not cancel task {task_id}: {exc or 'no answer in time'}")
        return False, None
    except Exception as exc:  # noqa: BLE001 - any provider refusal is reported, not raised
        notify("note", f"could not cancel task {task_id}: {exc}")
        return False, None


async def _look_then_cancel(adapter: Adapter, task_id: str, notify: Notify) -> tuple[bool, Task | None]:
    try:
        current = await adapter.get(task_id)
    except G3wError as exc:
        # Not knowing whether it finished, leave it: cancelling could delete a paid result.
        notify("note", f"could not look at task {task_id} before cancelling it ({exc.message}); left as it is")
        return False, None
    if current.status.terminal:
        notify("note", f"task {task_id} already {current.status.value}; not cancelling it")
        return False, current
    await adapter.cancel(task_id)
    notify("note", f"cancelled task {task_id}")
    return True, None
