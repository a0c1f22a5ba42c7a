"""Get3W v3 streamed submits (``"stream": true``): Server-Sent Events into ``StreamUpdate`` records.

Two documented event shapes, both read (api/get3w.md 4.11 and 13):
    Get3W      ``data: {"status": "processing", "progress": 0.5}`` ... ``{"status": "completed",
               "outputs": [...]}`` (``progress`` a fraction)
    WaveSpeed  ``data: {"type": "progress", "percentage": 50}``, ``log``, ``output``, ``complete``
               (``outputs``), ``error``
Neither documents a task id in the events. Any event naming one (``id``, ``task_id``,
``prediction_id``, or those inside a ``data`` object) names the task: the caller journals it
at once. Events whose data is not a JSON object (an end marker such as ``[DONE]``) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from get3w_cli.payloads import PayloadError, get3w_task
from get3w_cli.providers.stream_update import StreamUpdate
from get3w_cli.records import Status, TaskError, parse_status

if TYPE_CHECKING:
    from get3w_cli.http import EventStream
    from get3w_cli.records import Task

_ID_FIELDS = ("id", "task_id", "prediction_id")
_TYPED = {"progress": None, "log": None, "output": Status.PROCESSING, "complete": Status.COMPLETED,
          "error": Status.FAILED}
_PERCENT = 100.0


class V3Stream:
    """The ``SubmitStream`` of one streamed v3 submit."""

    def __init__(self, events: EventStream, answer: Task | None) -> None:
        self._events, self._answer = events, answer

    @property
    def answer(self) -> Task | None:
        return self._answer

    async def __aiter__(self) -> AsyncIterator[StreamUpdate]:
        async for event in self._events.events():
            try:
                data = json.loads(event.data) if event.data else None
            except ValueError:
                continue
            update = stream_update(data)
            if update is not None:
                yield update


def answered_task(body: object, model: str) -> Task:
    """A submit answered without a stream: the usual envelope (or a bare task object).

    Raises:
        PayloadError: it names no task.
    """
    if isinstance(body, Mapping) and isinstance(body.get("data"), Mapping):
        body = body["data"]
    return get3w_task(body, api="v3", model=model)


def stream_update(data: object) -> StreamUpdate | None:
    """One event's JSON as a StreamUpdate, either shape; None when it is no object."""
    if not isinstance(data, Mapping):
        return None
    nested = data.get("data")
    inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    task_id = next((str(v) for v in (*(data.get(f) for f in _ID_FIELDS), *(inner.get(f) for f in _ID_FIELDS))
                    if v not in (None, "")), None)
    kind = data.get("type")
    outputs = _outputs(data) or _outputs(inner)
    if isinstance(kind, str) and kind in _TYPED:
        status = _TYPED[kind]
        error = _error(data) if status is Status.FAILED else None
        log = _message(data) if kind == "log" else None
        return StreamUpdate(task_id=task_id, status=status, progress=_progress(data), outputs=outputs, error=error,
                            log=log, raw=dict(data))
    word = data.get("status", inner.get("status"))
    status = parse_status(word)[0] if word not in (None, "") else None
    error = _error(data) if status is Status.FAILED else None
    return StreamUpdate(task_id=task_id, status=status, progress=_progress(data), outputs=outputs, error=error,
                        raw=dict(data))


def _progress(data: Mapping[str, Any]) -> float | None:
    """``percentage`` (0-100) or ``progress`` (a fraction; a value above 1 is read as a percentage)."""
    for name, scale in (("percentage", _PERCENT), ("progress", 1.0)):
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            fraction = value / scale if value <= scale else value / _PERCENT
            return min(fraction, 1.0)
    return None


def _outputs(data: Mapping[str, Any]) -> tuple[str, ...]:
    found = data.get("outputs", data.get("output"))
    if isinstance(found, str):
        return (found,)
    if isinstance(found, list):
        return tuple(u for u in found if isinstance(u, str))
    return ()


def _message(data: Mapping[str, Any]) -> str | None:
    for name in ("message", "log", "text", "error"):
        value = data.get(name)
        if isinstance(value, str) and value:
            return " ".join(value.split())
        if isinstance(value, Mapping) and isinstance(value.get("message"), str):
            return " ".join(value["message"].split())
    return None


def _error(data: Mapping[str, Any]) -> TaskError:
    code = data.get("code")
    error = data.get("error")
    if isinstance(error, Mapping):
        code = error.get("code", code)
    return TaskError(code=None if code in (None, "") else str(code),
                     message=_message(data) or "the provider reported the task as failed")


__all__ = ["PayloadError", "V3Stream", "answered_task", "stream_update"]
