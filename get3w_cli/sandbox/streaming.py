"""Get3W v3 ``"stream": true`` submits: the answer as Server-Sent Events (``text/event-stream``).

The task runs as any other (GET, DELETE and the CDN answer for it); the stream sends
SANDBOX_STREAM_EVENTS progress events over its duration, then its end, each as ``data: <json>``
followed by a blank line. The per-task control ``sandbox_stream`` picks how:

- ``get3w`` (default): Get3W's documented shape, ``{"id", "status", "progress"}`` (the first one
  at once, ``created`` at 0), then
  ``{"id", "status": "completed", "outputs"}`` (or ``failed`` with ``error``). The ``id`` is the
  sandbox's choice: the docs show none.
- ``wavespeed``: WaveSpeed's typed events: ``log``, ``progress`` (``percentage``), then
  ``complete`` (``outputs``) or ``error``, each with the ``id``.
- ``no_id``: the Get3W shape exactly as documented, without any id.
- ``break``: the first event and one progress event (with the id), then the connection drops.
- ``break_before_id``: a comment line, then the connection drops (no event named the task).
- ``refuse``: 400 "Streaming is not supported for this model", before any task is made.
- ``ignore``: the usual JSON submit answer, as if ``stream`` had not been asked for.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from get3w_cli.constants import SANDBOX_STREAM_EVENTS
from get3w_cli.sandbox.catalogue import CONTROLS
from get3w_cli.sandbox.runtime import Runtime
from get3w_cli.sandbox.shapes import output_urls
from get3w_cli.sandbox.state import Phase, SandboxTask

GET3W, WAVESPEED, NO_ID, BREAK, BREAK_BEFORE_ID, REFUSE, IGNORE = CONTROLS["sandbox_stream"]["enum"]
REFUSAL = "Streaming is not supported for this model"
_PERCENT = 100


def stream_mode(inputs: dict[str, Any]) -> str:
    """The task's ``sandbox_stream`` control; raises ValueError for an unknown one."""
    mode = inputs.get("sandbox_stream", GET3W)
    if mode not in CONTROLS["sandbox_stream"]["enum"]:
        raise ValueError(f"sandbox_stream must be one of {', '.join(CONTROLS['sandbox_stream']['enum'])}")
    return str(mode)


async def stream_task(request: web.Request, runtime: Runtime, task: SandboxTask, mode: str) -> web.StreamResponse:
    """Answer the submit of ``task`` with its events (see the module doc)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    try:
        await _events(request, response, runtime, task, mode)
    except ConnectionResetError:
        pass  # the client went away (it may poll the task instead)
    return response


async def _events(request: web.Request, response: web.StreamResponse, runtime: Runtime, task: SandboxTask,
                  mode: str) -> None:
    store = runtime.store
    if mode == BREAK_BEFORE_ID:
        await response.write(b": accepted\n\n")
        _drop(request)
        return
    # The first event comes at once, naming the task (WaveSpeed's: a log line).
    first = {"type": "log", "message": f"loading {task.model}", "id": task.id} if mode == WAVESPEED else (
        _progress(task, mode, 0.0, task.phase(store.now())))
    await _send(response, first)
    step = task.duration / (SANDBOX_STREAM_EVENTS + 1)
    for _ in range(SANDBOX_STREAM_EVENTS):
        await store.wait_terminal(task, step)
        now = store.now()
        if task.phase(now).terminal:
            break
        fraction = min((now - task.created_at) / task.duration, 1.0) if task.duration else 1.0
        await _send(response, _progress(task, mode, fraction, task.phase(now)))
        if mode == BREAK:
            _drop(request)
            return
    await store.wait_terminal(task, max(task.created_at + task.duration - store.now(), 0.0))
    await _send(response, _end(task, mode, runtime.base_url, task.phase(store.now())))
    await response.write_eof()


def _progress(task: SandboxTask, mode: str, fraction: float, phase: Phase) -> dict[str, Any]:
    if mode == WAVESPEED:
        return {"type": "progress", "percentage": round(fraction * _PERCENT), "id": task.id}
    event: dict[str, Any] = {"status": phase.value, "progress": round(fraction, 3)}
    return event if mode == NO_ID else {"id": task.id, **event}


def _end(task: SandboxTask, mode: str, base_url: str, phase: Phase) -> dict[str, Any]:
    completed = phase is Phase.COMPLETED and not task.deleted
    if mode == WAVESPEED:
        if completed:
            return {"type": "complete", "outputs": output_urls(task, base_url), "id": task.id}
        return {"type": "error", "error": task.controls.fail or f"task {phase.value}", "id": task.id}
    event: dict[str, Any] = {"status": phase.value}
    if completed:
        event["outputs"] = output_urls(task, base_url)
    elif phase is Phase.FAILED:
        event["error"] = task.controls.fail
    return event if mode == NO_ID else {"id": task.id, **event}


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(data)}\n\n".encode())


def _drop(request: web.Request) -> None:
    """Close the connection mid-answer: the client sees a stream that broke (chunked, unfinished)."""
    if request.transport is not None:
        request.transport.close()
