"""Pure parsers from provider JSON (poll answers and webhook payloads) to ``Task`` records.

Shared by the provider adapters (poll, submit, sync answers) and the webhook receivers
(callback payloads), which must agree on what a payload means. Lenient by design: unknown
fields stay in ``raw``; missing optional ones become ``None``; only a missing id is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from get3w_cli.names import Provider
from get3w_cli.records import Status, Task, TaskError, parse_status


class PayloadError(ValueError):
    """The JSON does not describe a task (no id, or not an object)."""


def _str_or_none(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _error(code: object, message: object) -> TaskError | None:
    if isinstance(message, Mapping):
        return _error(message.get("code", code), message.get("message") or message.get("error"))
    if message in (None, "") and code in (None, ""):
        return None
    return TaskError(code=_str_or_none(code), message=str(message or code))


def get3w_task(obj: object, *, api: str, model: str | None = None) -> Task:
    """Parse a Get3W task object (v1 bare object, v3 ``data``, or either webhook body)."""
    if not isinstance(obj, Mapping) or not obj.get("id"):
        raise PayloadError("not a Get3W task object (no id)")
    status, unknown = parse_status(obj.get("status"))
    outputs = obj.get("outputs") or []
    error = _error(obj.get("code"), obj.get("error")) if status is not Status.COMPLETED else None
    if status is Status.FAILED and error is None:
        error = TaskError(code=None, message="the provider reported the task as failed")
    return Task(
        id=str(obj["id"]),
        provider=Provider.GET3W,
        api=api,
        model=_str_or_none(obj.get("model")) or model or "",
        status=status,
        outputs=tuple(str(u) for u in outputs if isinstance(u, str)),
        error=error,
        created_at=_str_or_none(obj.get("created_at")),
        completed_at=_str_or_none(obj.get("completed_at")),
        estimated_duration=_number_or_none(obj.get("estimated_duration")),
        raw=dict(obj),
        unknown_status=unknown,
    )


def _abstrakt_outputs(obj: Mapping[str, Any]) -> tuple[str, ...]:
    container = obj.get("output") or obj.get("result") or {}
    items = container.get("items") if isinstance(container, Mapping) else container
    urls: list[str] = []
    for item in items or []:
        if isinstance(item, Mapping) and isinstance(item.get("url"), str):
            urls.append(item["url"])
        elif isinstance(item, str):
            urls.append(item)
    return tuple(urls)


def abstrakt_job(obj: object, *, model: str | None = None) -> Task:
    """Parse an Abstrakt job (run answer, job GET, flat webhook, or the older event envelope)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("data"), Mapping) and "event" in obj:
        obj = obj["data"]
    if not isinstance(obj, Mapping):
        raise PayloadError("not an Abstrakt job object")
    job_id = obj.get("job_id") or obj.get("request_id") or obj.get("id")
    if not job_id:
        raise PayloadError("not an Abstrakt job object (no job_id)")
    status, unknown = parse_status(obj.get("status"))
    error = _error(None, obj.get("error")) if status is not Status.COMPLETED else None
    if status is Status.FAILED and error is None:
        error = TaskError(code=None, message="the provider reported the job as failed")
    return Task(
        id=str(job_id),
        provider=Provider.ABSTRAKT,
        api="v1",
        model=_str_or_none(obj.get("model_id") or obj.get("model")) or model or "",
        status=status,
        outputs=_abstrakt_outputs(obj),
        error=error,
        created_at=_str_or_none(obj.get("created_at")),
        completed_at=_str_or_none(obj.get("completed_at")),
        estimated_duration=_number_or_none(obj.get("estimated_duration")),
        raw=dict(obj),
        unknown_status=unknown,
    )


def infer_provider(headers: Mapping[str, str], payload: object) -> str | None:
    """Guess which provider sent a webhook, from its signature headers, else its shape."""
    lower = {k.lower() for k in headers}
    if "x-abstrakt-signature" in lower or "x-abstrakt-timestamp" in lower:
        return Provider.ABSTRAKT
    if "x-get3w-signature" in lower:
        return Provider.GET3W
    if isinstance(payload, Mapping):
        if "job_id" in payload or ("event" in payload and "data" in payload):
            return Provider.ABSTRAKT
        if "id" in payload and "status" in payload:
            return Provider.GET3W
    return None


# Fields only v3 predictions carry (api/get3w.md 4 and 10): their presence makes a payload v3
# whatever its model id looks like (v3 ids may have three segments: wavespeed-ai/z-image/turbo).
_V3_MARKERS = ("timings", "urls", "has_nsfw_contents")


def get3w_api_hint(payload: object) -> str:
    """The Get3W API a payload looks like it came from: only a hint, for when no waiter knows.

    v3 when it carries a v3-only field or a ``pred_`` id; else v1 when its model id has three
    or more segments (provider/model/task); else v3.
    """
    if not isinstance(payload, Mapping):
        return "v3"
    task_id, model = payload.get("id"), payload.get("model")
    if any(name in payload for name in _V3_MARKERS) or (isinstance(task_id, str) and task_id.startswith("pred_")):
        return "v3"
    return "v1" if isinstance(model, str) and model.count("/") >= 2 else "v3"


def callback_task(payload: object, *, provider: str, api: str | None = None) -> Task:
    """Parse a webhook payload from ``provider``; ``api`` is the Get3W API when known (the waiter's
    adapter knows it; ``g3w listen`` has only the payload's shape, ``get3w_api_hint``)."""
    if provider == Provider.ABSTRAKT:
        return abstrakt_job(payload)
    return get3w_task(payload, api=api or get3w_api_hint(payload))
