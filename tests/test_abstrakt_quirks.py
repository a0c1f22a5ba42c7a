"""Abstrakt where its docs are loose, against the sandbox emulating each reading (and Get3W uploads
in both documented answer shapes): async runs under both docs generations, a lenient cancel,
every page of the model list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import StandInHandler, ThreadedSandbox, sandbox_env, serving
from inproc import invoke

from get3w_cli.http import HttpSession
from get3w_cli.providers import open_adapter, resolve_route
from get3w_cli.records import Status
from get3w_cli.sandbox import Sandbox, SandboxOptions

AB_MODEL = "abstrakt:fal-ai/flux/schnell"
NO_HOOK_DELIVERY = {"sandbox_webhook": "drop"}  # the hook host does not exist; don't try it
HOOK = "https://hooks.example/cb"


@asynccontextmanager
async def sandbox_adapter(model: str, **options: Any) -> AsyncIterator[tuple[Sandbox, Any, str]]:
    route = resolve_route(model)
    async with Sandbox(SandboxOptions(**{"duration": 0.05, **options})) as sb, HttpSession() as http:
        yield sb, open_adapter(http, route, api_key="sk_test_ok", base_url=sb.base_url), route.model


def body_of(request: Any) -> dict[str, Any]:
    return json.loads(request.body)


# --- async runs under both docs generations ------------------------------------------------------


@pytest.mark.parametrize("generation", ["newer", "older", "both"])
@pytest.mark.parametrize("webhook", [None, HOOK])
def test_an_asynchronous_run_never_waits_for_the_model(generation: str, webhook: str | None) -> None:
    """With a long sync window and a model that takes 0.5 s, a run that is not --via sync comes back
    still processing (202) under either docs generation: it sent "sync": false and "async": true."""

    async def main() -> None:
        async with sandbox_adapter(AB_MODEL, abstrakt_generation=generation, sync_cutoff=30.0) as (sb, adapter, m):
            task = await adapter.submit(m, {"prompt": "x", "sandbox_duration": 0.5, **NO_HOOK_DELIVERY},
                                        webhook_url=webhook)
            assert task.status is Status.PROCESSING  # a run that waited would be completed
            body = body_of(sb.submissions()[0])
            assert (body["sync"], body["async"]) == (False, True)

    asyncio.run(main())


@pytest.mark.parametrize("generation", ["newer", "older", "both"])
def test_via_sync_still_asks_for_a_synchronous_run(generation: str) -> None:
    """--via sync sends "sync": true only, and gets the finished job under either generation."""

    async def main() -> None:
        async with sandbox_adapter(AB_MODEL, abstrakt_generation=generation) as (sb, adapter, model):
            task = await adapter.submit(model, {"prompt": "x"}, sync=True)
            assert task.status is Status.COMPLETED
            assert body_of(sb.submissions()[0]) == {"input": {"prompt": "x"}, "sync": True}

    asyncio.run(main())


def test_submit_returns_the_id_at_once_from_an_older_generation_deployment() -> None:
    """g3w submit against a deployment synchronous by default prints the job still processing."""
    with ThreadedSandbox(duration=0.05, abstrakt_generation="older", sync_cutoff=30.0) as sb:
        result = invoke("submit", AB_MODEL, "-p", "x", "-i", "sandbox_duration=0.5", "--json", env=sandbox_env(sb))
    assert result.code == 0, result.stderr
    assert result.json()["status"] == "processing" and result.json()["id"].startswith("job_")


# --- cancel --------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["job", "empty", "odd", "text"])
def test_a_cancel_that_worked_is_read_back_whatever_its_answer(answer: str) -> None:
    """Any 2xx to the DELETE (a job, 204 with nothing, a JSON object that is no job, plain text) is a
    cancel that worked: the job is then read with a GET, which says cancelled."""

    async def main() -> None:
        async with sandbox_adapter(AB_MODEL, abstrakt_cancel_answer=answer) as (sb, adapter, model):
            slow = await adapter.submit(model, {"prompt": "slow", "sandbox_duration": 30})
            cancelled = await adapter.cancel(slow.id)
            assert (cancelled.id, cancelled.status) == (slow.id, Status.CANCELLED)
            assert [(r.method, r.path) for r in sb.requests[-2:]] == [
                ("DELETE", f"/v1/jobs/{slow.id}"), ("GET", f"/v1/jobs/{slow.id}")]

    asyncio.run(main())


def test_a_cancel_whose_confirmation_fails_is_still_a_cancel() -> None:
    """The DELETE answered 204 but every GET after it fails: the job is reported cancelled, not an error."""

    async def main() -> None:
        async with sandbox_adapter(AB_MODEL, abstrakt_cancel_answer="empty") as (sb, adapter, model):
            slow = await adapter.submit(model, {"prompt": "slow", "sandbox_duration": 30})
            sb.inject(status=503, count=50, method="GET", path_prefix="/v1/jobs/")
            cancelled = await adapter.cancel(slow.id)
            assert (cancelled.id, cancelled.status, cancelled.provider) == (slow.id, Status.CANCELLED, "abstrakt")

    asyncio.run(main())


@pytest.mark.parametrize("answer", ["empty", "text"])
def test_g3w_cancel_reports_a_lenient_cancel_as_done(answer: str) -> None:
    """g3w cancel exits 0 with the cancelled job, whatever body the DELETE answered."""
    with ThreadedSandbox(duration=0.05, abstrakt_cancel_answer=answer) as sb:
        submitted = invoke("submit", AB_MODEL, "-p", "x", "-i", "sandbox_duration=30", "-q", env=sandbox_env(sb))
        job_id = submitted.stdout.strip()
        result = invoke("cancel", job_id, "--json", env=sandbox_env(sb))
    assert result.code == 0, result.stderr
    assert (result.json()["id"], result.json()["status"]) == (job_id, "cancelled")


# --- the model list, page after page -------------------------------------------------------------


@pytest.mark.parametrize(("page", "offsets"), [(1, ["0", "1", "2", "3"]), (3, ["0", "3"]), (None, ["0"])])
def test_every_page_of_the_model_list_is_read(page: int | None, offsets: list[str]) -> None:
    """With pages smaller than asked for, every model is listed once, pages asked for by offset."""

    async def main() -> None:
        async with sandbox_adapter(AB_MODEL, abstrakt_models_page_max=page) as (sb, adapter, _model):
            ids = [model.id for model in await adapter.list_models()]
            assert ids == ["flux-schnell", "nano-banana-pro-edit", "fal-ai/flux/schnell", "fal-ai/flux/dev"]
            listing = [r for r in sb.requests if r.path == "/v1/models"]
            assert [r.query["offset"] for r in listing] == offsets
            assert {r.query["limit"] for r in listing} == {"100"}

    asyncio.run(main())


def test_a_searched_model_list_is_paged_too() -> None:
    """A search is sent with every page; total is the number of matches."""

    async def main() -> None:
        async with sandbox_adapter(AB_MODEL, abstrakt_models_page_max=1) as (sb, adapter, _model):
            found = await adapter.list_models("fal-ai/flux")
            assert [model.id for model in found] == ["fal-ai/flux/schnell", "fal-ai/flux/dev"]
            assert [r.query.get("search") for r in sb.requests if r.path == "/v1/models"] == ["fal-ai/flux"] * 2

    asyncio.run(main())


@contextmanager
def json_server(answer: Any) -> Iterator[tuple[str, list[str]]]:
    """A stand-in API answering every GET with ``answer`` (a JSON value); yields its URL and the paths asked."""
    asked: list[str] = []

    class Handler(StandInHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_json(answer)

    with serving(Handler) as url:
        yield url, asked


def test_a_server_that_ignores_offset_cannot_keep_the_listing_going() -> None:
    """The same page whatever the offset, with a total it never reaches: two requests, then stop."""
    page = {"models": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}], "total": 500, "limit": 2, "offset": 0}

    async def main() -> None:
        with json_server(page) as (url, asked):
            async with HttpSession() as http:
                adapter = open_adapter(http, resolve_route(AB_MODEL), api_key="sk_test_ok", base_url=url)
                models = await adapter.list_models()
        assert [model.id for model in models] == ["a", "b"]
        assert len(asked) == 2

    asyncio.run(main())


# --- uploads: url or download_url ----------------------------------------------------------------


@pytest.mark.parametrize(("answer", "paths"), [
    ("url", ["/api/v3/files/upload"]),
    ("download_url", ["/api/v3/files/upload"]),
    ("wavespeed", ["/api/v3/files/upload", "/api/v3/media/upload/binary"]),
])
def test_an_upload_answer_may_name_url_or_download_url(tmp_path: Path, answer: str, paths: list[str]) -> None:
    """data.url or data.download_url is the file's URL; where files/upload is 404, WaveSpeed's
    media/upload/binary takes the same file. The URL serves the bytes sent."""
    picture = tmp_path / "in.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\nnot really")

    async def main() -> None:
        async with sandbox_adapter("flux-dev", upload_answer=answer) as (sb, adapter, _model):
            url = await adapter.upload(picture)
            assert [r.path for r in sb.requests if r.method == "POST"] == paths
            async with httpx.AsyncClient() as client:
                served = await client.get(url)
            assert served.content == picture.read_bytes()

    asyncio.run(main())
