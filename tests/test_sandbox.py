"""The sandbox provider: each API's shapes and statuses, failures, PNGs and webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from get3w_cli.errors import ListenerError
from get3w_cli.payloads import abstrakt_job, callback_task, get3w_task
from get3w_cli.records import Status
from get3w_cli.sandbox import Sandbox, SandboxOptions, serve

KEY = {"Authorization": "Bearer sk_test_sandbox"}
V3_MODEL = "/api/v3/get3w/flux-dev"
V1_MODEL = "/v1/google/nano-banana-pro/text-to-image"
AB_RUN = "/v1/models/fal-ai/flux/schnell/run"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def with_sandbox(test: Callable[[Sandbox, httpx.AsyncClient], Awaitable[None]],
                 **options: Any) -> None:
    """Run ``test`` against a fresh sandbox and a client pointed at it."""
    async def main() -> None:
        opts = SandboxOptions(**{"duration": 0.0, "webhook_time_scale": 0.01, **options})
        async with Sandbox(opts) as sandbox:
            async with httpx.AsyncClient(base_url=sandbox.base_url, headers=KEY) as client:
                await test(sandbox, client)
    run(main())


async def until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    """Wait until ``condition()`` is true (polling the loop), or fail after ``timeout``."""
    async def loop() -> None:
        while not condition():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(loop(), timeout)


class Receiver:
    """A webhook target on 127.0.0.1 answering the given statuses in turn, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.hits: list[tuple[float, dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.hits.append((asyncio.get_running_loop().time(), headers, body))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def wait_for(self, count: int) -> None:
        await until(lambda: len(self.hits) >= count)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.hits]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, data) chunks, checking the signature and every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data) and chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def check_png(data: bytes) -> tuple[int, int]:
    """Assert ``data`` is a decodable 8-bit RGB PNG; return its size."""
    chunks = png_chunks(data)
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (8, 2)
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + 3 * width)
    return width, height


# --- Get3W v3 ----------------------------------------------------------------


def test_v3_prediction_moves_from_created_to_completed() -> None:
    """v3 submit answers the documented envelope; GET shows created, processing, completed."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(V3_MODEL, json={"prompt": "a cat", "sandbox_duration": 1.0})
        assert r.status_code == 200
        body = r.json()
        assert (body["code"], body["message"]) == (200, "success")
        data = body["data"]
        assert re.fullmatch(r"pred_[0-9a-f]{12}", data["id"])
        assert data["model"] == "get3w/flux-dev" and data["status"] == "created"
        assert data["urls"]["get"] == f"{sandbox.base_url}/api/v3/predictions/{data['id']}"
        assert ISO_MS.match(data["created_at"])
        seen = []
        for pause in (0.3, 0.8, 0.0):  # processing from 0.1 s, completed at 1 s
            got = (await client.get(f"/api/v3/predictions/{data['id']}")).json()["data"]
            seen.append(got["status"])
            await asyncio.sleep(pause)
        assert seen == ["created", "processing", "completed"]
        final = (await client.get(f"/api/v3/predictions/{data['id']}/result")).json()["data"]
        assert final["input"] == {"prompt": "a cat", "sandbox_duration": 1.0}
        assert final["outputs"] == [f"{sandbox.base_url}/cdn/outputs/{data['id']}_0.png"]
        assert final["timings"] == {"inference": 1000}
        assert ISO_MS.match(final["completed_at"]) and "error" not in final
        task = get3w_task(final, api="v3")
        assert task.status is Status.COMPLETED and task.outputs == tuple(final["outputs"])
    with_sandbox(test)


def test_v3_failed_prediction_carries_error() -> None:
    """sandbox_fail ends a v3 task failed, with its message in error and no outputs."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(V3_MODEL, json={"prompt": "x", "sandbox_fail": "NSFW filter"})
        pred_id = r.json()["data"]["id"]
        data = (await client.get(f"/api/v3/predictions/{pred_id}")).json()["data"]
        assert (data["status"], data["error"], data["outputs"]) == ("failed", "NSFW filter", [])
    with_sandbox(test)


