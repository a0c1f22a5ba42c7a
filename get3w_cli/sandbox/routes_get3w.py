"""Get3W task routes: v1 (``/v1/{provider}/{model}/{task}``, ``/v1/requests/{id}``) and v3
(``/api/v3/{model id}``, ``/api/v3/predictions/{id}``); a v3 model id may have two segments
(``get3w/flux-dev``) or more (``wavespeed-ai/z-image/turbo``)."""

from __future__ import annotations

from aiohttp import web

from get3w_cli.sandbox import streaming
from get3w_cli.sandbox.catalogue import GET3W_V1_MODELS, GET3W_V3_MODELS, Model
from get3w_cli.sandbox.common import (
    authorize,
    bad_input,
    read_json_object,
    reject,
    require_funds,
    require_prompt,
    runtime_of,
)
from get3w_cli.sandbox.shapes import V1, V3, envelope, iso_ms, v1_task, v3_prediction
from get3w_cli.sandbox.state import SandboxTask

_TRUE = ("true", "1", "yes")


def _model(models: dict[str, Model], model_id: str, flavor: str) -> Model:
    model = models.get(model_id)
    if model is None:
        raise reject(flavor, 404, f"Model not found: {model_id}" if flavor == V3 else None)
    return model


def _task(request: web.Request, api: str) -> SandboxTask:
    task = runtime_of(request).store.get(request.match_info["id"])
    if task is None or task.api != api:
        raise reject(api, 404, "Task not found" if api == V3 else None)
    return task


# --- v1 ----------------------------------------------------------------------


async def v1_submit(request: web.Request) -> web.Response:
    """POST /v1/{provider}/{model}/{task}[?webhook=URL][&sync=true]"""
    runtime = runtime_of(request)
    key = authorize(request, V1)
    require_funds(key, V1)
    model = _model(GET3W_V1_MODELS, request.match_info["model"], V1)
    inputs = require_prompt(await read_json_object(request, V1), V1)
    webhook = request.query.get("webhook") or None
    task = runtime.new_task(flavor=V1, model=model, inputs=inputs, key=key, webhook_url=webhook)
    await runtime.settle_early(task)
    if request.query.get("sync", "").lower() in _TRUE:
        # Blocks like the real sync mode; past the cutoff the task object says "processing".
        await runtime.store.wait_terminal(task, runtime.options.sync_cutoff)
        return web.json_response(v1_task(task, runtime.base_url, runtime.store.now()))
    return web.json_response(
        {"id": task.id, "status": "created", "estimated_duration": task.estimated_duration}
    )


async def v1_get(request: web.Request) -> web.Response:
    """GET /v1/requests/{id}"""
    runtime = runtime_of(request)
    authorize(request, V1)
    task = _task(request, V1)
    return web.json_response(v1_task(task, runtime.base_url, runtime.store.now()))


# --- v3 ----------------------------------------------------------------------


async def v3_submit(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/{model id} with the inputs (an optional ``webhook_url``; ``stream: true``
    answers with Server-Sent Events, see streaming.py)."""
    runtime = runtime_of(request)
    key = authorize(request, V3)
    require_funds(key, V3)
    model = _model(GET3W_V3_MODELS, request.match_info["model"], V3)
    body = await read_json_object(request, V3)
    webhook = body.pop("webhook_url", None)
    streamed = body.pop("stream", None) is True
    if webhook is not None and not isinstance(webhook, str):
        raise bad_input(V3, "webhook_url must be a string")
    inputs = require_prompt(body, V3)
    try:
        mode = streaming.stream_mode(inputs) if streamed else None
    except ValueError as exc:
        raise bad_input(V3, str(exc)) from exc
    if mode == streaming.REFUSE:
        raise reject(V3, 400, streaming.REFUSAL)
    task = runtime.new_task(flavor=V3, model=model, inputs=inputs, key=key,
                            webhook_url=webhook or None)
    await runtime.settle_early(task)
    if mode is not None and mode != streaming.IGNORE:
        return await streaming.stream_task(request, runtime, task, mode)
    data = {
        "id": task.id,
        "model": task.model,
        "status": "created",
        "urls": {"get": f"{runtime.base_url}/api/v3/predictions/{task.id}"},
        "created_at": iso_ms(task.created_wall),
    }
    return web.json_response(envelope(data))


async def v3_get(request: web.Request) -> web.Response:
    """GET /api/v3/predictions/{id} and its alias .../result"""
    runtime = runtime_of(request)
    authorize(request, V3)
    task = _task(request, V3)
    return web.json_response(envelope(v3_prediction(task, runtime.base_url, runtime.store.now())))


async def v3_delete(request: web.Request) -> web.Response:
    """DELETE /api/v3/predictions/{id}: cancels a running task, or deletes a finished one's
    outputs (their URLs stop working). Deleting twice answers the same again."""
    runtime = runtime_of(request)
    authorize(request, V3)
    task = _task(request, V3)
    runtime.store.delete(task)
    return web.json_response(envelope({"id": task.id, "status": "deleted"}))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/requests/{id}", v1_get)
    app.router.add_post("/v1/{model:[^/]+/[^/]+/.+}", v1_submit)
    app.router.add_get("/api/v3/predictions/{id}", v3_get)
    app.router.add_get("/api/v3/predictions/{id}/result", v3_get)
    app.router.add_delete("/api/v3/predictions/{id}", v3_delete)
    # Last: the account routes' POSTs (/api/v3/files/upload, ...) are matched first.
    app.router.add_post("/api/v3/{model:[^/]+/.+}", v3_submit)
