"""The provider adapters (Get3W v3, Get3W v1, Abstrakt) against the real sandbox on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from get3w_cli.errors import (
    AuthError,
    RejectedError,
    SubmitUnknownError,
    TransientError,
    UsageError,
)
from get3w_cli.http import HttpSession
from get3w_cli.names import FACTS, Provider
from get3w_cli.providers import (
    Account,
    Adapter,
    ModelLister,
    abstrakt,
    default_base_url,
    get3w_v1,
    get3w_v3,
    make_adapter,
    open_adapter,
    resolve_route,
)
from get3w_cli.providers.common import id_segment
from get3w_cli.records import Status, Task
from get3w_cli.sandbox import Sandbox, SandboxOptions

V3_MODEL = "flux-dev"
V1_MODEL = "google/nano-banana-pro/text-to-image"
AB_MODEL = "abstrakt:fal-ai/flux/schnell"
HOOK = "https://hooks.example/cb/tok123?a=1&b=two words"
NO_HOOK_DELIVERY = {"sandbox_webhook": "drop"}  # the hook host does not exist; don't try it
LONG = {"sandbox_duration": 30}


class FakeSleep:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@asynccontextmanager
async def adapter_for(
    model: str, *, key: str = "sk_test_ok", sleep: FakeSleep | None = None
) -> AsyncIterator[tuple[Sandbox, Any, str]]:
    """A sandbox, and the adapter the model routes to, pointed at it."""
    route = resolve_route(model)
    async with Sandbox(SandboxOptions(duration=0.05)) as sb, HttpSession(sleep=sleep or FakeSleep()) as http:
        yield sb, open_adapter(http, route, api_key=key, base_url=sb.base_url), route.model


async def settle(adapter: Any, task_id: str) -> Task:
    """Poll until the task is terminal (the sandbox's tasks take 0.05 s)."""
    for _ in range(100):
        task = await adapter.get(task_id)
        if task.status.terminal:
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish")


def body_of(request: Any) -> dict[str, Any]:
    return json.loads(request.body)


# --- Get3W v3 ------------------------------------------------------------------------------


def test_v3_submit_then_get_completes() -> None:
    """v3 submit answers created; polling reaches completed with the PNG output URL."""

    async def main() -> None:
        async with adapter_for(V3_MODEL) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "a cat"})
            assert (task.status, task.model, task.api) == (Status.CREATED, "get3w/flux-dev", "v3")
            assert task.provider == "get3w"
            done = await settle(adapter, task.id)
            assert done.status is Status.COMPLETED and done.id == task.id
            assert len(done.outputs) == 1 and done.outputs[0].startswith(sb.base_url + "/cdn/")
            submit = sb.submissions()[0]
            assert submit.path == "/api/v3/get3w/flux-dev" and body_of(submit) == {"prompt": "a cat"}
            assert submit.headers["Authorization"] == "Bearer sk_test_ok"
            assert sb.requests[-1].path == f"/api/v3/predictions/{task.id}"

    asyncio.run(main())


def test_v3_webhook_goes_in_the_body() -> None:
    """v3 registers the callback as the body field webhook_url."""

    async def main() -> None:
        async with adapter_for(V3_MODEL) as (sb, adapter, model):
            await adapter.submit(model, {"prompt": "a cat", **NO_HOOK_DELIVERY}, webhook_url=HOOK, sync=True)
            submit = sb.submissions()[0]
            assert body_of(submit)["webhook_url"] == HOOK and submit.query == {}

    asyncio.run(main())


def test_v3_cancel_deletes_and_reads_cancelled() -> None:
    """DELETE on a running v3 task gives a cancelled Task, and later polls agree."""

    async def main() -> None:
        async with adapter_for(V3_MODEL) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "slow", **LONG})
            cancelled = await adapter.cancel(task.id)
            assert (cancelled.id, cancelled.status) == (task.id, Status.CANCELLED)
            assert sb.requests[-1].method == "DELETE"
            assert (await adapter.get(task.id)).status is Status.CANCELLED

    asyncio.run(main())


def test_v3_failed_task_carries_its_error() -> None:
    """A task the provider fails is reported failed with the provider's message."""

    async def main() -> None:
        async with adapter_for(V3_MODEL) as (_sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "x", "sandbox_fail": "NSFW filter"})
            done = await settle(adapter, task.id)
            assert done.status is Status.FAILED and done.error is not None
            assert done.error.message == "NSFW filter" and done.outputs == ()

    asyncio.run(main())


def test_v3_envelope_error_inside_http_200_raises() -> None:
    """A v3 envelope whose code is not 200 is an error even when the HTTP status is 200."""

    async def main() -> None:
        async with adapter_for(V3_MODEL) as (sb, adapter, _model):
            sb.inject(status=200, method="GET", body=b'{"code": 401, "message": "Invalid key", "data": null}')
            with pytest.raises(AuthError) as info:
                await adapter.get("pred_x")
            assert "Invalid key" in str(info.value)

    asyncio.run(main())