def test_v3_delete_cancels_and_kills_outputs() -> None:
    """DELETE answers status deleted; a running task never completes, a finished one's URLs 404."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        running = (await client.post(V3_MODEL, json={"prompt": "x", "sandbox_duration": 5})).json()
        done = (await client.post(V3_MODEL, json={"prompt": "x"})).json()["data"]
        output = (await client.get(f"/api/v3/predictions/{done['id']}")).json()["data"]["outputs"][0]
        assert (await client.get(output)).status_code == 200
        for pred_id in (running["data"]["id"], done["id"]):
            r = await client.delete(f"/api/v3/predictions/{pred_id}")
            assert r.json() == {"code": 200, "message": "success",
                                "data": {"id": pred_id, "status": "deleted"}}
            got = (await client.get(f"/api/v3/predictions/{pred_id}")).json()["data"]
            assert got["status"] == "deleted" and got["outputs"] == []
        assert (await client.get(output)).status_code == 404
        missing = await client.get("/api/v3/predictions/pred_000000000000")
        assert missing.status_code == 404 and missing.json()["data"] is None
    with_sandbox(test)


def test_v3_account_endpoints_and_upload() -> None:
    """Models, balance, usage, billings and upload answer the documented envelopes."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        models = (await client.get("/api/v3/models", params={"search": "schnell"})).json()["data"]
        # WaveSpeed's documented shape by default (SandboxOptions.models_shape), schema included.
        assert [m["model_id"] for m in models] == ["get3w/flux-schnell"]
        assert set(models[0]) == {"model_id", "name", "type", "description", "base_price", "api_schema"}
        [run] = models[0]["api_schema"]["api_schemas"]
        assert run["type"] == "model_run" and run["request_schema"]["required"] == ["prompt"]
        sandbox.options.models_shape = "get3w"
        models = (await client.get("/api/v3/models", params={"search": "schnell"})).json()["data"]
        assert set(models[0]) == {"id", "name", "type", "description", "price"}
        assert (await client.get("/api/v3/balance")).json()["data"] == {
            "balance": 42.5, "currency": "USD"}
        await client.post(V3_MODEL, json={"prompt": "x"})
        await until(lambda: all(t.finished for t in sandbox._runtime.store.tasks.values()))  # only finished ones count
        usage = (await client.get("/api/v3/usage")).json()["data"]
        assert usage["total_tasks"] == 1 and usage["breakdown"]["text-to-image"]["tasks"] == 1
        bills = (await client.get("/api/v3/billings", params={"type": "usage"})).json()["data"]
        assert bills["total"] == 1 and bills["records"][0]["amount"] < 0
        assert (bills["page"], bills["per_page"]) == (1, 20)
        blob = bytes(range(256)) + b"\r\n--x\r\n"
        up = await client.post("/api/v3/files/upload", files={"file": ("my pic.png", blob)})
        url = up.json()["data"]["url"]
        assert re.fullmatch(re.escape(sandbox.base_url) + r"/cdn/uploads/[0-9a-f]+_my_pic\.png", url)
        assert (await client.get(url)).content == blob
        assert (await client.post("/api/v3/files/upload", data={"x": "1"})).status_code == 400
    with_sandbox(test)


# --- Get3W v1 ----------------------------------------------------------------


def test_v1_async_submit_and_poll() -> None:
    """v1 answers {id uuid4, created, estimated_duration} and polls as a bare task object."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        inputs = {"prompt": "sunset", "channel": "stable", "sandbox_duration": 1.2}
        r = await client.post(V1_MODEL, json=inputs)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "created"
        assert uuid.UUID(body["id"]).version == 4 and body["estimated_duration"] == 2
        got = (await client.get(f"/v1/requests/{body['id']}")).json()
        assert got["model"] == "google/nano-banana-pro/text-to-image"
        assert got["input"] == inputs and got["outputs"] == [] and got["status"] == "created"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", got["created_at"])
        failed = (await client.post(V1_MODEL, json={"prompt": "x", "sandbox_fail": True})).json()
        got = (await client.get(f"/v1/requests/{failed['id']}")).json()
        assert got["status"] == "failed" and got["code"] == 500 and "outputs" not in got
        assert get3w_task(got, api="v1").error is not None
        assert (await client.get("/v1/requests/nope")).json() == {"code": 404, "error": "Not found"}
        cancel = await client.delete(f"/v1/requests/{body['id']}")
        assert cancel.status_code == 405 and cancel.json()["code"] == 405
    with_sandbox(test)


def test_v1_sync_blocks_until_done_or_cutoff() -> None:
    """?sync=true answers the finished task; past sync_cutoff it answers it still processing."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(V1_MODEL, params={"sync": "true"},
                              json={"prompt": "x", "sandbox_duration": 0.1, "sandbox_outputs": 2})
        assert r.status_code == 200 and r.json()["status"] == "completed"
        assert len(r.json()["outputs"]) == 2
        r = await client.post(V1_MODEL, params={"sync": "true"},
                              json={"prompt": "x", "sandbox_duration": 3})
        assert r.status_code == 200 and r.json()["status"] == "processing"
    with_sandbox(test, sync_cutoff=0.3)


# --- Abstrakt ----------------------------------------------------------------


