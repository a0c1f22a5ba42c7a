"""Every webhook signature scheme end to end: the sandbox signs (its own code), `g3w run` and `g3w
listen` verify (theirs). A matching secret verifies (the run needs no confirming GET); a wrong one
gets 401. Standard Webhooks deliveries carry one webhook-id across retries and copies."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import ThreadedSandbox, sandbox_env, wait_until
from inproc import invoke
from test_listen import Listen, submit_abstrakt, submit_get3w
from test_sandbox import Receiver, with_sandbox

from get3w_cli.sandbox import Sandbox
from get3w_cli.webhooks.signatures import verify_delivery

# A Standard Webhooks secret as providers issue them: whsec_ and base64 of 24 random bytes.
STANDARD_SECRET = "whsec_" + base64.b64encode(bytes(range(7, 31))).decode()
WAVESPEED_SECRET = "whsec_9c41e0d7a26b4f5f8e3a1c2b7d6e5f40"
PLAIN_SECRET = "whsec_e2e"
V3 = ("flux-dev",)
ABSTRAKT = ("abstrakt:flux-schnell",)
V3_THREE_SEGMENTS = ("wavespeed-ai/z-image/turbo", "--api", "v3")

CASES = [
    ("native", PLAIN_SECRET, V3),
    ("native", PLAIN_SECRET, ABSTRAKT),
    ("get3w", PLAIN_SECRET, V3),
    ("abstrakt", PLAIN_SECRET, ABSTRAKT),
    ("abstrakt-body", PLAIN_SECRET, ABSTRAKT),
    ("standard-v1", STANDARD_SECRET, V3),
    ("standard-v1", STANDARD_SECRET, ABSTRAKT),
    ("standard-v1", PLAIN_SECRET, V3),  # a secret that is not base64: both sides key with its text
    ("wavespeed-v3", WAVESPEED_SECRET, V3),
    ("wavespeed-v3", WAVESPEED_SECRET, ABSTRAKT),
    ("wavespeed-v3", WAVESPEED_SECRET, V3_THREE_SEGMENTS),
]


@pytest.fixture
def listen() -> Iterator[Callable[..., Listen]]:
    """Start ``g3w listen --print-url ...`` subprocesses; each is closed after the test."""
    started: list[Listen] = []

    def start(*args: str) -> Listen:
        started.append(Listen(*args))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


def api_requests(sb: ThreadedSandbox) -> list[Any]:
    """The API requests about the task: not the model's schema `run` reads for its input check
    (Get3W's model list, once a day; Abstrakt's GET /v1/models/{id}: tests/test_models.py)."""
    return [r for r in sb.sandbox.requests if r.path.startswith(("/api/", "/v1/"))
            and not (r.method == "GET" and (r.path == "/api/v3/models" or r.path.startswith("/v1/models")))]


@pytest.mark.parametrize(("scheme", "secret", "model"), CASES)
def test_run_verifies_each_scheme_with_the_matching_secret(scheme: str, secret: str, model: tuple[str, ...]) -> None:
    """The callback is verified and ends the run at once: the submit is the only API request."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=secret, signature_scheme=scheme) as sb:
        result = invoke("run", *model, "-p", "x", "--via", "webhook", "--json", "--webhook-secret", secret,
                        env=sandbox_env(sb))
        assert result.code == 0, result.stderr
        assert result.json()["via"] == "webhook" and result.json()["status"] == "completed"
        # The sandbox records a delivery once it has read the answer, which may be after the run exits.
        assert wait_until(lambda: [d.status_code for d in sb.sandbox.deliveries]) == [200]
        assert len(api_requests(sb)) == 1, [r.path for r in api_requests(sb)]  # no confirming GET


def test_the_standard_secret_may_be_given_without_its_prefix() -> None:
    """A whsec_ secret pasted without whsec_ verifies v1 and v3 deliveries alike."""
    for scheme, secret in (("standard-v1", STANDARD_SECRET), ("wavespeed-v3", WAVESPEED_SECRET)):
        with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=secret,
                             signature_scheme=scheme) as sb:
            result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--json",
                            env={**sandbox_env(sb), "GET3W_WEBHOOK_SECRET": secret.removeprefix("whsec_")})
            assert result.code == 0, result.stderr
            assert result.json()["via"] == "webhook" and len(api_requests(sb)) == 1


