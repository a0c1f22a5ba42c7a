"""Bad input and provider errors through the CLI, in-process: one clear line, the exit code, no traceback."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from conftest import Result, ThreadedSandbox, sandbox_env
from inproc import invoke

HTML_PAGE = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


def assert_clean_error(result: Result, code: int) -> None:
    """Exit ``code``; stderr is an Error: line (and maybe a Hint: line); stdout empty; no traceback."""
    assert result.code == code, (result.code, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith(("Error: ", "Hint: "))]
    assert lines and lines[0].startswith("Error: "), result.stderr
    assert sum(line.startswith("Error: ") for line in result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "<html" not in result.stderr.lower() and "<!doctype" not in result.stderr.lower()


# --- bad input: exit 2, nothing sent ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["flux-dev", "-i", "x:={bad"], "not valid JSON"),
        (["flux-dev", "-i", "seed:=NaN"], "not valid JSON"),
        (["flux-dev", "-i", "noequals"], "bad -i"),
        (["flux-dev", "--input", "{missing}"], "cannot read --input"),
        (["flux-dev", "--input", "{bad}"], "not valid JSON"),
        (["flux-dev", "--input", "{list}"], "JSON object"),
        (["openai:gpt-image", "-p", "x"], "unknown provider prefix"),
        (["flux-dev", "-p", "x", "--api", "v2"], "--api"),
        (["", "-p", "x"], "invalid model name"),
        (["abstrakt:", "-p", "x"], "invalid model name"),
        (["flux-dev", "-p", "x", "-i", "image=@{missing}"], "no readable file"),
        (["flux-dev", "-p", "x", "--channel", "economy"], "--channel"),
        (["abstrakt:flux-schnell", "-p", "x", "--channel", "stable"], "--channel"),
        (["flux-dev", "-p", "x", "--timeout", "soon"], "invalid duration"),
        (["flux-dev", "-p", "x", "--provider", "abstrakt", "--api", "v3"], "only API v1"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(tmp_path: Path, sandbox: ThreadedSandbox, args: list[str],
                                             says: str) -> None:
    """Malformed inputs, unknown provider or API, empty model, unreadable files: exit 2 before any request."""
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1, 2]")
    paths = {"{missing}": str(tmp_path / "missing.json"), "{bad}": str(tmp_path / "bad.json"),
             "{list}": str(tmp_path / "list.json")}
    args = [arg.replace("{missing}", paths["{missing}"]) if "{missing}" in arg else paths.get(arg, arg)
            for arg in args]
    result = invoke("run", *args, env=sandbox_env(sandbox))
    assert result.code == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert says in result.stderr
    assert sandbox.sandbox.requests == []


def test_submit_also_checks_input_before_sending(sandbox: ThreadedSandbox) -> None:
    """submit shares run's input checks."""
    result = invoke("submit", "flux-dev", "-i", "a:=[", env=sandbox_env(sandbox))
    assert_clean_error(result, 2)
    assert sandbox.sandbox.requests == []


def test_missing_key_exits_3_and_sends_nothing(sandbox: ThreadedSandbox) -> None:
    """No API key anywhere: exit 3 with how to set one; the provider never hears of it."""
    env = {"GET3W_BASE_URL": sandbox.base_url, "ABSTRAKT_BASE_URL": sandbox.base_url}
    for model in ("flux-dev", "abstrakt:flux-schnell"):
        result = invoke("run", model, "-p", "x", env=env)
        assert_clean_error(result, 3)
        assert "no API key" in result.stderr and "API_KEY" in result.stderr
    assert sandbox.sandbox.requests == []


# --- provider errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "key", "says"),
    [
        ("flux-dev", "sk_invalid", "401"),
        ("google/nano-banana-pro/text-to-image", "sk_invalid", "401"),
        ("flux-dev", "sk_broke", "Insufficient balance"),
        ("abstrakt:flux-schnell", "sk_broke", "403"),
    ],
)
def test_auth_errors_exit_3(sandbox: ThreadedSandbox, model: str, key: str, says: str) -> None:
    """401 (bad key) and 403 (no balance): exit 3, a one-line message with a hint about the key."""
    result = invoke("run", model, "-p", "x", "--via", "poll", env=sandbox_env(sandbox, key=key))
    assert_clean_error(result, 3)
    assert says in result.stderr and "Hint:" in result.stderr
    assert key not in result.stderr
    assert len(sandbox.sandbox.submissions()) == 1


@pytest.mark.parametrize(
    ("args", "inject"),
    [
        (["run", "get3w/no-such-model", "-p", "x"], None),  # 404 model not found
        (["run", "flux-dev", "-p", "x", "-i", "sandbox_outputs=-1"], None),  # 400 invalid input
        (["run", "abstrakt:flux-schnell", "-p", "x"], {"status": 422, "method": "POST"}),
    ],
)
def test_rejected_requests_exit_5(sandbox: ThreadedSandbox, args: list[str], inject: dict | None) -> None:
    """400 / 404 / 422 from the provider: exit 5, the provider's message on one line."""
    if inject:
        sandbox.sandbox.inject(**inject)
    result = invoke(*args, "--via", "poll", env=sandbox_env(sandbox))
    assert_clean_error(result, 5)
    assert "HTTP 4" in result.stderr


