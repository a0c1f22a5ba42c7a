"""What a failed submit means: the one place that decides whether a task may exist.

A 429 or 503 answer, a refusal (4xx) or a connection that never opened prove that nothing was
created, so the request may be sent again. Anything else after the request left (a lost
answer, a 5xx page, a 200 that is not JSON or names no id) may hide a created task: it is
``SubmitUnknownError`` and is never sent again blindly. ``run``, ``submit`` and ``batch`` all
submit through ``submit_task``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from get3w_cli.errors import G3wError, RejectedError, SubmitUnknownError, TransientError

if TYPE_CHECKING:
    from get3w_cli.providers.base import Adapter
    from get3w_cli.records import Task

# Answers to a POST that prove nothing was created (the retry policy resends these).
NOTHING_CREATED_STATUSES = (429, 503)


def nothing_created(exc: BaseException) -> bool:
    """Whether a failed submit proves that the provider created no task (so it may be sent again)."""
    if isinstance(exc, SubmitUnknownError):
        return False
    if isinstance(exc, TransientError):
        return exc.status in NOTHING_CREATED_STATUSES
    return isinstance(exc, G3wError)  # refused (4xx, auth), a usage error, a connection that never opened


# A refusal of "stream": true comes before any task exists; it names streaming (WaveSpeed: "Requests
# to /stream for unsupported models return an error"; Get3W: "Not every model supports streaming").
STREAM_REFUSAL_STATUSES = (400, 404, 405, 422)


def refuses_streaming(exc: BaseException) -> bool:
    """Whether a failed streamed submit is the model refusing to stream (nothing was created, and
    the same request without ``stream`` may be sent once)."""
    if not isinstance(exc, RejectedError) or exc.status not in STREAM_REFUSAL_STATUSES:
        return False
    return "stream" in f"{exc.message} {exc.code or ''}".lower()


async def submit_task(adapter: Adapter, model: str, values: Mapping[str, Any], *, webhook_url: str | None,
                      sync: bool = False) -> Task:
    """POST one task; an answer that may hide a created task becomes ``SubmitUnknownError``.

    Raises:
        SubmitUnknownError: the task may exist (never resend it blindly).
        TransientError: a 429 or 503 that outlasted the retries (nothing was created).
        AuthError, RejectedError, UsageError, NetworkError: refused, or never sent.
    """
    try:
        return await adapter.submit(model, values, webhook_url=webhook_url, sync=sync)
    except TransientError as exc:
        if exc.status in NOTHING_CREATED_STATUSES:
            raise
        raise SubmitUnknownError(f"the answer to the submit could not be used ({exc.message}); "
                                 "the task may have been created") from exc
