"""Abstrakt routes: ``POST /v1/models/{model}/run`` (200 or 202), jobs, and the model list.

Model ids may contain raw slashes (``fal-ai/flux/schnell``), so the run and detail routes are
catch-alls. Cancelling a finished job is undocumented; the sandbox answers 409
``JOB_NOT_CANCELLABLE``. Options emulate what the docs leave open: which docs generation decides
whether a run is asynchronous (``abstrakt_generation``), the cancel answer's body
(``abstrakt_cancel_answer``) and a smaller page of the model list (``abstrakt_models_page_max``).
"""

from __future__ import annotations

from aiohttp import web

from get3w_cli.sandbox.catalogue import ABSTRAKT_MODELS, Model, matches
from get3w_cli.sandbox.common import (
    authorize,
    bad_input,
    read_json_object,
    reject,
    require_funds,
    require_prompt,
    runtime_of,
)
from get3w_cli.sandbox.shapes import ABSTRAKT, abstrakt_accepted, abstrakt_job
from get3w_cli.sandbox.state import SandboxTask

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _model(model_id: str) -> Model:
    model = ABSTRAKT_MODELS.get(model_id)
    if model is None:
        raise reject(ABSTRAKT, 404, f"Model '{model_id}' does not exist", code="MODEL_NOT_FOUND")
    return model


def _job(request: web.Request) -> SandboxTask:
    job_id = request.match_info["id"]
    task = runtime_of(request).store.get(job_id)
    if task is None or task.api != ABSTRAKT:
        raise reject(ABSTRAKT, 404, f"Job '{job_id}' not found or expired", code="JOB_NOT_FOUND")
    return task


def _wants_sync(body: dict[str, object], webhook_url: str | None, generation: str) -> bool:
    """Newer docs: "sync" (default true), a webhook means async; older docs: synchronous unless
    "async": true. "both" honours either."""
    newer = bool(body.get("sync", True)) and not webhook_url
    older = not body.get("async", False)
    if generation == "newer":
        return newer
    if generation == "older":
        return older
    return newer and older


async def run(request: web.Request) -> web.Response:
    """POST /v1/models/{model}/run with {"input": {...}, "webhook_url"?, "sync"?, "async"?}"""
    runtime = runtime_of(request)
    key = authorize(request, ABSTRAKT)
    require_funds(key, ABSTRAKT)
    model = _model(request.match_info["model"])
    body = await read_json_object(request, ABSTRAKT)
    inputs = require_prompt(body.get("input"), ABSTRAKT)
    webhook_url = body.get("webhook_url")
    if webhook_url is not None and not isinstance(webhook_url, str):
        raise bad_input(ABSTRAKT, "webhook_url must be a string")
    task = runtime.new_task(flavor=ABSTRAKT, model=model, inputs=inputs, key=key,
                            webhook_url=webhook_url or None)
    await runtime.settle_early(task)
    sync = _wants_sync(body, webhook_url, runtime.options.abstrakt_generation)
    if sync:
        await runtime.store.wait_terminal(task, runtime.options.sync_cutoff)
    now = runtime.store.now()
    if sync and task.phase(now).terminal:
        return web.json_response(abstrakt_job(task, runtime.base_url, now))
    return web.json_response(abstrakt_accepted(task), status=202)


async def get_job(request: web.Request) -> web.Response:
    """GET /v1/jobs/{id} (and the older alias /v1/jobs/{id}/result)"""
    runtime = runtime_of(request)
    authorize(request, ABSTRAKT)
    task = _job(request)
    return web.json_response(abstrakt_job(task, runtime.base_url, runtime.store.now()))


async def cancel_job(request: web.Request) -> web.Response:
    """DELETE /v1/jobs/{id}: pending or processing -> cancelled; finished -> 409."""
    runtime = runtime_of(request)
    authorize(request, ABSTRAKT)
    task = _job(request)
    phase = task.phase(runtime.store.now())
    if phase.terminal:
        raise reject(ABSTRAKT, 409, f"Job is already {phase.value} and cannot be cancelled",
                     code="JOB_NOT_CANCELLABLE")
    runtime.store.cancel(task)
    answer = runtime.options.abstrakt_cancel_answer
    if answer == "empty":
        return web.Response(status=204)
    if answer == "odd":
        return web.json_response({"success": True, "message": "Cancellation requested"})
    if answer == "text":
        return web.Response(text="OK")
    return web.json_response(abstrakt_job(task, runtime.base_url, runtime.store.now()))


def _int_query(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, str(default)))
    except ValueError as exc:
        raise bad_input(ABSTRAKT, f"{name} must be an integer") from exc


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models[?search=][&category=][&limit=][&offset=]"""
    authorize(request, ABSTRAKT)
    limit = _int_query(request, "limit", DEFAULT_LIMIT)
    offset = _int_query(request, "offset", 0)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise bad_input(ABSTRAKT, f"limit must be 1-{MAX_LIMIT} and offset at least 0")
    limit = min(limit, runtime_of(request).options.abstrakt_models_page_max or limit)
    search, category = request.query.get("search"), request.query.get("category")
    found = [m.abstrakt_listing() for m in ABSTRAKT_MODELS.values()
             if matches(m, search, category)]
    return web.json_response({"models": found[offset:offset + limit], "total": len(found),
                              "limit": limit, "offset": offset})


async def get_model(request: web.Request) -> web.Response:
    """GET /v1/models/{id}, the id possibly with slashes; includes ``input_schema``."""
    authorize(request, ABSTRAKT)
    return web.json_response(_model(request.match_info["id"]).abstrakt_details())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/models/{model:.+}/run", run)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{id:.+}", get_model)
    app.router.add_get("/v1/jobs/{id}", get_job)
    app.router.add_get("/v1/jobs/{id}/result", get_job)
    app.router.add_delete("/v1/jobs/{id}", cancel_job)