def test_abstrakt_sync_run_answers_200_when_done() -> None:
    """A sync run that finishes in time answers 200 with the documented completed job."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(AB_RUN, json={"input": {"prompt": "x", "sandbox_duration": 0.1}})
        assert r.status_code == 200
        job = r.json()
        assert re.fullmatch(r"job_[0-9a-f]{12}", job["job_id"])
        assert job["request_id"].startswith("fal_req_") and job["status"] == "completed"
        assert job["model_id"] == "fal-ai/flux/schnell" and job["credits_used"] == 1
        assert job["output"]["type"] == "image" and 80 <= job["duration_ms"] <= 200
        assert job["output"]["items"][0]["url"].startswith(f"{sandbox.base_url}/cdn/outputs/")
        assert r.headers["X-RateLimit-Limit"] and r.headers["X-RateLimit-Remaining"]
        assert abstrakt_job(job).status is Status.COMPLETED
    with_sandbox(test)


def test_abstrakt_sync_cutoff_and_async_flags_answer_202() -> None:
    """Past sync_cutoff, or with sync:false / async:true / webhook_url, run answers 202."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        slow = {"prompt": "x", "sandbox_duration": 2}
        bodies = [{"input": slow}, {"input": {"prompt": "x"}, "sync": False},
                  {"input": {"prompt": "x"}, "async": True},
                  {"input": {"prompt": "x"}, "webhook_url": "http://127.0.0.1:9/none"}]
        for body in bodies:
            r = await client.post("/v1/models/nano-banana-pro-edit/run", json=body)
            job = r.json()
            assert r.status_code == 202 and job["status"] == "processing"
            assert set(job) == {"job_id", "request_id", "status", "model_id", "message"}
            assert job["message"] == ("Model is still generating. Poll GET /v1/jobs/"
                                      f"{job['job_id']} for the completed result.")
    with_sandbox(test, sync_cutoff=0.2)


def test_abstrakt_job_lifecycle_and_cancel() -> None:
    """Jobs read pending then processing; DELETE cancels, a finished job gives 409."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        body = {"input": {"prompt": "x", "sandbox_duration": 1}, "sync": False}
        job_id = (await client.post(AB_RUN, json=body)).json()["job_id"]
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "pending"
        await asyncio.sleep(0.15)
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "processing"
        cancelled = await client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = await client.delete(f"/v1/jobs/{job_id}")
        assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_NOT_CANCELLABLE"
        missing = await client.get("/v1/jobs/job_000000000000")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "JOB_NOT_FOUND"
        failed = (await client.post(AB_RUN, json={"input": {"prompt": "x", "sandbox_fail": True}}))
        assert failed.json()["status"] == "failed"
        assert failed.json()["error"]["code"] == "PROVIDER_FAILURE"
    with_sandbox(test)


def test_abstrakt_models_list_and_details() -> None:
    """GET /v1/models filters and pages; a slash id resolves raw, with input_schema."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        page = (await client.get("/v1/models", params={"search": "flux", "limit": 2})).json()
        assert (page["total"], page["limit"], page["offset"], len(page["models"])) == (3, 2, 0, 2)
        model = (await client.get("/v1/models/fal-ai/flux/dev")).json()
        assert model["id"] == "fal-ai/flux/dev" and model["input_schema"]["required"] == ["prompt"]
        bad = await client.get("/v1/models", params={"limit": 1000})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_INPUT"
    with_sandbox(test)


# --- errors --------------------------------------------------------------------

SUBMITS = [
    ("v1", V1_MODEL, {"prompt": "x"}),
    ("v3", V3_MODEL, {"prompt": "x"}),
    ("abstrakt", AB_RUN, {"input": {"prompt": "x"}}),
]


def error_text(api: str, body: dict[str, Any]) -> tuple[Any, str]:
    """(code, message) of an error body, checking it has the API's shape."""
    if api == "v1":
        assert set(body) == {"code", "error"}
        return body["code"], body["error"]
    if api == "v3":
        assert set(body) == {"code", "message", "data"} and body["data"] is None
        return body["code"], body["message"]
    return body["error"]["code"], body["error"]["message"]


@pytest.mark.parametrize(("api", "path", "body"), SUBMITS)
def test_auth_errors_use_each_api_shape(api: str, path: str, body: dict[str, Any]) -> None:
    """Missing, malformed, revoked and broke keys get 401/403 in the API's error shape."""
    cases = [
        ({}, 401, "Missing Authorization header"),
        ({"Authorization": "Token abc"}, 401,
         "Invalid Authorization format, expected: Bearer <api_key>"),
        ({"Authorization": "Bearer sk_invalid"}, 401, "Invalid or revoked API key"),
        ({"Authorization": "Bearer sk_broke"}, 403, "Insufficient balance"),
    ]

    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with httpx.AsyncClient(base_url=sandbox.base_url) as bare:
            for headers, status, message in cases:
                r = await bare.post(path, json=body, headers=headers)
                code, text = error_text(api, r.json())
                assert r.status_code == status and text == message
                if api == "abstrakt":
                    assert code == {401: "UNAUTHORIZED", 403: "QUOTA_EXCEEDED"}[status]
                else:
                    assert code == status
        assert sandbox.submissions() and all(r.path == path for r in sandbox.submissions())
    with_sandbox(test)