def test_unexpected_success_bodies_are_clean_errors() -> None:
    """A 200 that is not JSON, or JSON without a task, becomes a TransientError, never a KeyError."""

    async def main() -> None:
        async with adapter_for(V3_MODEL) as (sb, adapter, _model):
            sb.inject(status=200, method="GET", body=b"<html>maintenance</html>")
            with pytest.raises(TransientError, match=r"unexpected answer.*non-JSON"):
                await adapter.get("pred_x")
            sb.inject(status=200, method="GET", body=b'{"code": 200, "message": "success", "data": {"x": 1}}')
            with pytest.raises(TransientError, match="no id"):
                await adapter.get("pred_x")

    asyncio.run(main())


def test_v3_account_operations(tmp_path: Path) -> None:
    """Models, balance and upload work on v3; the uploaded file downloads without the key."""
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")

    async def main() -> None:
        async with Sandbox(SandboxOptions(duration=0.05)) as sb, HttpSession() as http:
            adapter = open_adapter(http, resolve_route(V3_MODEL), api_key="sk_test_ok", base_url=sb.base_url)
            assert isinstance(adapter, Account) and isinstance(adapter, ModelLister)
            [model] = await adapter.list_models("schnell")
            assert (model.id, model.run, model.type, model.price_text()) == (
                "get3w/flux-schnell", "get3w/flux-schnell", "text-to-image", "$0.003/run")
            balance = await adapter.balance()
            assert balance.columns == ("balance", "currency") and balance.rows[0][1] == "USD"
            url = await adapter.upload(image)
            assert url.startswith(sb.base_url)
            await http.download(url, tmp_path / "back.part")
            assert (tmp_path / "back.part").read_bytes() == image.read_bytes()
            assert "authorization" not in sb.requests[-1].headers
            sent = len(sb.requests)
            with pytest.raises(UsageError):
                await adapter.upload(tmp_path / "missing.png")
            assert len(sb.requests) == sent

    asyncio.run(main())


# --- Get3W v1 ------------------------------------------------------------------------------


def test_v1_submit_with_webhook_query_then_get() -> None:
    """v1 puts the callback URL in ?webhook= (URL-encoded) and keeps channel in the body."""

    async def main() -> None:
        async with adapter_for(V1_MODEL) as (sb, adapter, model):
            inputs = {"prompt": "a cat", "channel": "economy", **NO_HOOK_DELIVERY}
            task = await adapter.submit(model, inputs, webhook_url=HOOK)
            assert (task.status, task.api, task.model) == (Status.CREATED, "v1", V1_MODEL)
            assert task.estimated_duration is not None
            submit = sb.submissions()[0]
            assert submit.path == f"/v1/{V1_MODEL}" and submit.query == {"webhook": HOOK}
            assert body_of(submit) == inputs
            done = await settle(adapter, task.id)
            assert done.status is Status.COMPLETED and done.outputs
            assert sb.requests[-1].path == f"/v1/requests/{task.id}"

    asyncio.run(main())


def test_v1_sync_returns_the_finished_task() -> None:
    """v1 sync mode sends ?sync=true and the answer is already completed."""

    async def main() -> None:
        async with adapter_for(V1_MODEL) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "a cat"}, sync=True)
            assert task.status is Status.COMPLETED and task.outputs
            assert sb.submissions()[0].query == {"sync": "true"}
            assert adapter.has_sync and not adapter.can_cancel

    asyncio.run(main())


def test_v1_cancel_is_a_usage_error_before_sending() -> None:
    """Get3W v1 has no cancel endpoint: UsageError (exit 2) and no request."""

    async def main() -> None:
        async with adapter_for(V1_MODEL) as (sb, adapter, _model):
            with pytest.raises(UsageError, match="no cancel endpoint") as info:
                await adapter.cancel("abc")
            assert info.value.exit_code == 2 and sb.requests == []

    asyncio.run(main())


# --- Abstrakt ------------------------------------------------------------------------------


def test_abstrakt_sync_run_answers_200_completed() -> None:
    """A sync run that finishes in time is a 200 with the finished job; slashes stay raw."""

    async def main() -> None:
        async with adapter_for(AB_MODEL) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "a cat"}, sync=True)
            assert (task.status, task.provider, task.model) == (Status.COMPLETED, "abstrakt", "fal-ai/flux/schnell")
            assert task.outputs and task.outputs[0].startswith(sb.base_url)
            submit = sb.submissions()[0]
            assert submit.path == "/v1/models/fal-ai/flux/schnell/run"
            assert body_of(submit) == {"input": {"prompt": "a cat"}, "sync": True}

    asyncio.run(main())


