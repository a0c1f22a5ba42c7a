"""The Abstrakt API (``/v1/models/{model}/run``, ``/v1/jobs/{id}``): flat job objects.

A run answers 200 when the job finished within the sync window and 202 while it still runs;
both carry the job, so both are parsed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from get3w_cli.constants import ABSTRAKT_MODELS_LIMIT, HTTP_SYNC_READ_TIMEOUT
from get3w_cli.http import ApiClient, Reply
from get3w_cli.names import Provider
from get3w_cli.payloads import PayloadError, abstrakt_job
from get3w_cli.providers.base import AccountRows
from get3w_cli.providers.common import (
    expect_object,
    id_segment,
    model_path,
    table,
    unexpected,
)
from get3w_cli.records import Task

API = "v1"
MODEL_COLUMNS = ("id", "name", "category", "provider", "status", "description")


def parse_error(status: int, body: object, text: str) -> tuple[str | None, str, float | None]:
    """ErrorParser for ``{"error": {"code", "message", "details"?, "retry_after"?}}``."""
    if not isinstance(body, Mapping):
        return None, "", None
    error = body.get("error")
    if not isinstance(error, Mapping):
        return None, str(error or body.get("message") or ""), None
    code = error.get("code")
    retry_after = error.get("retry_after")
    if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
        retry_after = None
    message = str(error.get("message") or "")
    if isinstance(code, str) and code and code not in message:
        message = f"{code}: {message}" if message else code
    return (str(code) if code else None), message, retry_after


class Abstrakt:
    """Adapter for Abstrakt's API; also lists models."""

    provider = Provider.ABSTRAKT
    api = API
    can_cancel = True
    has_sync = True
    parse_error = staticmethod(parse_error)

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def submit(
        self, model: str, input: Mapping[str, Any], *, webhook_url: str | None = None, sync: bool = False
    ) -> Task:
        """POST /v1/models/{model}/run; a webhook makes the run asynchronous."""
        sync = sync and not webhook_url
        body: dict[str, Any] = {"input": dict(input), "sync": sync}
        if webhook_url:
            body["webhook_url"] = webhook_url
        reply = await self.client.post(
            f"/v1/models/{model_path(model)}/run",
            json=body,
            read_timeout=HTTP_SYNC_READ_TIMEOUT if sync else None,
        )
        return _job(reply, "the run", model)

    async def get(self, task_id: str) -> Task:
        reply = await self.client.get(f"/v1/jobs/{id_segment(task_id)}")
        return _job(reply, "the job request", None)

    async def cancel(self, task_id: str) -> Task:
        reply = await self.client.delete(f"/v1/jobs/{id_segment(task_id)}")
        return _job(reply, "the cancel", None)

    async def list_models(self, search: str | None = None) -> AccountRows:
        """GET /v1/models (the first ABSTRAKT_MODELS_LIMIT), searched by the provider."""
        params = {"limit": str(ABSTRAKT_MODELS_LIMIT)}
        if search:
            params["search"] = search
        reply = await self.client.get("/v1/models", params=params)
        body = expect_object(reply, "the model list")
        items = body.get("models")
        if not isinstance(items, list):
            raise unexpected("the model list", "no list of models", reply)
        return table(items, MODEL_COLUMNS, items)


    async def check_key(self) -> str:
        """GET /v1/models?limit=1: the cheapest authenticated request (Abstrakt has no balance endpoint)."""
        expect_object(await self.client.get("/v1/models", params={"limit": "1"}), "the model list")
        return "key accepted"


def _job(reply: Reply, what: str, model: str | None) -> Task:
    body = expect_object(reply, what)
    try:
        return abstrakt_job(body, model=model)
    except PayloadError as exc:
        raise unexpected(what, str(exc), reply) from exc