@pytest.mark.parametrize(("api", "path"), [
    ("v1", "/v1/google/nope/text-to-image"), ("v3", "/api/v3/get3w/nope"),
    ("abstrakt", "/v1/models/fal-ai/nope/run"),
])
def test_unknown_model_is_404(api: str, path: str) -> None:
    """An unknown model gets 404 in the API's shape (Abstrakt MODEL_NOT_FOUND)."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(path, json={"prompt": "x", "input": {"prompt": "x"}})
        code, _ = error_text(api, r.json())
        assert r.status_code == 404 and code == ("MODEL_NOT_FOUND" if api == "abstrakt" else 404)
    with_sandbox(test)


@pytest.mark.parametrize(("api", "path", "body"), SUBMITS)
def test_bad_input_is_400(api: str, path: str, body: dict[str, Any]) -> None:
    """Non-JSON bodies, a missing prompt and bad sandbox controls get 400 in the API's shape."""
    def wrap(inputs: Any) -> Any:
        return {"input": inputs} if api == "abstrakt" else inputs

    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        bad = [b"not json", json.dumps(wrap({"size": 1})).encode(),
               json.dumps(wrap({"prompt": "x", "sandbox_duration": "slow"})).encode()]
        if api == "abstrakt":
            bad.append(json.dumps({"input": "a cat"}).encode())
        for raw in bad:
            r = await client.post(path, content=raw, headers={"Content-Type": "application/json"})
            code, text = error_text(api, r.json())
            assert r.status_code == 400, raw
            assert code == ("INVALID_INPUT" if api == "abstrakt" else 400)
            assert api == "abstrakt" or text == "Invalid parameters"
        assert not list(sandbox.deliveries)
    with_sandbox(test)


def test_max_concurrent_answers_429_per_key() -> None:
    """Past max_concurrent running tasks for a key, submits get 429 with Retry-After."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        slow = {"prompt": "x", "sandbox_duration": 5}
        assert (await client.post(V1_MODEL, json=slow)).status_code == 200
        r = await client.post(V1_MODEL, json=slow)
        assert r.status_code == 429 and r.json() == {"code": 429, "error": "Rate limit exceeded"}
        assert r.headers["Retry-After"] == "3"
        r = await client.post(AB_RUN, json={"input": slow, "sync": False})
        assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMITED"
        assert r.json()["error"]["retry_after"] == 3
        other = await client.post(V1_MODEL, json=slow, headers={"Authorization": "Bearer sk_2"})
        assert other.status_code == 200
    with_sandbox(test, max_concurrent=1, retry_after=3.0)


# --- outputs -------------------------------------------------------------------


def test_outputs_are_valid_pngs_served_without_auth() -> None:
    """Each output URL serves a distinct, valid PNG; the CDN request is logged."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(V1_MODEL, params={"sync": "true"},
                              json={"prompt": "x", "sandbox_outputs": 3})
        urls = r.json()["outputs"]
        assert len(urls) == 3
        async with httpx.AsyncClient() as cdn:
            images = [await cdn.get(url) for url in urls]
            assert (await cdn.get(urls[0].replace("_0.png", "_3.png"))).status_code == 404
        assert all(i.headers["Content-Type"] == "image/png" for i in images)
        assert all(check_png(i.content) == (64, 64) for i in images)
        assert len({i.content for i in images}) == 3
        cdn_hits = [q for q in sandbox.requests if q.path.startswith("/cdn/outputs/")]
        assert len(cdn_hits) == 4 and all("authorization" not in q.headers for q in cdn_hits)
        assert all("Authorization" in q.headers for q in sandbox.submissions())
    with_sandbox(test)


def test_padded_png_stays_valid() -> None:
    """sandbox_output_bytes pads an output to about that size and it still decodes."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        r = await client.post(V1_MODEL, params={"sync": "true"},
                              json={"prompt": "x", "sandbox_output_bytes": 300_000})
        data = (await client.get(r.json()["outputs"][0])).content
        assert abs(len(data) - 300_000) < 100
        assert check_png(data) == (64, 64)
        assert b"sbPd" in [kind for kind, _ in png_chunks(data)]
    with_sandbox(test)


# --- injection -----------------------------------------------------------------


def test_inject_answers_matching_requests_with_retry_after() -> None:
    """inject() answers the next matching requests in the API's shape, then stops."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        sandbox.inject(status=429, count=2, method="POST", path_prefix="/v1/models")
        sandbox.inject(status=503, path_prefix="/api/v3", retry_after=7)
        assert (await client.get("/v1/models")).status_code == 200  # wrong method
        for _ in range(2):
            r = await client.post(AB_RUN, json={"input": {"prompt": "x"}})
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
            assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert (await client.post(AB_RUN, json={"input": {"prompt": "x"}})).status_code == 200
        r = await client.get("/api/v3/balance")
        assert r.status_code == 503 and r.headers["Retry-After"] == "7"
        assert r.json() == {"code": 503, "message": "Service temporarily unavailable", "data": None}
        sandbox.inject(status=500, body=b"<html>oops</html>")
        r = await client.get("/api/v3/balance")
        assert r.status_code == 500 and r.text == "<html>oops</html>"
        assert len(sandbox.submissions()) == 3
    with_sandbox(test)


