"""The Get3W v3 API (``/api/v3``): tasks ("predictions") plus the account endpoints.

Every v3 answer is an envelope ``{code, message, data}``; ``unwrap`` takes it apart, and an
envelope whose ``code`` is not 200 is an error even inside an HTTP 200.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from get3w_cli.errors import UsageError
from get3w_cli.http import ApiClient, Reply, error_for_status
from get3w_cli.names import FACTS, Provider
from get3w_cli.payloads import PayloadError, get3w_task
from get3w_cli.providers.base import AccountRows
from get3w_cli.providers.common import (
    expect_object,
    id_segment,
    model_path,
    table,
    unexpected,
)
from get3w_cli.records import Task

API = "v3"
PREFIX = "/api/v3"
MODEL_COLUMNS = ("id", "name", "type", "description", "price")


def parse_error(status: int, body: object, text: str) -> tuple[str | None, str, float | None]:
    """ErrorParser for v3 bodies ``{code, message, data: null}`` (lenient about ``error``)."""
    if not isinstance(body, Mapping):
        return None, "", None
    message = body.get("message") or body.get("error") or ""
    if isinstance(message, Mapping):
        message = message.get("message") or ""
    code = body.get("code")
    return (code if isinstance(code, str) else None), str(message), _seconds(body.get("retry_after"))


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def unwrap(reply: Reply, what: str) -> Any:
    """The envelope's ``data``; an envelope code other than 200 raises like that HTTP status."""
    body = expect_object(reply, what)
    if "code" not in body or "data" not in body:
        return body  # tolerate a bare object: the docs' examples are not all enveloped
    code = body.get("code")
    status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 0
    if 200 <= status < 300:
        return body["data"]
    message = str(body.get("message") or "request failed")
    # A code that is no HTTP error status is the provider misbehaving: report it as transient.
    status = status if 400 <= status < 600 else 502
    raise error_for_status(status, f"Get3W answered code {code}: {message}", details=body,
                           about=FACTS[Provider.GET3W])


class Get3wV3:
    """Adapter for Get3W's v3 API; also lists models, shows the balance and uploads files."""

    provider = Provider.GET3W
    api = API
    can_cancel = True
    has_sync = False
    parse_error = staticmethod(parse_error)

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def submit(
        self, model: str, input: Mapping[str, Any], *, webhook_url: str | None = None, sync: bool = False
    ) -> Task:
        """POST /api/v3/{owner}/{name}; v3 has no sync mode, so ``sync`` is ignored."""
        body = dict(input)
        if webhook_url:
            body["webhook_url"] = webhook_url
        reply = await self.client.post(f"{PREFIX}/{model_path(model)}", json=body)
        return self._task(reply, "the submit", model)

    async def get(self, task_id: str) -> Task:
        reply = await self.client.get(f"{PREFIX}/predictions/{id_segment(task_id)}")
        return self._task(reply, "the status request", None)

    async def cancel(self, task_id: str) -> Task:
        """DELETE the prediction; its ``deleted`` answer becomes a cancelled Task."""
        reply = await self.client.delete(f"{PREFIX}/predictions/{id_segment(task_id)}")
        return self._task(reply, "the delete", None)

    async def list_models(self, search: str | None = None) -> AccountRows:
        """GET /api/v3/models?search=; filtered here too (id, name or description), as the
        documented endpoint takes no search parameter."""
        reply = await self.client.get(f"{PREFIX}/models", params={"search": search} if search else None)
        data = unwrap(reply, "the model list")
        items = data.get("models", data.get("items")) if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise unexpected("the model list", "no list of models", reply)
        if search:
            needle = search.lower()
            items = [m for m in items if isinstance(m, Mapping) and _matches(m, needle)]
        return table(items, MODEL_COLUMNS, items)

    async def balance(self) -> AccountRows:
        """GET /api/v3/balance as one row (columns are the provider's field names)."""
        reply = await self.client.get(f"{PREFIX}/balance")
        data = unwrap(reply, "the balance request")
        if not isinstance(data, Mapping):
            raise unexpected("the balance request", "no balance object", reply)
        return table([data], tuple(data), data)

    async def check_key(self) -> str:
        """GET /api/v3/balance: the cheapest authenticated request."""
        data = (await self.balance()).raw
        amount = data.get("balance") if isinstance(data, Mapping) else None
        currency = data.get("currency", "USD") if isinstance(data, Mapping) else ""
        return f"key accepted; balance {amount} {currency}".rstrip() if amount is not None else "key accepted"

    async def upload(self, path: Path) -> str:
        """POST /api/v3/files/upload (multipart part ``file``); returns the file's URL."""
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        reply = await self.client.post(f"{PREFIX}/files/upload", files={"file": (path.name, content, kind)})
        data = unwrap(reply, "the upload")
        url = data.get("url") if isinstance(data, Mapping) else None
        if not isinstance(url, str) or not url:
            raise unexpected("the upload", "no file URL", reply)
        return url

    def _task(self, reply: Reply, what: str, model: str | None) -> Task:
        data = unwrap(reply, what)
        try:
            return get3w_task(data, api=API, model=model)
        except PayloadError as exc:
            raise unexpected(what, str(exc), reply) from exc


def _matches(model: Mapping[str, Any], needle: str) -> bool:
    return any(needle in str(model.get(name) or "").lower() for name in ("id", "name", "description"))
