"""Get3W v3 account routes: models, balance, usage, billings and file upload.

Usage and billings are computed from the v3 tasks this sandbox ran, priced from the catalogue,
on top of one opening top-up, so their shapes (api/get3w.md 4.9, 4.10) carry real numbers.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aiohttp import web

from get3w_cli.constants import SANDBOX_BALANCE_USD
from get3w_cli.sandbox.catalogue import GET3W_V3_MODELS, matches
from get3w_cli.sandbox.common import BROKE_KEY, authorize, bad_input, reject, runtime_of
from get3w_cli.sandbox.shapes import V3, envelope
from get3w_cli.sandbox.state import Phase

DEFAULT_PER_PAGE = 20
_SAFE_NAME = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


async def models(request: web.Request) -> web.Response:
    """GET /api/v3/models[?search=TEXT], in the shape ``SandboxOptions.models_shape`` names."""
    authorize(request, V3)
    search = request.query.get("search")
    shape = runtime_of(request).options.models_shape
    listed = [m.get3w_listing(shape) for m in GET3W_V3_MODELS.values() if matches(m, search)]
    return web.json_response(envelope(listed))


async def balance(request: web.Request) -> web.Response:
    """GET /api/v3/balance"""
    key = authorize(request, V3)
    amount = 0.0 if key == BROKE_KEY else SANDBOX_BALANCE_USD
    return web.json_response(envelope({"balance": amount, "currency": "USD"}))


def _finished_v3(request: web.Request) -> list[Any]:
    runtime = runtime_of(request)
    now = runtime.store.now()
    return [t for t in runtime.store.tasks.values()
            if t.api == V3 and t.phase(now) is Phase.COMPLETED]


async def usage(request: web.Request) -> web.Response:
    """GET /api/v3/usage[?period=YYYY-MM][&start_date=..&end_date=..]"""
    authorize(request, V3)
    period = request.query.get("period") or datetime.now(timezone.utc).strftime("%Y-%m")
    breakdown: dict[str, dict[str, Any]] = {}
    for task in _finished_v3(request):
        model = GET3W_V3_MODELS[task.model]
        row = breakdown.setdefault(model.kind, {"tasks": 0, "cost": 0.0})
        row["tasks"] += 1
        row["cost"] = round(row["cost"] + model.price, 6)
    total_cost = round(sum(r["cost"] for r in breakdown.values()), 6)
    total_tasks = sum(r["tasks"] for r in breakdown.values())
    data = {"total_tasks": total_tasks, "total_cost": total_cost, "period": period,
            "breakdown": breakdown}
    return web.json_response(envelope(data))


def _billing_records(request: web.Request) -> list[dict[str, Any]]:
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    balance_after = SANDBOX_BALANCE_USD
    records: list[dict[str, Any]] = [{"id": "bill_001", "date": today, "type": "top-up",
                                      "amount": SANDBOX_BALANCE_USD, "balance_after": balance_after}]
    for task in _finished_v3(request):
        price = GET3W_V3_MODELS[task.model].price
        balance_after = round(balance_after - price, 6)
        records.append({"id": f"bill_{len(records) + 1:03d}",
                        "date": task.created_wall.strftime("%Y-%m-%d"), "type": "usage",
                        "amount": -price, "model": task.model, "task_id": task.id,
                        "balance_after": balance_after})
    return records


async def billings(request: web.Request) -> web.Response:
    """GET /api/v3/billings[?page=N][&per_page=N][&type=top-up|usage]"""
    authorize(request, V3)
    try:
        page = int(request.query.get("page", "1"))
        per_page = int(request.query.get("per_page", str(DEFAULT_PER_PAGE)))
    except ValueError as exc:
        raise bad_input(V3, "page and per_page must be integers") from exc
    if page < 1 or per_page < 1:
        raise bad_input(V3, "page and per_page must be positive")
    kind = request.query.get("type")
    records = [r for r in _billing_records(request) if kind is None or r["type"] == kind]
    start = (page - 1) * per_page
    data = {"records": records[start:start + per_page], "total": len(records),
            "page": page, "per_page": per_page}
    return web.json_response(envelope(data))


def _file_part(content_type: str, body: bytes) -> tuple[str, bytes, str] | None:
    """The ``file`` part of a multipart/form-data body: (filename, bytes, content type)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            name = part.get_filename() or "upload.bin"
            return name, payload if isinstance(payload, bytes) else b"", part.get_content_type()
    return None


async def _store_upload(request: web.Request) -> str:
    """Keep the ``file`` part of a multipart upload; its URL on the sandbox's CDN."""
    runtime = runtime_of(request)
    authorize(request, V3)
    found = _file_part(request.headers.get("Content-Type", ""), await request.read())
    if found is None:
        raise bad_input(V3, "a multipart part named file is required")
    filename, data, content_type = found
    safe = "".join(c if c in _SAFE_NAME else "_" for c in filename.rsplit("/", 1)[-1])
    name = f"{secrets.token_hex(6)}_{safe}"
    runtime.uploads[name] = (data, content_type)
    return f"{runtime.base_url}/cdn/uploads/{name}"


async def upload(request: web.Request) -> web.Response:
    """POST /api/v3/files/upload (multipart, part ``file``) -> data.url (or data.download_url,
    or 404 as on WaveSpeed, by ``SandboxOptions.upload_answer``)."""
    answer = runtime_of(request).options.upload_answer
    if answer == "wavespeed":
        raise reject(V3, 404, "Not found")
    field = "download_url" if answer == "download_url" else "url"
    return web.json_response(envelope({field: await _store_upload(request)}))


async def media_upload(request: web.Request) -> web.Response:
    """POST /api/v3/media/upload/binary (WaveSpeed's upload, multipart ``file``) -> data.download_url"""
    return web.json_response(envelope({"download_url": await _store_upload(request)}))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v3/models", models)
    app.router.add_get("/api/v3/balance", balance)
    app.router.add_get("/api/v3/usage", usage)
    app.router.add_get("/api/v3/billings", billings)
    app.router.add_post("/api/v3/files/upload", upload)
    app.router.add_post("/api/v3/media/upload/binary", media_upload)