def test_dropped_submit_still_creates_the_task() -> None:
    """drop_connection loses the answer but the submit still made its task."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        sandbox.inject(status=200, drop_connection=True, method="POST")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(V3_MODEL, json={"prompt": "lost"})
        assert len(sandbox.submissions()) == 1
        usage = (await client.get("/api/v3/usage")).json()["data"]
        assert usage["total_tasks"] == 1
        assert (await client.post(V3_MODEL, json={"prompt": "x"})).status_code == 200
    with_sandbox(test)


def test_admin_endpoints_log_inject_and_reset() -> None:
    """/_sandbox/ lists requests, takes injections over HTTP and resets the log."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        await client.post(V1_MODEL, json={"prompt": "hello"})
        listed = (await client.get("/_sandbox/requests")).json()
        assert [(q["method"], q["path"]) for q in listed] == [("POST", V1_MODEL)]
        assert json.loads(listed[0]["body"]) == {"prompt": "hello"}
        assert listed[0]["headers"]["authorization"] == KEY["Authorization"]
        r = await client.post("/_sandbox/inject",
                              json={"status": 502, "path_prefix": "/v1/requests/"})
        assert r.status_code == 200
        assert (await client.get("/v1/requests/x")).json() == {"code": 502, "error": "Bad gateway"}
        bad = await client.post("/_sandbox/inject", json={"status": "soon"})
        assert bad.status_code == 400
        assert (await client.post("/_sandbox/reset")).status_code == 200
        assert sandbox.requests == [] and (await client.get("/_sandbox/requests")).json() == []
    with_sandbox(test)


# --- webhooks ------------------------------------------------------------------


def test_get3w_webhooks_are_signed_and_shaped() -> None:
    """v3 and v1 callbacks carry X-Get3W-Signature over the raw body and the documented fields."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver() as hook:
            v3 = (await client.post(V3_MODEL, json={"prompt": "x", "webhook_url": hook.url}))
            v1 = await client.post(V1_MODEL, params={"webhook": hook.url},
                                   json={"prompt": "x", "sandbox_fail": "boom"})
            await hook.wait_for(2)
        for _, headers, body in hook.hits:
            expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            assert headers["x-get3w-signature"] == expected
            assert headers["content-type"] == "application/json"
        by_id = {p["id"]: p for p in hook.payloads()}
        wh3 = by_id[v3.json()["data"]["id"]]
        assert set(wh3) == {"id", "model", "status", "outputs", "timings", "created_at",
                            "completed_at"}
        assert wh3["status"] == "completed" and len(wh3["outputs"]) == 1
        wh1 = by_id[v1.json()["id"]]
        assert (wh1["status"], wh1["error"], wh1["model"]) == (
            "failed", "boom", "google/nano-banana-pro/text-to-image")
        assert callback_task(wh1, provider="get3w").api == "v1"
        assert callback_task(wh3, provider="get3w").status is Status.COMPLETED
    with_sandbox(test, webhook_secret="s3cret")


def test_abstrakt_webhook_signs_timestamp_and_body() -> None:
    """Abstrakt signs "<ts>.<body>" by default, or the body alone when asked."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver() as hook:
            body = {"input": {"prompt": "x"}, "webhook_url": hook.url}
            first = (await client.post(AB_RUN, json=body)).json()
            await hook.wait_for(1)
            sandbox.options.abstrakt_sign_body_only = True
            await client.post(AB_RUN, json=body)
            await hook.wait_for(2)
        (_, h1, b1), (_, h2, b2) = hook.hits
        signed = h1["x-abstrakt-timestamp"].encode() + b"." + b1
        assert h1["x-abstrakt-signature"] == hmac.new(b"k", signed, hashlib.sha256).hexdigest()
        assert h2["x-abstrakt-signature"] == hmac.new(b"k", b2, hashlib.sha256).hexdigest()
        payload = json.loads(b1)
        assert payload["job_id"] == first["job_id"] and payload["status"] == "succeeded"
        assert set(payload) == {"job_id", "status", "output", "credits_used", "completed_at"}
        assert abstrakt_job(payload).status is Status.COMPLETED
    with_sandbox(test, webhook_secret="k")


def test_webhook_retries_follow_the_schedule() -> None:
    """A receiver failing twice gets the v1 retries at 2 s and 4 s (scaled), then success."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver(statuses=(500, 503)) as hook:
            await client.post(V1_MODEL, params={"webhook": hook.url}, json={"prompt": "x"})
            await hook.wait_for(3)
            await until(lambda: len(sandbox.deliveries) == 3)  # logged once its answer is read
        times = [at for at, _, _ in hook.hits]
        assert len(times) == 3
        assert 0.02 <= times[1] - times[0] < 0.5 and 0.04 <= times[2] - times[1] < 0.5
        attempts = [(d.attempt, d.status_code) for d in sandbox.deliveries]
        assert attempts == [(1, 500), (2, 503), (3, 200)]
    with_sandbox(test, webhook_time_scale=0.01)


def test_webhook_gives_up_and_records_connection_errors() -> None:
    """An unreachable receiver gets the v3 schedule's 4 attempts, each logged with its error."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
            await client.post(V3_MODEL, json={"prompt": "x", "webhook_url": dead})
            await until(lambda: len(sandbox.deliveries) == 4 and sandbox.deliveries[3].error)
            await asyncio.sleep(0.1)
        assert [d.attempt for d in sandbox.deliveries] == [1, 2, 3, 4]
        assert all(d.status_code is None and d.error for d in sandbox.deliveries)
        gaps = [b.at - a.at for a, b in zip(sandbox.deliveries, sandbox.deliveries[1:], strict=False)]
        assert gaps[0] >= 0.05 and gaps[1] >= 0.15 and gaps[2] >= 0.3
        assert (await client.get("/api/v3/balance")).status_code == 200
    with_sandbox(test, webhook_time_scale=0.005)


