"""The Abstrakt API (``/v1/models/{model}/run``, ``/v1/jobs/{id}``): flat job objects.

A run answers 200 when the job finished within the sync window and 202 while it still runs;
both carry the job, so both are parsed the same way. The two docs generations ask for an
asynchronous run differently (newer ``"sync": false``, older ``"async": true``, the older being
synchronous by default), so a run that is not ``--via sync`` sends both: under either, the POST
returns at once instead of holding the connection while the model works. The cancel answer's
body is undocumented: any 2xx is accepted and the job is read back with a GET. The model list
is paged (``offset``/``limit``/``total``): every page is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from get3w_cli.constants import ABSTRAKT_MODELS_LIMIT, ABSTRAKT_MODELS_MAX_PAGES, HTTP_SYNC_READ_TIMEOUT
from get3w_cli.errors import NetworkError, RejectedError, TransientError
from get3w_cli.http import ApiClient, Reply
from get3w_cli.names import Provider
from get3w_cli.payloads import PayloadError, abstrakt_job
from get3w_cli.providers.common import (
    expect_object,
    id_segment,
    model_path,
    unexpected,
)
from get3w_cli.records import Status, Task

if TYPE_CHECKING:
    from get3w_cli.models import ModelInfo

API = "v1"


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
    """Adapter for Abstrakt's API; also lists and describes models."""

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
        if not sync:
            body["async"] = True  # the older docs' switch: their runs are synchronous by default
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
        """DELETE /v1/jobs/{id}, then the job as a GET reads it.

        Any 2xx is a cancel that worked, whatever its body (none, a job, something else); a
        refusal (409 for a finished job, 404) raises as usual. When the confirming GET fails,
        the DELETE's own job is used if it sent one, else the job is taken as cancelled, as the
        docs say a DELETE does to a pending or processing job.
        """
        reply = await self.client.delete(f"/v1/jobs/{id_segment(task_id)}")
        try:
            return await self.get(task_id)
        except (TransientError, NetworkError, RejectedError):
            return _cancel_answer(reply, task_id)

    async def list_models(self, search: str | None = None) -> list[ModelInfo]:
        """GET /v1/models, every page, searched by the provider."""
        from get3w_cli.providers.model_lists import abstrakt_model, parsed  # not for tasks

        return parsed(await self._every_model(search), abstrakt_model)

    async def describe_model(self, model: str) -> ModelInfo:
        """GET /v1/models/{id}: the model with its ``input_schema``."""
        from get3w_cli.providers.model_lists import abstrakt_model  # not for tasks

        reply = await self.client.get(f"/v1/models/{model_path(model)}")
        found = abstrakt_model(expect_object(reply, "the model request"))
        if found is None:
            raise unexpected("the model request", "no model id", reply)
        return found

    async def check_key(self) -> str:
        """GET /v1/models?limit=1: the cheapest authenticated request (Abstrakt has no balance endpoint)."""
        expect_object(await self.client.get("/v1/models", params={"limit": "1"}), "the model list")
        return "key accepted"

    async def _every_model(self, search: str | None) -> list[object]:
        """Page after page (``offset`` += what came) until ``total`` is reached or a page is short
        or empty; a page with nothing new (a server ignoring ``offset``) ends it too."""
        models: list[object] = []
        seen: set[str] = set()
        offset = 0
        for _ in range(ABSTRAKT_MODELS_MAX_PAGES):
            params = {"limit": str(ABSTRAKT_MODELS_LIMIT), "offset": str(offset)}
            if search:
                params["search"] = search
            reply = await self.client.get("/v1/models", params=params)
            body = expect_object(reply, "the model list")
            page = body.get("models")
            if not isinstance(page, list):
                raise unexpected("the model list", "no list of models", reply)
            fresh = [item for item in page if _first_time(item, seen)]
            models.extend(fresh)
            offset += len(page)
            total, size = _count(body.get("total")), _count(body.get("limit")) or ABSTRAKT_MODELS_LIMIT
            if not fresh or (offset >= total if total is not None else len(page) < size):
                break
        return models


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _first_time(item: object, seen: set[str]) -> bool:
    """Whether a listed model is new to this listing (models without an id always are)."""
    model_id = item.get("id") if isinstance(item, Mapping) else None
    if not isinstance(model_id, str):
        return True
    if model_id in seen:
        return False
    seen.add(model_id)
    return True


def _cancel_answer(reply: Reply, task_id: str) -> Task:
    """The job a cancel's 2xx answer names, or a cancelled job when it names none."""
    if isinstance(reply.body, Mapping):
        try:
            return abstrakt_job(reply.body)
        except PayloadError:
            pass
    raw = dict(reply.body) if isinstance(reply.body, Mapping) else {}
    return Task(id=task_id, provider=Provider.ABSTRAKT, api=API, model="", status=Status.CANCELLED, raw=raw)



def _job(reply: Reply, what: str, model: str | None) -> Task:
    body = expect_object(reply, what)
    try:
        return abstrakt_job(body, model=model)
    except PayloadError as exc:
        raise unexpected(what, str(exc), reply) from exc
