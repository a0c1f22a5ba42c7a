"""The JSON each API speaks: task objects, webhook payloads and error bodies.

Field names, envelopes and timestamp formats follow the API notes (``api/get3w.md``,
``api/abstrakt.md``) and the seed pages: v1 bare objects with naive ISO seconds, v3
``{code, message, data}`` envelopes with ISO milliseconds and ``Z``, Abstrakt flat jobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from get3w_cli.sandbox.state import Phase, SandboxTask

V1, V3, ABSTRAKT = "v1", "v3", "abstrakt"
# The v1 task-error ``code`` type is undocumented; the sandbox uses the int 500, like the
# HTTP error bodies' int codes.
V1_TASK_ERROR_CODE = 500
ABSTRAKT_FAILURE_CODE = "PROVIDER_FAILURE"

DEFAULT_MESSAGES = {
    400: "Invalid parameters",
    401: "Invalid or revoked API key",
    403: "Insufficient balance",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    429: "Rate limit exceeded",
    500: "Server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}
ABSTRAKT_CODES = {
    400: "INVALID_INPUT",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "MODEL_UNAVAILABLE",
}


def iso_ms(when: datetime) -> str:
    """v3 style: ``2024-01-01T12:00:00.000Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def iso_seconds(when: datetime, *, zulu: bool = True) -> str:
    """Abstrakt style ``2026-02-08T10:30:45Z``; v1 style (``zulu=False``) ``2026-03-28T07:50:42``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if zulu else "")


def status_word(task: SandboxTask, now: float) -> str:
    phase = task.phase(now)
    if task.api == V3 and task.deleted:
        return "deleted"
    if task.api == ABSTRAKT and phase is Phase.CREATED:
        return "pending"
    return phase.value


def output_urls(task: SandboxTask, base_url: str) -> list[str]:
    version = f"?v={task.url_version}" if task.url_version else ""
    return [f"{base_url}/cdn/outputs/{task.id}_{i}.png{version}" for i in range(task.controls.outputs)]


def _completed_outputs(task: SandboxTask, base_url: str, now: float) -> list[str]:
    if task.deleted or task.phase(now) is not Phase.COMPLETED:
        return []
    return output_urls(task, base_url)


def v1_task(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    """The v1 bare task object (poll, sync answer and webhook body)."""
    phase = task.phase(now)
    body: dict[str, Any] = {
        "id": task.id,
        "model": task.model,
        "status": status_word(task, now),
        "created_at": iso_seconds(task.created_wall, zulu=False),
        "input": task.input,
    }
    if phase is Phase.FAILED:
        body.update(code=V1_TASK_ERROR_CODE, error=task.controls.fail)
    else:
        body["outputs"] = _completed_outputs(task, base_url, now)
    return body


def v3_prediction(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    """The v3 prediction object (``data`` of GET /api/v3/predictions/{id})."""
    body = v3_webhook(task, base_url, now)
    body["input"] = task.input
    body["urls"] = {"get": f"{base_url}/api/v3/predictions/{task.id}"}
    return body


def v3_webhook(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    """The bare v3 webhook object (no envelope)."""
    phase = task.phase(now)
    body: dict[str, Any] = {
        "id": task.id,
        "model": task.model,
        "status": status_word(task, now),
        "outputs": _completed_outputs(task, base_url, now),
        "created_at": iso_ms(task.created_wall),
    }
    if phase.terminal:
        inference = task.ended_wall() - task.created_wall
        body["timings"] = {"inference": int(inference.total_seconds() * 1000)}
        body["completed_at"] = iso_ms(task.ended_wall())
    if phase is Phase.FAILED:
        body["error"] = task.controls.fail
    return body


def _abstrakt_output(task: SandboxTask, base_url: str) -> dict[str, Any]:
    items = [{"type": "image", "url": url} for url in output_urls(task, base_url)]
    return {"type": "image", "items": items}


def abstrakt_job(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    """An Abstrakt job (run answer and GET /v1/jobs/{id})."""
    phase = task.phase(now)
    body: dict[str, Any] = {
        "job_id": task.id,
        "request_id": task.request_id,
        "status": status_word(task, now),
        "model_id": task.model,
        "created_at": iso_seconds(task.created_wall),
    }
    if phase is Phase.COMPLETED:
        body["output"] = _abstrakt_output(task, base_url)
    if phase.terminal:
        ended = task.ended_wall()
        body["duration_ms"] = int((ended - task.created_wall).total_seconds() * 1000)
        body["credits_used"] = 1 if phase is Phase.COMPLETED else 0
        body["completed_at"] = iso_seconds(ended)
    if phase is Phase.FAILED:
        body["error"] = {"code": ABSTRAKT_FAILURE_CODE, "message": task.controls.fail}
    if not phase.terminal:
        body["message"] = _still_generating(task)
    return body


def _still_generating(task: SandboxTask) -> str:
    return f"Model is still generating. Poll GET /v1/jobs/{task.id} for the completed result."


def abstrakt_accepted(task: SandboxTask) -> dict[str, Any]:
    """The 202 answer of a run that is not (or not yet) waited for."""
    return {"job_id": task.id, "request_id": task.request_id, "status": "processing",
            "model_id": task.model, "message": _still_generating(task)}


def abstrakt_webhook(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    """The newer flat Abstrakt webhook payload (``succeeded`` / ``failed``)."""
    if task.phase(now) is Phase.FAILED:
        error = {"code": ABSTRAKT_FAILURE_CODE, "message": task.controls.fail}
        return {"job_id": task.id, "status": "failed", "error": error}
    return {
        "job_id": task.id,
        "status": "succeeded",
        "output": _abstrakt_output(task, base_url),
        "credits_used": 1,
        "completed_at": iso_seconds(task.ended_wall()),
    }


def webhook_payload(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    if task.api == V1:
        return v1_task(task, base_url, now)
    if task.api == V3:
        return v3_webhook(task, base_url, now)
    return abstrakt_webhook(task, base_url, now)


def stale_payload(task: SandboxTask, base_url: str, now: float) -> dict[str, Any]:
    """A late, out-of-order ``processing`` callback for the same task."""
    if task.api == ABSTRAKT:
        return {"job_id": task.id, "status": "processing"}
    body = webhook_payload(task, base_url, now)
    for name in ("code", "error", "completed_at", "timings"):
        body.pop(name, None)
    body.update(status="processing", outputs=[])
    return body


def envelope(data: Any) -> dict[str, Any]:
    return {"code": 200, "message": "success", "data": data}


def error_body(flavor: str, status: int, message: str | None = None, *,
               code: str | None = None, retry_after: float | None = None) -> dict[str, Any]:
    """An error body in the API's shape; ``code`` is Abstrakt's error code."""
    text = message or DEFAULT_MESSAGES.get(status, "Error")
    if flavor == V1:
        return {"code": status, "error": text}
    if flavor == V3:
        return {"code": status, "message": text, "data": None}
    error: dict[str, Any] = {"code": code or ABSTRAKT_CODES.get(status, "ERROR"), "message": text}
    if status == 429 and retry_after is not None:
        error["retry_after"] = int(retry_after) if retry_after == int(retry_after) else retry_after
    return {"error": error}