def test_webhook_duplicates_and_drop() -> None:
    """webhook_duplicates repeats a delivered callback identically; "drop" sends nothing."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver() as hook:
            await client.post(V3_MODEL, json={"prompt": "x", "webhook_url": hook.url,
                                              "sandbox_webhook": "drop"})
            await client.post(V3_MODEL, json={"prompt": "x", "webhook_url": hook.url})
            await hook.wait_for(3)
            await until(lambda: len(sandbox.deliveries) == 3)  # logged once its answer is read
        assert len(hook.hits) == 3 and len({body for _, _, body in hook.hits}) == 1
        assert len({h["x-get3w-signature"] for _, h, _ in hook.hits}) == 1
        assert [d.kind for d in sandbox.deliveries] == ["final", "duplicate", "duplicate"]
    with_sandbox(test, webhook_duplicates=2, webhook_secret="s")


def test_early_delivery_arrives_before_the_submit_answer() -> None:
    """sandbox_webhook "early" delivers the final callback before the submit is answered."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver() as hook:
            r = await client.post(V3_MODEL, json={"prompt": "x", "webhook_url": hook.url,
                                                  "sandbox_webhook": "early"})
            answered = asyncio.get_running_loop().time()
            assert len(hook.hits) == 1 and hook.hits[0][0] < answered
        assert hook.payloads()[0]["id"] == r.json()["data"]["id"]
        assert hook.payloads()[0]["status"] == "completed"
    with_sandbox(test)


def test_late_processing_follows_the_final_callback() -> None:
    """sandbox_webhook "late_processing" sends a stale processing callback after the final one."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver() as hook:
            await client.post(AB_RUN, json={"input": {"prompt": "x", "sandbox_webhook":
                                                      "late_processing"}, "webhook_url": hook.url})
            await hook.wait_for(2)
        assert [p["status"] for p in hook.payloads()] == ["succeeded", "processing"]
    with_sandbox(test)


# --- server --------------------------------------------------------------------


def test_taken_port_raises_listener_error() -> None:
    """Starting on a port already in use raises ListenerError, and close() stays safe."""
    async def main() -> None:
        async with Sandbox() as first:
            port = int(first.base_url.rsplit(":", 1)[1])
            second = Sandbox(port=port)
            with pytest.raises(ListenerError):
                await second.start()
            await second.close()
        await first.close()
    run(main())


def test_serve_runs_until_cancelled() -> None:
    """serve() reports its URL, answers requests, and stops cleanly when cancelled."""
    async def main() -> None:
        ready: asyncio.Queue[str] = asyncio.Queue()
        server = asyncio.create_task(serve(SandboxOptions(), host="127.0.0.1", port=0,
                                           on_ready=ready.put_nowait))
        url = await asyncio.wait_for(ready.get(), 5)
        async with httpx.AsyncClient(base_url=url, headers=KEY) as client:
            assert (await client.get("/v1/models")).status_code == 200
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
    run(main())


def test_close_is_prompt_with_waiting_handlers() -> None:
    """close() wakes a blocked sync run (answered 202) and returns at once; twice is fine."""
    async def main() -> None:
        sandbox = Sandbox(SandboxOptions(duration=30))
        await sandbox.start()
        async with httpx.AsyncClient(base_url=sandbox.base_url, headers=KEY) as client:
            waiting = asyncio.create_task(client.post(AB_RUN, json={"input": {"prompt": "x"}}))
            await until(lambda: len(sandbox.submissions()) == 1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await sandbox.close()
            assert loop.time() - started < 1.0
            assert (await waiting).status_code == 202
        await sandbox.close()
    run(main())


# --- State file (tasks outliving the process) ---------------------------------


def persisted(path: Any, **options: Any) -> Sandbox:
    return Sandbox(SandboxOptions(**{"duration": 0.0, "webhook_time_scale": 0.01,
                                     "state_file": path, **options}))


async def submit_all(base_url: str, duration: float, **extra: Any) -> dict[str, str]:
    """One task per API; their ids by API."""
    controls = {"prompt": "x", "sandbox_duration": duration, **extra}
    async with httpx.AsyncClient(base_url=base_url, headers=KEY) as client:
        v3 = (await client.post(V3_MODEL, json=controls)).json()["data"]["id"]
        v1 = (await client.post(V1_MODEL, json=controls)).json()["id"]
        job = (await client.post(AB_RUN, json={"input": controls, "sync": False})).json()
    return {"v3": v3, "v1": v1, "abstrakt": job["job_id"]}


async def statuses(client: httpx.AsyncClient, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each task's GET answer (v3's ``data``), by API."""
    v3 = (await client.get(f"/api/v3/predictions/{ids['v3']}")).json()["data"]
    v1 = (await client.get(f"/v1/requests/{ids['v1']}")).json()
    job = (await client.get(f"/v1/jobs/{ids['abstrakt']}")).json()
    return {"v3": v3, "v1": v1, "abstrakt": job}


