"""Helpers shared by the sandbox's route modules: auth, body parsing, provider-shaped errors."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from get3w_cli.sandbox.shapes import ABSTRAKT, V1, V3, error_body

if TYPE_CHECKING:
    from get3w_cli.sandbox.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("g3w_sandbox_runtime")

# Magic API keys: every other key is accepted.
INVALID_KEY = "sk_invalid"  # 401 "Invalid or revoked API key"
BROKE_KEY = "sk_broke"  # 403 "Insufficient balance" on submits (Abstrakt QUOTA_EXCEEDED)

MISSING_AUTH = "Missing Authorization header"
BAD_AUTH_FORMAT = "Invalid Authorization format, expected: Bearer <api_key>"
REVOKED_KEY = "Invalid or revoked API key"
NO_BALANCE = "Insufficient balance"
_ABSTRAKT_ROOTS = ("models", "jobs")
_V1_RESERVED = ("models", "jobs", "requests")


class ApiReject(Exception):
    """Raised by a handler to answer with ``response`` (the control middleware sends it)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def retry_after_header(seconds: float) -> str:
    # Retry-After takes whole seconds; round up so a client never comes back too early.
    return str(max(0, math.ceil(seconds)))


def error_response(flavor: str, status: int, message: str | None = None, *,
                   code: str | None = None, retry_after: float | None = None) -> web.Response:
    """A provider-shaped JSON error; every 429 (and any ``retry_after``) sets Retry-After."""
    body = error_body(flavor, status, message, code=code, retry_after=retry_after)
    response = web.json_response(body, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after_header(retry_after)
    return response


def reject(flavor: str, status: int, message: str | None = None, *,
           code: str | None = None, retry_after: float | None = None) -> ApiReject:
    return ApiReject(error_response(flavor, status, message, code=code, retry_after=retry_after))


def flavor_for_path(path: str) -> str:
    """Which API's error shape a path speaks."""
    if path.startswith("/api/v3"):
        return V3
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "v1" and parts[1] in _ABSTRAKT_ROOTS:
        return ABSTRAKT
    return V1


def is_submit(method: str, path: str) -> bool:
    """Whether a request is a task submission to any of the three APIs."""
    if method != "POST":
        return False
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v3"]:
        return len(parts) >= 4 and parts[2] not in ("files", "media", "predictions")  # ids of 2+ segments
    if parts[:1] != ["v1"] or len(parts) < 3:
        return False
    if parts[1] == "models":
        return len(parts) >= 4 and parts[-1] == "run"
    return len(parts) >= 4 and parts[1] not in _V1_RESERVED


def authorize(request: web.Request, flavor: str) -> str:
    """The request's API key, or an ApiReject with the API's 401."""
    header = request.headers.get("Authorization")
    if header is None:
        raise reject(flavor, 401, MISSING_AUTH)
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or " " in key:
        raise reject(flavor, 401, BAD_AUTH_FORMAT)
    if key == INVALID_KEY:
        raise reject(flavor, 401, REVOKED_KEY)
    return key


def require_funds(key: str, flavor: str) -> None:
    if key == BROKE_KEY:
        code = "QUOTA_EXCEEDED" if flavor == ABSTRAKT else None
        raise reject(flavor, 403, NO_BALANCE, code=code)


async def read_json_object(request: web.Request, flavor: str) -> dict[str, Any]:
    """The body as a JSON object, or an ApiReject with the API's 400."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise reject(flavor, 400, _bad_input_message(flavor, "the body must be a JSON object"))
    return body


def require_prompt(inputs: object, flavor: str) -> dict[str, Any]:
    """Check the model inputs: a JSON object with a string ``prompt``."""
    if not isinstance(inputs, dict):
        raise reject(flavor, 400, _bad_input_message(flavor, "input must be a JSON object"))
    if not isinstance(inputs.get("prompt"), str):
        raise reject(flavor, 400, _bad_input_message(flavor, "prompt is required (a string)"))
    return inputs


def bad_input(flavor: str, detail: str) -> ApiReject:
    return reject(flavor, 400, _bad_input_message(flavor, detail))


def _bad_input_message(flavor: str, detail: str) -> str:
    # Get3W documents one fixed string for 400; Abstrakt's messages are free text.
    return f"Invalid input: {detail}" if flavor == ABSTRAKT else "Invalid parameters"


