"""The Get3W v1 API (``/v1/{provider}/{model}/{task}``): bare task objects, sync mode, no cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from get3w_cli.constants import HTTP_SYNC_READ_TIMEOUT
from get3w_cli.errors import UsageError
from get3w_cli.http import ApiClient, Reply
from get3w_cli.names import Provider
from get3w_cli.payloads import PayloadError, get3w_task
from get3w_cli.providers.common import expect_object, id_segment, model_path, unexpected
from get3w_cli.records import Task

API = "v1"


def parse_error(status: int, body: object, text: str) -> tuple[str | None, str, float | None]:
    """ErrorParser for v1 bodies ``{code: <http status>, error: "..."}`` (lenient about ``message``)."""
    if not isinstance(body, Mapping):
        return None, "", None
    message = body.get("error") or body.get("message") or ""
    code: object = body.get("code")
    if isinstance(message, Mapping):
        code, message = message.get("code", code), message.get("message") or ""
    retry_after = body.get("retry_after")
    if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
        retry_after = None
    # The documented ``code`` only repeats the HTTP status; keep it only when it says more.
    return (code if isinstance(code, str) else None), str(message), retry_after


class Get3wV1:
    """Adapter for Get3W's v1 API."""

    provider = Provider.GET3W
    api = API
    can_cancel = False
    has_sync = True
    parse_error = staticmethod(parse_error)

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def submit(
        self, model: str, input: Mapping[str, Any], *, webhook_url: str | None = None, sync: bool = False
    ) -> Task:
        """POST /v1/{provider}/{model}/{task}; ``channel`` stays in the inputs as given.

        With ``webhook_url`` the task is registered for a callback (``?webhook=``) and ``sync``
        is not sent: combining the two is undocumented, and the callback already gives the result.
        """
        params: dict[str, str] = {}
        if webhook_url:
            params["webhook"] = webhook_url
        elif sync:
            params["sync"] = "true"
        reply = await self.client.post(
            f"/v1/{model_path(model)}",
            json=dict(input),
            params=params,
            read_timeout=HTTP_SYNC_READ_TIMEOUT if "sync" in params else None,
        )
        return _task(reply, "the submit", model)

    async def get(self, task_id: str) -> Task:
        reply = await self.client.get(f"/v1/requests/{id_segment(task_id)}")
        return _task(reply, "the status request", None)

    async def cancel(self, task_id: str) -> Task:
        raise UsageError("Get3W v1 has no cancel endpoint", hint=f"the task keeps running; g3w wait {task_id}")


def _task(reply: Reply, what: str, model: str | None) -> Task:
    body = expect_object(reply, what)
    try:
        return get3w_task(body, api=API, model=model)
    except PayloadError as exc:
        raise unexpected(what, str(exc), reply) from exc