@pytest.mark.parametrize(("scheme", "secret", "wrong"), [
    ("standard-v1", STANDARD_SECRET, "whsec_" + base64.b64encode(bytes(24)).decode()),
    ("wavespeed-v3", WAVESPEED_SECRET, "whsec_not-the-one"),
    # The right text keyed the other way: v1 decodes it, v3 must not.
    ("wavespeed-v3", WAVESPEED_SECRET, "whsec_" + base64.b64encode(b"9c41e0d7a26b4f5f8e3a1c2b7d6e5f40").decode()),
])
def test_run_with_a_wrong_secret_gets_401_and_polls(scheme: str, secret: str, wrong: str) -> None:
    """Every delivery signed with another secret is refused (401); the run says so once and polls."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=secret, signature_scheme=scheme) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--json", "--webhook-secret", wrong,
                        "--timeout", "20s", env=sandbox_env(sb))
        statuses = [d.status_code for d in sb.sandbox.deliveries]
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "poll"
    assert statuses and set(statuses) == {401}
    assert result.stderr.count("the webhook secret looks wrong") == 1


@pytest.mark.parametrize(("scheme", "secret", "submit", "provider"), [
    ("standard-v1", STANDARD_SECRET, submit_get3w, "get3w"),
    ("wavespeed-v3", WAVESPEED_SECRET, submit_abstrakt, "abstrakt"),
])
def test_listen_verifies_standard_deliveries(listen: Any, scheme: str, secret: str, submit: Any,
                                             provider: str) -> None:
    """g3w listen --secret: a Standard-signed delivery is a verified event; its copies are duplicates."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=secret, signature_scheme=scheme,
                         webhook_duplicates=1) as sb:
        proc = listen("--json", "--count", "1", "--secret", secret)
        task_id = submit(sb, proc.url)
        event = proc.event(timeout=8)
        assert (event["id"], event["status"], event["verified"], event["provider"]) == (
            task_id, "completed", True, provider)
        assert proc.wait() == 0


def test_listen_drops_a_standard_copy_by_its_webhook_id_whatever_its_body(listen: Any) -> None:
    """g3w listen --count 2: a second delivery with an id already counted is a duplicate even when
    its body says something new (another final status); the listener answers it 200 ("duplicate"),
    prints no event for it, and the next distinct delivery is the second event."""
    import time

    from get3w_cli.webhooks.standard import sign_standard

    def signed(msg_id: str, task_id: str, status: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"id": task_id, "model": "get3w/flux-dev", "status": status,
                           "outputs": ["https://cdn.example/a.png"] if status == "completed" else []}).encode()
        stamp = int(time.time())
        return body, {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "Content-Type": "application/json",
                      "webhook-signature": sign_standard("v1", STANDARD_SECRET, msg_id, stamp, body)}

    proc = listen("--json", "--count", "2", "--secret", STANDARD_SECRET)
    answers = []
    for msg_id, task_id, status in (("msg_one", "pred_s1", "completed"), ("msg_one", "pred_s1", "failed"),
                                    ("msg_two", "pred_s2", "completed")):
        body, headers = signed(msg_id, task_id, status)
        answers.append(httpx.post(proc.url, content=body, headers=headers))
    events = [proc.event(timeout=8) for _ in range(2)]
    assert proc.wait() == 0, proc.stderr
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[1].json().get("duplicate") is True and answers[0].json().get("duplicate") is not True
    assert [(e["id"], e["status"], e["verified"]) for e in events] == [
        ("pred_s1", "completed", True), ("pred_s2", "completed", True)]
    assert "1 duplicate(s)" in proc.stderr, proc.stderr


