"""The Get3W v3 API (``/api/v3``): tasks ("predictions") plus the account endpoints.

Every v3 answer is an envelope ``{code, message, data}``; ``unwrap`` takes it apart, and an
envelope whose ``code`` is not 200 is an error even inside an HTTP 200.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from get3w_cli.errors import RejectedError, UsageError
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

if TYPE_CHECKING:
    from get3w_cli.models import ModelInfo
    from get3w_cli.providers.base import SubmitStream

API = "v3"
PREFIX = "/api/v3"


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
    """Adapter for Get3W's v3 API; also streams submits, lists models, shows the balance and uploads files."""

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

    async def list_models(self, search: str | None = None) -> list[ModelInfo]:
        """GET /api/v3/models, the whole list (the documented endpoint takes no search parameter),
        searched here (id, name or description). Either documented shape (see model_lists)."""
        from get3w_cli.providers.model_lists import get3w_model, matches, parsed  # not for tasks

        reply = await self.client.get(f"{PREFIX}/models")
        data = unwrap(reply, "the model list")
        items = data.get("models", data.get("items")) if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise unexpected("the model list", "no list of models", reply)
        return [model for model in parsed(items, get3w_model) if matches(model, search)]

    @asynccontextmanager
    async def submit_stream(self, model: str, input: Mapping[str, Any]) -> AsyncIterator[SubmitStream]:
        """POST /api/v3/{owner}/{name} with ``"stream": true``: the task's events as they come
        (v3_stream); a provider that answers with the usual envelope instead gives ``answer``."""
        from get3w_cli.providers.v3_stream import V3Stream, answered_task  # only --via stream

        body = {**input, "stream": True}
        async with self.client.post_events(f"{PREFIX}/{model_path(model)}", json=body) as events:
            answer = None
            if events.reply is not None:
                try:
                    answer = answered_task(events.reply.body, model)
                except PayloadError as exc:
                    raise unexpected("the submit", str(exc), events.reply) from exc
            yield V3Stream(events, answer)

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
        """POST /api/v3/files/upload (multipart part ``file``); returns the file's URL.

        The answer's ``data.url`` (Get3W's docs) or ``data.download_url`` (WaveSpeed's). Where
        that path is 404, WaveSpeed's ``/api/v3/media/upload/binary`` is tried once: same form.
        """
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files = {"file": (path.name, content, kind)}
        try:
            reply = await self.client.post(f"{PREFIX}/files/upload", files=files)
        except RejectedError as exc:
            if exc.status != HTTPStatus.NOT_FOUND:
                raise
            reply = await self.client.post(f"{PREFIX}/media/upload/binary", files=files)
        data = unwrap(reply, "the upload")
        url = _uploaded_url(data) if isinstance(data, Mapping) else None
        if url is None:
            raise unexpected("the upload", "no file URL (url or download_url)", reply)
        return url

    def _task(self, reply: Reply, what: str, model: str | None) -> Task:
        data = unwrap(reply, what)
        try:
            return get3w_task(data, api=API, model=model)
        except PayloadError as exc:
            raise unexpected(what, str(exc), reply) from exc


def _uploaded_url(data: Mapping[str, Any]) -> str | None:
    for name in ("url", "download_url"):
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return None