RESTART_MARGIN = 2.0  # seconds a task outlives a sandbox restart by


async def completed(client: httpx.AsyncClient, ids: dict[str, str], timeout: float) -> dict[str, dict[str, Any]]:
    """The tasks' GET answers once all three read completed (polled; fail after ``timeout``)."""
    answers: dict[str, dict[str, Any]] = {}

    async def done() -> bool:
        answers.update(await statuses(client, ids))
        return all(answers[api]["status"] == "completed" for api in ("v3", "v1", "abstrakt"))

    async def poll() -> None:
        while not await done():
            await asyncio.sleep(0.05)  # the poll's pace

    await asyncio.wait_for(poll(), timeout)
    return answers


def test_state_file_tasks_complete_for_the_next_sandbox(tmp_path: Any) -> None:
    """A task saved by one sandbox completes by the wall clock in the next, on its own URL."""
    path = tmp_path / "state.json"

    async def main() -> None:
        async with persisted(path) as first:
            # Long enough that the restart (close, save, load, start) surely ends before them,
            # even on a busy machine: 0.4 s was seen to be too short.
            ids = await submit_all(first.base_url, RESTART_MARGIN)
            first_url = first.base_url
            async with httpx.AsyncClient(base_url=first_url, headers=KEY) as client:
                before = await statuses(client, ids)
        async with persisted(path) as second:
            assert second.base_url != first_url
            async with httpx.AsyncClient(base_url=second.base_url, headers=KEY) as client:
                early = await statuses(client, ids)
                assert early["v3"]["status"] in ("created", "processing")
                assert early["abstrakt"]["status"] in ("pending", "processing")
                assert early["v3"]["created_at"] == before["v3"]["created_at"]
                done = await completed(client, ids, timeout=RESTART_MARGIN + 5)
                assert [done[api]["status"] for api in ("v3", "v1", "abstrakt")] == ["completed"] * 3
                url = done["v3"]["outputs"][0]
                assert url == f"{second.base_url}/cdn/outputs/{ids['v3']}_0.png"
                assert done["v1"]["outputs"][0].startswith(second.base_url + "/cdn/")
                job_url = done["abstrakt"]["output"]["items"][0]["url"]
                assert job_url.startswith(second.base_url + "/cdn/")
                assert done["abstrakt"]["request_id"] == before["abstrakt"]["request_id"]
                assert get3w_task(done["v3"], api="v3").status is Status.COMPLETED
                image = await client.get(url)
                assert image.status_code == 200 and image.headers["content-type"] == "image/png"
                check_png(image.content)
                assert (await client.get(job_url)).status_code == 200
    run(main())


def test_state_file_keeps_failures_and_output_counts(tmp_path: Any) -> None:
    """The fail and outputs controls survive: a failed task fails, outputs keep their count."""
    path = tmp_path / "state.json"

    async def main() -> None:
        async with persisted(path) as first:
            failed = await submit_all(first.base_url, 0.0, sandbox_fail="boom")
            many = await submit_all(first.base_url, 0.0, sandbox_outputs=3)
        async with persisted(path) as second:
            async with httpx.AsyncClient(base_url=second.base_url, headers=KEY) as client:
                bad = await statuses(client, failed)
                assert (bad["v3"]["status"], bad["v3"]["error"]) == ("failed", "boom")
                assert (bad["v1"]["status"], bad["v1"]["error"]) == ("failed", "boom")
                assert bad["abstrakt"]["error"]["message"] == "boom"
                good = await statuses(client, many)
                assert len(good["v3"]["outputs"]) == 3
                assert (await client.get(good["v3"]["outputs"][2])).status_code == 200
                gone = f"/cdn/outputs/{many['v3']}_3.png"
                assert (await client.get(gone)).status_code == 404
    run(main())


def test_state_file_delete_and_cancel_a_running_loaded_task(tmp_path: Any) -> None:
    """DELETE works on a loaded task that still runs, and the next sandbox sees it ended."""
    path = tmp_path / "state.json"

    async def main() -> None:
        async with persisted(path) as first:
            ids = await submit_all(first.base_url, 30)
        async with persisted(path) as second:
            async with httpx.AsyncClient(base_url=second.base_url, headers=KEY) as client:
                r = await client.delete(f"/api/v3/predictions/{ids['v3']}")
                assert r.json()["data"] == {"id": ids["v3"], "status": "deleted"}
                r = await client.delete(f"/v1/jobs/{ids['abstrakt']}")
                assert (r.status_code, r.json()["status"]) == (200, "cancelled")
        async with persisted(path) as third, httpx.AsyncClient(base_url=third.base_url, headers=KEY) as client:
            now = await statuses(client, ids)
            assert now["v3"]["status"] == "deleted" and now["v3"]["outputs"] == []
            assert now["abstrakt"]["status"] == "cancelled"
            assert now["v1"]["status"] in ("created", "processing")
            r = await client.delete(f"/v1/jobs/{ids['abstrakt']}")
            assert r.status_code == 409
    run(main())


