"""The one-task core: submit, journal, wait and download a single task (``run``, ``submit``, ``wait``).

    requests.py  what the core is given (Connections, Observer, TaskSpec, WaitRequest) and the
                 choice of how to wait (``choose_mode``, ``open_channel_for``), shared with batch
    ledger.py    the task's journal rows and its submit: never lose a paid task
    flow.py      run_task, submit_only, wait_existing, cancel_unless_finished
    idempotency.py  idempotency keys: reuse the journalled task, never pay twice

Never lose a paid result, never pay twice: a task is journalled before its POST, its id as soon
as the answer names it; an answer that may hide a task is ``unknown`` and never resent; Ctrl-C
during the POST waits SUBMIT_ANSWER_GRACE for the id; a journal that fails after the submit
costs exit 6, never the task.
"""

from __future__ import annotations

from get3w_cli.tasks.flow import (
           cancel_unless_finished,
           resolve_uploads,
           run_task,
           submit_only,
           wait_existing,
)
from get3w_cli.tasks.ledger import TaskLedger, post_with_grace
from get3w_cli.tasks.requests import (
           Connections,
           Notify,
           Observer,
           TaskSpec,
           WaitRequest,
           choose_mode,
           open_channel_for,
)

__all__ = ["Connections", "Notify", "Observer", "TaskLedger", "TaskSpec", "WaitRequest",
           "cancel_unless_finished", "choose_mode", "open_channel_for", "post_with_grace",
           "resolve_uploads", "run_task", "submit_only", "wait_existing"]