def test_abstrakt_async_run_answers_202_then_polls() -> None:
    """An async run is a 202 with the job still going; GET /v1/jobs/{id} finishes it."""

    async def main() -> None:
        async with adapter_for(AB_MODEL) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "a cat"})
            assert not task.status.terminal and body_of(sb.submissions()[0])["sync"] is False
            done = await settle(adapter, task.id)
            assert done.status is Status.COMPLETED and done.outputs
            assert sb.requests[-1].path == f"/v1/jobs/{task.id}"

    asyncio.run(main())


def test_abstrakt_webhook_forces_async() -> None:
    """With a webhook, Abstrakt gets webhook_url in the body and sync false, even if sync was asked."""

    async def main() -> None:
        async with adapter_for(AB_MODEL) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "a", **NO_HOOK_DELIVERY}, webhook_url=HOOK, sync=True)
            body = body_of(sb.submissions()[0])
            assert body["webhook_url"] == HOOK and body["sync"] is False
            assert not task.status.terminal

    asyncio.run(main())


def test_abstrakt_cancel_running_and_finished() -> None:
    """Cancelling a running job gives cancelled; a finished one is rejected (409, exit 5)."""

    async def main() -> None:
        async with adapter_for(AB_MODEL) as (_sb, adapter, model):
            slow = await adapter.submit(model, {"prompt": "slow", **LONG})
            assert (await adapter.cancel(slow.id)).status is Status.CANCELLED
            fast = await adapter.submit(model, {"prompt": "fast"}, sync=True)
            with pytest.raises(RejectedError) as info:
                await adapter.cancel(fast.id)
            assert info.value.status == 409 and info.value.code == "JOB_NOT_CANCELLABLE"

    asyncio.run(main())


def test_abstrakt_list_models_searches() -> None:
    """Abstrakt's model list is searched by the provider and comes back as typed models."""

    async def main() -> None:
        async with adapter_for(AB_MODEL) as (sb, adapter, _model):
            assert isinstance(adapter, ModelLister) and not isinstance(adapter, Account)
            [model] = await adapter.list_models("dev")
            assert (model.id, model.run, model.price_text()) == ("fal-ai/flux/dev", "abstrakt:fal-ai/flux/dev",
                                                                 "3 credits/run")
            assert sb.requests[-1].query["search"] == "dev"

    asyncio.run(main())


# --- errors, per API -----------------------------------------------------------------------

ALL_MODELS = [V3_MODEL, V1_MODEL, AB_MODEL]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_invalid_key_is_auth_error(model: str) -> None:
    """A revoked key (401) is an AuthError, exit 3, with the provider's message."""

    async def main() -> None:
        async with adapter_for(model, key="sk_invalid") as (sb, adapter, route_model):
            with pytest.raises(AuthError) as info:
                await adapter.submit(route_model, {"prompt": "x"})
            assert info.value.status == 401 and info.value.exit_code == 3
            assert "Invalid or revoked API key" in str(info.value) and len(sb.requests) == 1

    asyncio.run(main())


@pytest.mark.parametrize("model", ALL_MODELS)
def test_broke_key_is_auth_error(model: str) -> None:
    """An account without balance (403) is an AuthError, exit 3."""

    async def main() -> None:
        async with adapter_for(model, key="sk_broke") as (_sb, adapter, route_model):
            with pytest.raises(AuthError) as info:
                await adapter.submit(route_model, {"prompt": "x"})
            assert info.value.status == 403 and "Insufficient balance" in str(info.value)

    asyncio.run(main())


@pytest.mark.parametrize("model", ["get3w/no-such-model", "acme/none/text-to-image", "abstrakt:no/such"])
def test_unknown_model_is_rejected(model: str) -> None:
    """An unknown model (404) is a RejectedError, exit 5, sent once."""

    async def main() -> None:
        async with adapter_for(model) as (sb, adapter, route_model):
            with pytest.raises(RejectedError) as info:
                await adapter.submit(route_model, {"prompt": "x"})
            assert info.value.status == 404 and info.value.exit_code == 5 and len(sb.requests) == 1

    asyncio.run(main())


@pytest.mark.parametrize("model", ALL_MODELS)
def test_submit_429_is_retried_once_and_creates_one_task(model: str) -> None:
    """A 429 on submit is waited out and sent again; exactly one task results."""

    async def main() -> None:
        sleep = FakeSleep()
        async with adapter_for(model, sleep=sleep) as (sb, adapter, route_model):
            sb.inject(status=429, count=1, method="POST", retry_after=0.01)
            task = await adapter.submit(route_model, {"prompt": "x"}, sync=True)
            assert len(sb.submissions()) == 2 and len(sleep.delays) == 1
            assert (await settle(adapter, task.id)).status is Status.COMPLETED
            assert len({r.path for r in sb.requests if r.method == "GET"}) == 1

    asyncio.run(main())