def test_state_file_loaded_tasks_never_call_back(tmp_path: Any) -> None:
    """A task whose sandbox died never sends its webhook from the next sandbox."""
    path = tmp_path / "state.json"

    async def main() -> None:
        async with Receiver() as receiver:
            async with persisted(path) as first:
                async with httpx.AsyncClient(base_url=first.base_url, headers=KEY) as client:
                    r = await client.post(V3_MODEL, json={"prompt": "x", "sandbox_duration": 0.1,
                                                          "webhook_url": receiver.url})
                    task_id = r.json()["data"]["id"]
            async with persisted(path) as second:
                await asyncio.sleep(0.25)
                async with httpx.AsyncClient(base_url=second.base_url, headers=KEY) as client:
                    r = await client.get(f"/api/v3/predictions/{task_id}")
                    assert r.json()["data"]["status"] == "completed"
                assert second.deliveries == [] and receiver.hits == []
    run(main())


def test_state_file_is_saved_on_create_owner_only_without_the_key(tmp_path: Any) -> None:
    """A create is written soon (not only at close), mode 0600, keyless, no temp files left."""
    path = tmp_path / "state" / "sandbox.json"

    async def main() -> None:
        async with persisted(path) as sandbox:
            ids = await submit_all(sandbox.base_url, 30)
            await until(path.exists)
            saved = json.loads(path.read_text())
            assert {t["id"] for t in saved["tasks"]} == set(ids.values())
    run(main())
    assert path.stat().st_mode & 0o777 == 0o600
    assert "sk_test_sandbox" not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["sandbox.json"]


def test_state_file_corrupt_or_bad_records_are_ignored(tmp_path: Any) -> None:
    """A corrupt file starts empty (no crash) and is replaced; bad records are skipped."""
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff{not json")

    async def main() -> None:
        async with persisted(path) as first:
            async with httpx.AsyncClient(base_url=first.base_url, headers=KEY) as client:
                assert (await client.get("/api/v3/predictions/pred_000000000000")).status_code == 404
            ids = await submit_all(first.base_url, 0.0)
        saved = json.loads(path.read_text())
        saved["tasks"] += [{"id": "pred_bad"}, "junk", dict(saved["tasks"][0], id="pred_x",
                                                             model="no/such", created=-1)]
        path.write_text(json.dumps(saved))
        async with persisted(path) as second:
            async with httpx.AsyncClient(base_url=second.base_url, headers=KEY) as client:
                assert (await statuses(client, ids))["v3"]["status"] == "completed"
                assert (await client.get("/api/v3/predictions/pred_x")).status_code == 404
        for text in ("[1, 2]", '{"tasks": 3}', ""):
            path.write_text(text)
            async with persisted(path) as third:
                assert third.base_url
    run(main())


def test_state_file_keeps_the_newest_tasks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SANDBOX_STATE_MAX tasks the file keeps only the newest ones."""
    from get3w_cli.sandbox import persist

    monkeypatch.setattr(persist, "SANDBOX_STATE_MAX", 3)
    path = tmp_path / "state.json"

    async def main() -> None:
        async with persisted(path) as first, httpx.AsyncClient(base_url=first.base_url, headers=KEY) as client:
            ids = []
            for _ in range(5):
                r = await client.post(V3_MODEL, json={"prompt": "x"})
                ids.append(r.json()["data"]["id"])
                await asyncio.sleep(0.002)  # distinct creation times
        assert [t["id"] for t in json.loads(path.read_text())["tasks"]] == ids[:1:-1]
        async with persisted(path) as second:
            async with httpx.AsyncClient(base_url=second.base_url, headers=KEY) as client:
                found = [(await client.get(f"/api/v3/predictions/{i}")).status_code for i in ids]
                assert found == [404, 404, 200, 200, 200]
    run(main())


def test_state_file_shared_by_two_live_sandboxes_keeps_both(tmp_path: Any) -> None:
    """Two sandboxes writing one file merge: neither loses the other's tasks."""
    path = tmp_path / "state.json"

    async def main() -> None:
        async with persisted(path) as one, persisted(path) as two:
            a = await submit_all(one.base_url, 0.0)
            b = await submit_all(two.base_url, 0.0)
        async with persisted(path) as three, httpx.AsyncClient(base_url=three.base_url, headers=KEY) as client:
            for ids in (a, b):
                assert (await statuses(client, ids))["v1"]["status"] == "completed"
    run(main())