def test_listen_with_a_wrong_secret_answers_401(listen: Any) -> None:
    """g3w listen with another secret refuses a wavespeed-v3 delivery and prints no event."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=WAVESPEED_SECRET,
                         signature_scheme="wavespeed-v3") as sb:
        proc = listen("--json", "--count", "1", "--secret", "whsec_wrong", "--timeout", "30s")
        submit_get3w(sb, proc.url)
        wait_until(lambda: any(d.status_code == 401 for d in sb.sandbox.deliveries), timeout=10)
        proc.close()
    assert proc.lines.empty()
    assert {d.status_code for d in sb.sandbox.deliveries} == {401}


def test_standard_deliveries_keep_their_webhook_id_across_retries_and_copies() -> None:
    """Two failed attempts, the success and a duplicate copy: one webhook-id, a timestamp per
    attempt, each verifying with the secret; another delivery (the stale one) gets another id."""
    async def test(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
        async with Receiver(statuses=(500, 503)) as hook:
            await client.post("/v1/google/nano-banana-pro/text-to-image", params={"webhook": hook.url},
                              json={"prompt": "x", "sandbox_webhook": "late_processing"})
            await hook.wait_for(5)
        ids = [headers["webhook-id"] for _, headers, _ in hook.hits]
        assert len(set(ids[:4])) == 1 and ids[4] != ids[0] and re.fullmatch(r"msg_[0-9a-f]{24}", ids[0])
        assert [d.kind for d in sandbox.deliveries][-2:] == ["duplicate", "stale"]
        for _, headers, body in hook.hits:
            assert headers["webhook-signature"].startswith("v1,")
            assert verify_delivery("get3w", STANDARD_SECRET, headers, body)
            assert not verify_delivery("get3w", WAVESPEED_SECRET, headers, body)
    with_sandbox(test, webhook_secret=STANDARD_SECRET, signature_scheme="standard-v1", webhook_duplicates=1,
                 webhook_time_scale=0.001)


def test_the_sandbox_command_signs_in_the_scheme_it_is_asked_for() -> None:
    """g3w sandbox --signature-scheme wavespeed-v3 --webhook-secret S: a run with S verifies its callback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "get3w_cli", "sandbox", "--port", "0", "--duration", "0.05s",
         "--webhook-time-scale", "0.01", "--signature-scheme", "wavespeed-v3", "--webhook-secret", WAVESPEED_SECRET],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        env = {"GET3W_BASE_URL": base_url, "GET3W_API_KEY": "sk_test_key", "GET3W_WEBHOOK_SECRET": WAVESPEED_SECRET}
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--json", env=env)
        assert result.code == 0, result.stderr
        assert result.json()["via"] == "webhook"
        deliveries = httpx.get(f"{base_url}/_sandbox/deliveries").json()
        requests = httpx.get(f"{base_url}/_sandbox/requests").json()
        assert [d["status_code"] for d in deliveries] == [200]
        assert deliveries[0]["headers"]["webhook-signature"].startswith("v3,")
        paths = [r["path"] for r in requests if r["path"].startswith("/api/") and r["path"] != "/api/v3/models"]
        assert paths == ["/api/v3/get3w/flux-dev"]  # (the model list: run's input check, once a day)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_the_sandbox_command_refuses_an_unknown_scheme() -> None:
    """A scheme that does not exist is a usage error (exit 2), nothing served."""
    result = invoke("sandbox", "--port", "0", "--signature-scheme", "v2")
    assert result.code == 2
    assert "signature-scheme" in result.stderr


def test_a_v3_model_with_three_segments_runs_under_api_v3() -> None:
    """--api v3 wavespeed-ai/z-image/turbo posts to /api/v3/wavespeed-ai/z-image/turbo; the record says v3,
    also when the callback is an unsigned hint confirmed by a GET."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = invoke("run", *V3_THREE_SEGMENTS, "-p", "x", "--via", "webhook", "--json", env=sandbox_env(sb))
        assert result.code == 0, result.stderr
        record = result.json()
        assert (record["api"], record["model"], record["via"]) == ("v3", "wavespeed-ai/z-image/turbo", "webhook")
        assert sb.sandbox.submissions()[0].path == "/api/v3/wavespeed-ai/z-image/turbo"
        assert json.loads(sb.sandbox.deliveries[0].body)["model"] == "wavespeed-ai/z-image/turbo"