def test_abstrakt_429_waits_the_body_retry_after() -> None:
    """Abstrakt's error.retry_after is the wait used, not the rounded-up header."""

    async def main() -> None:
        sleep = FakeSleep()
        async with adapter_for(AB_MODEL, sleep=sleep) as (sb, adapter, model):
            sb.inject(status=429, count=1, method="POST", retry_after=0.25)
            await adapter.submit(model, {"prompt": "x"})
            assert sleep.delays == [0.25]

    asyncio.run(main())


@pytest.mark.parametrize("model", ALL_MODELS)
def test_dropped_submit_is_never_resent(model: str) -> None:
    """A submit whose answer is lost raises SubmitUnknownError after exactly one POST."""

    async def main() -> None:
        async with adapter_for(model) as (sb, adapter, route_model):
            sb.inject(status=200, method="POST", drop_connection=True)
            with pytest.raises(SubmitUnknownError):
                await adapter.submit(route_model, {"prompt": "x"})
            assert len(sb.submissions()) == 1

    asyncio.run(main())


def test_poll_503_is_retried() -> None:
    """A 503 on a status GET is retried transparently."""

    async def main() -> None:
        sleep = FakeSleep()
        async with adapter_for(V1_MODEL, sleep=sleep) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "x"})
            sb.inject(status=503, count=2, method="GET")
            assert (await adapter.get(task.id)).id == task.id and len(sleep.delays) == 2

    asyncio.run(main())


# --- factory and pure parts ----------------------------------------------------------------


def test_make_adapter_picks_the_api() -> None:
    """Routes and (provider, api) pairs map to the three adapters; base URLs come from constants."""

    async def main() -> None:
        async with HttpSession() as http:
            client = http.api("http://127.0.0.1:9", None, errors=get3w_v3.parse_error)
            kinds = {
                type(make_adapter(resolve_route(V3_MODEL), client)),
                type(make_adapter(resolve_route(V1_MODEL), client)),
                type(make_adapter(("abstrakt", "v1"), client)),
            }
            assert kinds == {get3w_v3.Get3wV3, get3w_v1.Get3wV1, abstrakt.Abstrakt}
            adapter: Adapter = make_adapter(("get3w", "v3"), client)
            assert (adapter.provider, adapter.api) == ("get3w", "v3")
            assert adapter.can_cancel and not adapter.has_sync
            with pytest.raises(UsageError):
                make_adapter(("abstrakt", "v3"), client)

    asyncio.run(main())
    assert default_base_url("get3w") == FACTS[Provider.GET3W].base_url == "https://api.get3w.com"
    assert default_base_url("abstrakt") == FACTS[Provider.ABSTRAKT].base_url == "https://api.abstrakt.one"
    with pytest.raises(UsageError):
        default_base_url("other")


@pytest.mark.parametrize(
    ("parser", "status", "body", "expected"),
    [
        (get3w_v1.parse_error, 401, {"code": 401, "error": "Invalid or revoked API key"},
         (None, "Invalid or revoked API key", None)),
        (get3w_v3.parse_error, 400, {"code": 400, "message": "Invalid parameters", "data": None},
         (None, "Invalid parameters", None)),
        (abstrakt.parse_error, 429,
         {"error": {"code": "RATE_LIMITED", "message": "slow down", "retry_after": 60}},
         ("RATE_LIMITED", "RATE_LIMITED: slow down", 60)),
        (abstrakt.parse_error, 404, {"error": {"code": "MODEL_NOT_FOUND", "message": "MODEL_NOT_FOUND"}},
         ("MODEL_NOT_FOUND", "MODEL_NOT_FOUND", None)),
        (abstrakt.parse_error, 500, {"error": "plain"}, (None, "plain", None)),
        (get3w_v3.parse_error, 502, None, (None, "", None)),
        (get3w_v1.parse_error, 500, ["odd"], (None, "", None)),
    ],
)
def test_error_parsers(parser: Any, status: int, body: object, expected: tuple) -> None:
    """Each API's error body gives (code, message, retry_after); odd bodies give nothing."""
    assert parser(status, body, json.dumps(body)) == expected


@pytest.mark.parametrize(("raw", "expected"), [("pred_1", "pred_1"), ("a/b", "a%2Fb"), (" x ", "x")])
def test_id_segment_quotes(raw: str, expected: str) -> None:
    """Task ids become one path segment."""
    assert id_segment(raw) == expected


@pytest.mark.parametrize("raw", ["", "..", "."])
def test_id_segment_refuses_dot_and_empty(raw: str) -> None:
    """Ids that would change the path are usage errors."""
    with pytest.raises(UsageError):
        id_segment(raw)