def test_errors_about_a_task_point_at_the_task(sandbox: ThreadedSandbox) -> None:
    """get of an unknown id (404) and a cancel refused with 409 (the job ended between g3w's look and its
    DELETE): exit 5, hints about the task, not a model."""
    env = sandbox_env(sandbox)
    missing = invoke("get", "pred_doesnotexist", env=env)
    assert_clean_error(missing, 5)
    assert "Hint: check the task id pred_doesnotexist" in missing.stderr
    job = invoke("submit", "abstrakt:flux-schnell", "-p", "x", "-i", "sandbox_duration=30", env=env).stdout.strip()
    sandbox.sandbox.inject(status=409, method="DELETE", path_prefix="/v1/jobs")
    finished = invoke("cancel", job, env=env)
    assert_clean_error(finished, 5)
    assert "HTTP 409" in finished.stderr and f"g3w get {job}" in finished.stderr
    assert "model name" not in missing.stderr + finished.stderr


def test_throttling_that_outlasts_the_retries_exits_6(sandbox: ThreadedSandbox) -> None:
    """429 on every submit attempt: retried (a 429 created nothing), then exit 6."""
    sandbox.sandbox.inject(status=429, count=50, method="POST", retry_after=0)
    started = time.monotonic()
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", env=sandbox_env(sandbox))
    assert_clean_error(result, 6)
    assert "429" in result.stderr
    assert len(sandbox.sandbox.submissions()) == 5
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("inject", "says"),
    [
        ({"status": 500, "method": "POST"}, "HTTP 500"),
        ({"status": 502, "method": "POST", "body": HTML_PAGE}, "HTTP 502"),
        ({"status": 200, "method": "POST", "body": b"<html>surprise</html>"}, "non-JSON"),
    ],
)
def test_server_errors_and_html_pages_exit_6(sandbox: ThreadedSandbox, inject: dict, says: str) -> None:
    """5xx, HTML error pages and non-JSON answers: exit 6, one line, no HTML, never resubmitted."""
    sandbox.sandbox.inject(**inject)
    result = invoke("run", "abstrakt:flux-schnell", "-p", "x", "--via", "poll", env=sandbox_env(sandbox))
    assert_clean_error(result, 6)
    assert says in result.stderr
    assert len(sandbox.sandbox.submissions()) == 1


def test_html_error_page_on_a_get_is_one_line(sandbox: ThreadedSandbox) -> None:
    """An HTML 503 page on every GET: retried, then reported in one line without the HTML."""
    sandbox.sandbox.inject(status=503, count=100, method="GET", path_prefix="/api/v3/predictions", body=HTML_PAGE,
                           retry_after=0)
    result = invoke("get", _submitted(sandbox), env=sandbox_env(sandbox))
    assert_clean_error(result, 6)
    assert "HTTP 503" in result.stderr
    # every attempt the retry policy allows (besides them: the submit and its daily model-list GET)
    assert len([r for r in sandbox.sandbox.requests if r.path.startswith("/api/v3/predictions")]) == 5
    assert len(sandbox.sandbox.submissions()) == 1


def _submitted(sandbox: ThreadedSandbox) -> str:
    result = invoke("submit", "flux-dev", "-p", "x", "-q", env=sandbox_env(sandbox))
    assert result.code == 0
    return result.stdout.strip()


def test_connection_refused_exits_6() -> None:
    """A base URL where nothing listens: exit 6 with a hint about the network and base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", "--base-url", f"http://127.0.0.1:{port}",
                     env={"GET3W_API_KEY": "sk_test_key"})
    assert_clean_error(result, 6)
    assert "base URL" in result.stderr


def test_lost_submit_answer_is_never_resubmitted(sandbox: ThreadedSandbox) -> None:
    """The submit reached the provider but the answer was lost: exit 6, exactly one submission, and it says so."""
    sandbox.sandbox.inject(status=200, method="POST", drop_connection=True)
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", env=sandbox_env(sandbox))
    assert_clean_error(result, 6)
    assert "not resubmitted" in result.stderr
    assert len(sandbox.sandbox.submissions()) == 1


def test_webhook_without_a_reachable_url_exits_7_before_submitting() -> None:
    """--via webhook for a remote provider with no tunnel or public URL: exit 7, nothing submitted."""
    result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "none",
                 env={"GET3W_API_KEY": "sk_test_key", "GET3W_BASE_URL": "https://api.get3w.invalid"})
    assert_clean_error(result, 7)
    assert "--via poll" in result.stderr


def test_cancel_on_an_api_without_cancel_exits_2(sandbox: ThreadedSandbox) -> None:
    """Get3W v1 has no cancel endpoint: exit 2, and no request is sent."""
    result = invoke("cancel", "0a82292d-32de-46d0-a0d8-eef219153f16", env=sandbox_env(sandbox))
    assert_clean_error(result, 2)
    assert sandbox.sandbox.requests == []


def test_unknown_provider_in_environment_is_a_usage_error(sandbox: ThreadedSandbox) -> None:
    """G3W_PROVIDER set to something unknown: exit 2, nothing sent."""
    result = invoke("run", "flux-dev", "-p", "x", env={**sandbox_env(sandbox), "G3W_PROVIDER": "openai"})
    assert_clean_error(result, 2)
    assert sandbox.sandbox.requests == []


def test_invalid_json_in_input_file_from_stdin(sandbox: ThreadedSandbox) -> None:
    """--input - with invalid JSON on stdin: exit 2; valid JSON on stdin is sent as the inputs."""
    bad = invoke("submit", "flux-dev", "--input", "-", env=sandbox_env(sandbox), input="{nope")
    assert_clean_error(bad, 2)
    good = invoke("submit", "flux-dev", "--input", "-", "--json", env=sandbox_env(sandbox),
               input=json.dumps({"prompt": "from stdin", "seed": 7}))
    assert good.code == 0
    assert json.loads(sandbox.sandbox.submissions()[0].body) == {"prompt": "from stdin", "seed": 7}
