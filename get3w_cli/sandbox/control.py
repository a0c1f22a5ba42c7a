"""The sandbox's control plane: request log, failure injection, admin endpoints.

Every API and CDN request passes through ``control_middleware``, which logs it, answers it
with a pending injection when one matches, turns an ``ApiReject`` or an unrouted path into the
API's error shape, and adds Abstrakt's ``X-RateLimit-*`` headers. Admin endpoints, under
``/_sandbox/`` and never logged nor injected:

- ``GET /_sandbox/requests``: the request log as JSON (bodies decoded as text).
- ``GET /_sandbox/deliveries``: the webhook delivery log as JSON.
- ``POST /_sandbox/inject``: a JSON object with the fields of ``Sandbox.inject()``
  (``body`` as text).
- ``POST /_sandbox/reset``: forget the logs and pending injections (tasks are kept).
- ``POST /_sandbox/expire-outputs``: ``{"id"?: ...}``; the output URLs handed out so far (of
  every task, or of that one) answer 403 from now on; the next GET of a task gives fresh ones.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from get3w_cli.constants import SANDBOX_RATELIMIT_LIMIT, SANDBOX_RATELIMIT_WINDOW
from get3w_cli.sandbox.common import (
    ApiReject,
    error_response,
    flavor_for_path,
    retry_after_header,
    runtime_of,
)
from get3w_cli.sandbox.logs import HeaderDict, LoggedRequest
from get3w_cli.sandbox.shapes import ABSTRAKT

if TYPE_CHECKING:
    from get3w_cli.sandbox.runtime import Runtime

ADMIN_PREFIX = "/_sandbox/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Injection:
    """Answer the next ``count`` matching requests with ``status`` (or drop their connection)."""

    status: int
    count: int = 1
    method: str | None = None
    path_prefix: str | None = None
    retry_after: float | None = None
    body: bytes | None = None
    drop_connection: bool = False

    def __post_init__(self) -> None:
        if not self.drop_connection and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.method is not None:
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )


def take_injection(injections: list[Injection], method: str, path: str) -> Injection | None:
    """Consume one use of the first injection matching this request."""
    for rule in injections:
        if rule.matches(method, path):
            rule.count -= 1
            if rule.count <= 0:
                injections.remove(rule)
            return rule
    return None


def injected_response(rule: Injection, flavor: str, default_retry_after: float) -> web.Response:
    retry_after = rule.retry_after
    if retry_after is None and rule.status == 429:
        retry_after = default_retry_after
    if rule.body is None:
        return error_response(flavor, rule.status, retry_after=retry_after)
    response = web.Response(status=rule.status, body=rule.body, content_type=_guess_type(rule.body))
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after_header(retry_after)
    return response


def _guess_type(body: bytes) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain"
    return "application/json"


@web.middleware
async def control_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    runtime = runtime_of(request)
    body = await request.read()
    runtime.requests.append(LoggedRequest(
        method=request.method, path=request.path, query=dict(request.query),
        headers=HeaderDict(request.headers.items()), body=body, at=runtime.store.now(),
    ))
    flavor = flavor_for_path(request.path)
    rule = take_injection(runtime.injections, request.method, request.path)
    if rule is not None and not rule.drop_connection:
        response: web.StreamResponse = injected_response(rule, flavor, runtime.options.retry_after)
    else:
        response = await _dispatch(request, handler, flavor)
    if rule is not None and rule.drop_connection and request.transport is not None:
        # The work is done (a submit created its task) but the answer is lost: closing the
        # transport makes aiohttp's write fail quietly and the client sees a dropped connection.
        request.transport.close()
    if flavor == ABSTRAKT and "Authorization" in request.headers:
        _add_rate_headers(runtime, request.headers["Authorization"], response)
    if runtime.options.on_request is not None:
        dropped = rule is not None and rule.drop_connection
        runtime.options.on_request(request.method, request.path, None if dropped else response.status)
    return response


async def _dispatch(request: web.Request, handler: Handler, flavor: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiReject as exc:
        return exc.response
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        response = error_response(flavor, exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _add_rate_headers(runtime: Runtime, key: str, response: web.StreamResponse) -> None:
    """Abstrakt's informational rate-limit headers (counted, never enforced)."""
    now = runtime.store.now()
    hits = runtime.rate_hits.setdefault(key, deque())
    while hits and hits[0] <= now - SANDBOX_RATELIMIT_WINDOW:
        hits.popleft()
    hits.append(now)
    reset = time.time() + SANDBOX_RATELIMIT_WINDOW - (now - hits[0])
    response.headers["X-RateLimit-Limit"] = str(SANDBOX_RATELIMIT_LIMIT)
    response.headers["X-RateLimit-Remaining"] = str(max(0, SANDBOX_RATELIMIT_LIMIT - len(hits)))
    response.headers["X-RateLimit-Reset"] = str(int(reset))


def injection_from_json(data: Any) -> Injection:
    """Build an Injection from the admin endpoint's JSON (``body`` given as text)."""
    if not isinstance(data, dict) or not isinstance(data.get("status", 0), int):
        raise ValueError("expected a JSON object with an integer status")
    fields = {"status", "count", "method", "path_prefix", "retry_after", "body", "drop_connection"}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    body = data.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("body must be a string")
    return Injection(
        status=int(data.get("status", 0)),
        count=int(data.get("count", 1)),
        method=data.get("method"),
        path_prefix=data.get("path_prefix"),
        retry_after=None if data.get("retry_after") is None else float(data["retry_after"]),
        body=None if body is None else body.encode(),
        drop_connection=bool(data.get("drop_connection", False)),
    )


async def _admin_requests(request: web.Request) -> web.Response:
    return web.json_response([r.as_json() for r in runtime_of(request).requests])


async def _admin_deliveries(request: web.Request) -> web.Response:
    return web.json_response([d.as_json() for d in runtime_of(request).deliveries])


async def _admin_inject(request: web.Request) -> web.Response:
    try:
        rule = injection_from_json(json.loads(await request.read() or b"null"))
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    runtime_of(request).injections.append(rule)
    return web.json_response({"ok": True})


async def _admin_reset(request: web.Request) -> web.Response:
    runtime_of(request).reset()
    return web.json_response({"ok": True})


async def _admin_expire(request: web.Request) -> web.Response:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    task_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(task_id, (str, type(None))):
        return web.json_response({"error": "expected a JSON object with an optional string id"}, status=400)
    return web.json_response({"expired": runtime_of(request).store.expire_urls(task_id)})


def add_routes(app: web.Application) -> None:
    app.router.add_get(ADMIN_PREFIX + "requests", _admin_requests)
    app.router.add_get(ADMIN_PREFIX + "deliveries", _admin_deliveries)
    app.router.add_post(ADMIN_PREFIX + "inject", _admin_inject)
    app.router.add_post(ADMIN_PREFIX + "reset", _admin_reset)
    app.router.add_post(ADMIN_PREFIX + "expire-outputs", _admin_expire)
