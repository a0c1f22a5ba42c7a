"""run / submit / get / wait / cancel end to end against the sandbox: in-process (``inproc.invoke``), and
in real processes for what needs one (a terminal, signals)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Result, ThreadedSandbox, g3w, g3w_on_terminal, said_until_submitted, sandbox_env
from inproc import invoke

RECORD_KEYS = ["id", "provider", "api", "model", "status", "outputs", "error", "via", "input", "created_at",
               "completed_at", "elapsed_s", "raw"]
RECORD_KEYS_WITH_FILES = [*RECORD_KEYS[:6], "files", *RECORD_KEYS[6:]]
STATUSES = {"created", "processing", "completed", "failed", "cancelled"}
DEAD_URL = "http://127.0.0.1:9"
FAST = ("--poll-max", "0.2")
SUBMITTED = re.compile(r"submitted (\S+) \(")
V1_MODEL = "google/nano-banana-pro/text-to-image"


def run_json(sb: ThreadedSandbox, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    """`g3w run ... --json` against the sandbox; stdout must be exactly one JSON object."""
    result = invoke("run", *args, "--json", *FAST, env={**sandbox_env(sb), **(env or {})})
    assert result.stdout.endswith("}\n") and result.stdout.count("\n") == 1, (result.stdout, result.stderr)
    return result, json.loads(result.stdout)


def check_record(record: dict[str, Any], *, files: bool = False) -> None:
    """The task record of CONTRACT.md section 4: keys, order and types."""
    assert list(record) == (RECORD_KEYS_WITH_FILES if files else RECORD_KEYS)
    for key in ("id", "provider", "api", "model", "status"):
        assert isinstance(record[key], str) and record[key], key
    assert record["status"] in STATUSES
    assert isinstance(record["outputs"], list) and all(isinstance(u, str) for u in record["outputs"])
    if files:
        assert isinstance(record["files"], list) and all(isinstance(f, str) for f in record["files"])
    error = record["error"]
    assert error is None or (set(error) == {"code", "message"} and isinstance(error["message"], str)
                             and (error["code"] is None or isinstance(error["code"], str)))
    assert record["via"] in ("webhook", "poll", "sync", None)
    assert isinstance(record["input"], dict) and isinstance(record["raw"], dict)
    for key in ("created_at", "completed_at"):
        assert record[key] is None or isinstance(record[key], str)
    assert record["elapsed_s"] is None or (isinstance(record["elapsed_s"], float) and record["elapsed_s"] >= 0)


def assert_png(path: Path) -> None:
    """A real PNG: signature, IHDR, IDAT that inflates to the right size, IEND, every CRC right."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and width > 0 and height > 0
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)
    assert b"IEND" in chunks


def api_requests(sb: ThreadedSandbox, method: str, prefix: str) -> list[Any]:
    return [r for r in sb.sandbox.requests if r.method == method and r.path.startswith(prefix)]


# --- every provider, every mode ---------------------------------------------------------------

MATRIX = [
    # model, --via, expected via, (provider, api, canonical model), how the callback / sync is asked for
    ("flux-dev", "poll", "poll", ("get3w", "v3", "get3w/flux-dev"), None),
    ("get3w:flux-dev", "webhook", "webhook", ("get3w", "v3", "get3w/flux-dev"), "body"),
    ("get3w/flux-dev", "auto", "webhook", ("get3w", "v3", "get3w/flux-dev"), "body"),
    (V1_MODEL, "poll", "poll", ("get3w", "v1", V1_MODEL), None),
    (V1_MODEL, "sync", "sync", ("get3w", "v1", V1_MODEL), "sync"),
    (V1_MODEL, "webhook", "webhook", ("get3w", "v1", V1_MODEL), "query"),
    ("abstrakt:flux-schnell", "poll", "poll", ("abstrakt", "v1", "flux-schnell"), None),
    ("abstrakt:fal-ai/flux/schnell", "sync", "sync", ("abstrakt", "v1", "fal-ai/flux/schnell"), "sync"),
    ("abstrakt:fal-ai/flux/dev", "webhook", "webhook", ("abstrakt", "v1", "fal-ai/flux/dev"), "body"),
]


@pytest.mark.parametrize(("model", "via", "expected_via", "route", "callback"), MATRIX)
def test_run_every_provider_and_mode(sandbox: ThreadedSandbox, model: str, via: str, expected_via: str,
                                     route: tuple[str, str, str], callback: str | None) -> None:
    """run --json completes on each provider and mode with the exact record; the submit asked for it right."""
    result, record = run_json(sandbox, model, "-p", "a cat", "--via", via)
    assert result.code == 0, result.stderr
    check_record(record)
    assert (record["provider"], record["api"], record["model"]) == route
    assert (record["status"], record["via"], record["error"]) == ("completed", expected_via, None)
    assert record["input"] == {"prompt": "a cat"}
    assert len(record["outputs"]) == 1 and record["outputs"][0].startswith(sandbox.base_url + "/cdn/outputs/")
    assert record["created_at"] and record["completed_at"]
    [submit] = sandbox.sandbox.submissions()
    body = json.loads(submit.body)
    if route[0] == "abstrakt":
        assert submit.path == f"/v1/models/{route[2]}/run"
        assert body["sync"] is (callback == "sync") and body["input"] == {"prompt": "a cat"}
        assert ("webhook_url" in body) is (callback == "body")
    elif route[1] == "v3":
        assert submit.path == f"/api/v3/{route[2]}" and ("webhook_url" in body) is (callback == "body")
    else:
        assert submit.path == f"/v1/{route[2]}"
        assert ("webhook" in submit.query) is (callback == "query")
        assert (submit.query.get("sync") == "true") is (callback == "sync")
    assert record["id"] in result.stderr  # talk on stderr names the task


def test_v3_sync_falls_back_to_polling_with_a_note(sandbox: ThreadedSandbox) -> None:
    """Get3W v3 has no sync mode: --via sync polls, and says so on stderr."""
    result, record = run_json(sandbox, "flux-dev", "-p", "x", "--via", "sync")
    assert result.code == 0
    assert record["via"] == "poll"
    assert "no sync mode" in result.stderr
    assert "sync" not in sandbox.sandbox.submissions()[0].query


@pytest.mark.parametrize("model", ["google/nano-banana-pro/text-to-image", "abstrakt:flux-schnell"])
def test_sync_answer_still_processing_continues_by_polling(model: str) -> None:
    """A sync request that comes back 'still processing' (past the provider's cutoff) is polled to the end."""
    with ThreadedSandbox(duration=0.05, sync_cutoff=0.1) as sb:
        result, record = run_json(sb, model, "-p", "x", "-i", "sandbox_duration=0.5", "--via", "sync")
        assert result.code == 0, result.stderr
        assert (record["status"], record["via"]) == ("completed", "poll")
        assert len(api_requests(sb, "GET", "/v1/")) >= 1


@pytest.mark.parametrize(("secret", "gets"), [("whsec_test_secret", 0), (None, 1)])
def test_signed_callbacks_are_trusted_and_unsigned_ones_confirmed(secret: str | None, gets: int) -> None:
    """With the webhook secret a signed callback ends the wait with no GET; without it, exactly one GET."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=secret) as sb:
        env = {"GET3W_WEBHOOK_SECRET": secret} if secret else {}
        result, record = run_json(sb, "flux-dev", "-p", "x", "--via", "webhook", env=env)
        assert (result.code, record["via"]) == (0, "webhook")
        assert len(api_requests(sb, "GET", "/api/v3/predictions/")) == gets


def test_callback_before_submit_answer_is_not_lost(sandbox: ThreadedSandbox) -> None:
    """A callback that arrives before the submit answer (sandbox_webhook=early) still ends the wait."""
    result, record = run_json(sandbox, "flux-dev", "-p", "x", "-i", "sandbox_duration=0", "-i",
                              "sandbox_webhook=early", "--via", "webhook", "--fallback-after", "30")
    assert (result.code, record["via"], record["status"]) == (0, "webhook", "completed")
    assert record["elapsed_s"] < 5


def test_no_callback_falls_back_to_polling(sandbox: ThreadedSandbox) -> None:
    """When the callback never comes (sandbox_webhook=drop), run polls after --fallback-after."""
    result, record = run_json(sandbox, "abstrakt:flux-schnell", "-p", "x", "-i", "sandbox_webhook=drop",
                              "--via", "webhook", "--fallback-after", "0.3")
    assert (result.code, record["via"], record["status"]) == (0, "poll", "completed")
    assert "no callback within 0.3s" in result.stderr


# --- stdout / stderr --------------------------------------------------------------------------


def test_stdout_has_only_urls_and_quiet_silences_stderr(sandbox: ThreadedSandbox) -> None:
    """Without --json stdout is one URL a line; talk goes to stderr, plain (no colour) when piped; --quiet: none."""
    env = sandbox_env(sandbox)
    talk = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_outputs=2", *FAST, env=env)
    assert talk.code == 0
    lines = talk.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(sandbox.base_url + "/cdn/outputs/") for line in lines)
    assert "submitted" in talk.stderr and "completed" in talk.stderr
    assert "\x1b[" not in talk.stderr
    quiet = invoke("run", "flux-dev", "-p", "x", "--quiet", *FAST, env=env)
    assert quiet.code == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith(sandbox.base_url) and quiet.stdout.count("\n") == 1


def test_a_terminal_shows_a_spinner_with_the_phase_and_colour(sandbox: ThreadedSandbox) -> None:
    """On a terminal, stderr animates the current phase (then clears it); stdout still has only the URL."""
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=1", "--via", "poll", *FAST,
                             env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(sandbox.base_url + "/cdn/outputs/") and result.stdout.count("\n") == 1
    assert "polling" in result.stderr and "0:00:0" in result.stderr  # the phase and the elapsed time
    assert "\x1b[" in result.stderr and "\x1b[?25l" in result.stderr  # redrawn in place, cursor hidden


def test_submit_prints_only_the_id_and_passes_the_webhook_url(sandbox: ThreadedSandbox) -> None:
    """submit prints the id on stdout and registers --webhook-url with the task (v3 body, v1 query)."""
    env = sandbox_env(sandbox)
    hook = "https://hooks.example/cb?x=1"
    v3 = invoke("submit", "flux-dev", "-p", "x", "--webhook-url", hook, env=env)
    v1 = invoke("submit", "google/nano-banana-pro/text-to-image", "-p", "x", "--webhook-url", hook, "--json", env=env)
    assert v3.code == 0 and re.fullmatch(r"pred_\w+\n", v3.stdout)
    assert f"g3w wait {v3.stdout.strip()}" in v3.stderr
    record = json.loads(v1.stdout)
    check_record(record)
    assert (record["status"], record["via"], record["api"]) == ("created", None, "v1")
    first, second = sandbox.sandbox.submissions()
    assert json.loads(first.body)["webhook_url"] == hook
    assert second.query["webhook"] == hook


# --- downloads --------------------------------------------------------------------------------


def test_output_dir_downloads_real_pngs_atomically_without_the_key(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """-o DIR: <id>_<index>.png for each output, real PNGs, no .part files, no key sent to the output host."""
    out = tmp_path / "new" / "dir"
    result, record = run_json(sandbox, "abstrakt:flux-schnell", "-p", "x", "-i", "sandbox_outputs=3",
                              "-i", "sandbox_output_bytes=200000", "-o", str(out))
    assert result.code == 0, result.stderr
    check_record(record, files=True)
    job = record["id"]
    assert record["files"] == [str(out / f"{job}_{i}.png") for i in range(3)]
    assert sorted(p.name for p in out.iterdir()) == [f"{job}_{i}.png" for i in range(3)]
    for name in record["files"]:
        assert_png(Path(name))
        assert Path(name).stat().st_size >= 200000
    cdn = api_requests(sandbox, "GET", "/cdn/")
    assert len(cdn) == 3 and all("authorization" not in r.headers for r in cdn)
    assert all(r.headers.get("authorization") == "Bearer sk_test_key"
               for r in sandbox.sandbox.requests if not r.path.startswith("/cdn/"))


def test_plain_output_prints_file_paths(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """With -o and no --json, stdout lists the downloaded files."""
    result = invoke("run", "flux-dev", "-p", "x", "-o", str(tmp_path / "o"), *FAST, env=sandbox_env(sandbox))
    assert result.code == 0
    [line] = result.stdout.splitlines()
    assert re.fullmatch(re.escape(str(tmp_path / "o")) + r"/pred_\w+_0\.png", line)
    assert_png(Path(line))


@pytest.mark.parametrize("json_out", [False, True])
def test_failed_download_exits_8_with_the_urls(tmp_path: Path, sandbox: ThreadedSandbox, json_out: bool) -> None:
    """The task completed but its output host answers 404: exit 8, the URLs still printed, no partial file."""
    sandbox.sandbox.inject(status=404, count=10, path_prefix="/cdn")
    out = tmp_path / "o"
    args = ["run", "flux-dev", "-p", "x", "-i", "sandbox_outputs=2", "-o", str(out), *FAST]
    result = invoke(*args, *(["--json"] if json_out else []), env=sandbox_env(sandbox))
    assert result.code == 8
    urls = [r.path for r in api_requests(sandbox, "GET", "/cdn/")]
    assert urls and "could not be downloaded" in result.stderr and "Traceback" not in result.stderr
    if json_out:
        record = json.loads(result.stdout)
        check_record(record)
        outputs = record["outputs"]
        assert record["status"] == "completed"
    else:
        outputs = result.stdout.splitlines()
    assert len(outputs) == 2 and all(u.startswith(sandbox.base_url + "/cdn/outputs/") for u in outputs)
    assert list(out.iterdir()) == []


# --- failures, timeouts, cancellation -------------------------------------------------------


@pytest.mark.parametrize("model", ["flux-dev", "google/nano-banana-pro/text-to-image", "abstrakt:flux-schnell"])
def test_failed_task_exits_1_with_the_record(sandbox: ThreadedSandbox, model: str) -> None:
    """A task the provider reports failed: exit 1, the record (with its error) still on stdout."""
    result, record = run_json(sandbox, model, "-p", "x", "-i", "sandbox_fail=model exploded", "--via", "poll")
    assert result.code == 1
    check_record(record)
    assert record["status"] == "failed" and record["outputs"] == []
    assert record["error"]["message"] == "model exploded"
    assert f"task {record['id']} failed: model exploded" in result.stderr


def test_timeout_exits_4_with_the_id_and_resume_command(sandbox: ThreadedSandbox) -> None:
    """--timeout: exit 4, nothing on stdout, the id and `g3w wait <id>` on stderr, the task left running."""
    started = time.monotonic()
    result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=30", "--via", "poll", "--timeout", "1s",
                 *FAST, env=sandbox_env(sandbox))
    assert result.code == 4 and result.stdout == ""
    assert time.monotonic() - started < 5
    [task_id] = SUBMITTED.findall(result.stderr)
    assert f"g3w wait {task_id}" in result.stderr
    assert api_requests(sandbox, "DELETE", "/") == []


def test_timeout_stays_bounded_while_the_provider_throttles(sandbox: ThreadedSandbox) -> None:
    """--timeout bounds the wait even when every poll is answered 429 with a long Retry-After."""
    sandbox.sandbox.inject(status=429, count=50, method="GET", path_prefix="/api/v3/predictions", retry_after=3)
    started = time.monotonic()
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", "--timeout", "1s", *FAST, env=sandbox_env(sandbox))
    assert result.code == 4
    assert time.monotonic() - started < 4


def test_short_timeout_is_honoured_under_via_sync(sandbox: ThreadedSandbox) -> None:
    """--via sync with a --timeout shorter than a sync request may block: polled, so exit 4 comes on time."""
    started = time.monotonic()
    result = invoke("run", V1_MODEL, "-p", "x", "-i", "sandbox_duration=30", "--via", "sync", "--timeout", "1s",
                 *FAST, env=sandbox_env(sandbox))
    assert result.code == 4
    assert time.monotonic() - started < 5
    [task_id] = SUBMITTED.findall(result.stderr)
    assert f"g3w wait {task_id}" in result.stderr and "polling instead" in result.stderr
    assert "sync" not in sandbox.sandbox.submissions()[0].query


def test_on_timeout_cancel_deletes_the_task(sandbox: ThreadedSandbox) -> None:
    """--on-timeout cancel: the timed-out task is cancelled at the provider (v3 DELETE)."""
    result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=30", "--timeout", "0.5s",
                 "--on-timeout", "cancel", *FAST, env=sandbox_env(sandbox))
    assert result.code == 4
    [task_id] = SUBMITTED.findall(result.stderr)
    assert [r.path for r in api_requests(sandbox, "DELETE", "/")] == [f"/api/v3/predictions/{task_id}"]
    assert "cancelled" in result.stderr


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(("signum", "extra", "cancels"), [
    (signal.SIGINT, (), False),
    (signal.SIGTERM, (), False),
    (signal.SIGINT, ("--on-timeout", "cancel"), True),
])
def test_interrupt_exits_130_with_the_id_and_closes_the_listener(sandbox: ThreadedSandbox, signum: int,
                                                                 extra: tuple[str, ...], cancels: bool) -> None:
    """Ctrl-C / SIGTERM during a wait: exit 130, the id and how to resume; cancelled only when asked."""
    env = {**os.environ, **sandbox_env(sandbox)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "get3w_cli", "run", "flux-dev", "-p", "x", "-i", "sandbox_duration=30",
         "--via", "webhook", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        text = said_until_submitted(proc)
        [port] = re.findall(r"listening for callbacks at http://127\.0\.0\.1:(\d+)/", text)
        [task_id] = SUBMITTED.findall(text)
        assert _port_open(int(port))
        proc.send_signal(signum)
        stdout, rest = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert stdout == ""
    assert task_id in rest and "Traceback" not in rest
    deletes = [r.path for r in api_requests(sandbox, "DELETE", "/")]
    if cancels:
        assert deletes == [f"/api/v3/predictions/{task_id}"]
        assert f"g3w get {task_id}" in rest
    else:
        assert deletes == []
        assert f"g3w wait {task_id}" in rest
    assert not _port_open(int(port))


# --- the journal: wait / get / cancel from the id alone ---------------------------------------


def test_journal_lets_get_wait_and_cancel_work_from_the_id(sandbox: ThreadedSandbox) -> None:
    """Tasks submitted with --base-url are found again by id alone (provider, API, base URL, input, model)."""
    # Only the journal knows where the tasks live: the environment points nowhere.
    env = {"GET3W_API_KEY": "sk_test_key", "ABSTRAKT_API_KEY": "sk_test_key",
           "GET3W_BASE_URL": DEAD_URL, "ABSTRAKT_BASE_URL": DEAD_URL}
    base = ("--base-url", sandbox.base_url)
    quick = invoke("submit", "google/nano-banana-pro/text-to-image", "-p", "one", *base, env=env).stdout.strip()
    slow = invoke("submit", "flux-dev", "-p", "two", "-i", "sandbox_duration=30", *base, env=env).stdout.strip()
    job = invoke("submit", "abstrakt:flux-schnell", "-p", "three", "-i", "sandbox_duration=30", *base, env=env)
    job_id = job.stdout.strip()

    waited = invoke("wait", quick, "--json", *FAST, env=env)
    assert waited.code == 0, waited.stderr
    record = json.loads(waited.stdout)
    check_record(record)
    assert (record["provider"], record["api"], record["status"]) == ("get3w", "v1", "completed")
    assert record["input"] == {"prompt": "one"}

    got = invoke("get", job_id, "--json", env=env)
    assert got.code == 0
    assert json.loads(got.stdout)["input"] == {"prompt": "three", "sandbox_duration": 30}
    assert json.loads(got.stdout)["status"] in ("created", "processing")

    cancelled = invoke("cancel", slow, "--json", env=env)
    assert cancelled.code == 0, cancelled.stderr
    record = json.loads(cancelled.stdout)
    assert (record["status"], record["model"], record["provider"]) == ("cancelled", "get3w/flux-dev", "get3w")
    assert invoke("cancel", job_id, env=env).stdout.strip() == job_id
    assert [r.path for r in api_requests(sandbox, "DELETE", "/")] == [f"/api/v3/predictions/{slow}",
                                                                     f"/v1/jobs/{job_id}"]
    history = [json.loads(line) for line in invoke("history", "--json", env=env).stdout.splitlines()]
    assert {h["id"]: h["status"] for h in history} == {quick: "completed", slow: "cancelled", job_id: "cancelled"}


def test_get_of_a_failed_task_exits_1(sandbox: ThreadedSandbox) -> None:
    """get prints the record and exits 1 when the task failed."""
    env = sandbox_env(sandbox)
    task_id = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_fail=true", "-i", "sandbox_duration=0",
                  env=env).stdout.strip()
    result = invoke("get", task_id, "--json", env=env)
    assert result.code == 1
    assert json.loads(result.stdout)["status"] == "failed"


# --- --sandbox, uploads, polling behaviour ----------------------------------------------------


def test_sandbox_flag_runs_end_to_end_without_key_or_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first command, through the real console entry point (a process of its own):
    a real PNG from an in-process sandbox, no key, no network."""
    monkeypatch.chdir(tmp_path)
    env = {"GET3W_BASE_URL": DEAD_URL, "ABSTRAKT_BASE_URL": DEAD_URL}
    result = g3w("run", "flux-dev", "--prompt", "a lighthouse", "--sandbox", "-o", "out/", env=env)
    assert result.code == 0, result.stderr
    [line] = result.stdout.splitlines()
    path = Path(line)  # files are absolute paths, wherever the record is read from
    assert path.is_absolute() and path.parent.resolve() == (tmp_path / "out").resolve()
    assert re.fullmatch(r"pred_\w+_0\.png", path.name)
    assert_png(path)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [Path(line).name]


def test_at_file_input_is_uploaded_first(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """-i KEY=@file uploads the file (Get3W upload) and sends its URL as the input."""
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG fake image bytes")
    result, record = run_json(sandbox, "abstrakt:flux-schnell", "-p", "x", "-i", f"image_url=@{image}")
    assert result.code == 0, result.stderr
    url = record["input"]["image_url"]
    assert url.startswith(sandbox.base_url + "/cdn/uploads/")
    assert httpx.get(url).content == image.read_bytes()
    paths = [r.path for r in sandbox.sandbox.requests if r.method == "POST"]
    assert paths == ["/api/v3/files/upload", "/v1/models/flux-schnell/run"]
    assert json.loads(sandbox.sandbox.submissions()[0].body)["input"]["image_url"] == url


def test_first_poll_honours_the_estimated_duration(sandbox: ThreadedSandbox) -> None:
    """Get3W v1 answers estimated_duration (here 2 s): the first poll waits for it, and one poll suffices."""
    env = sandbox_env(sandbox)
    result = invoke("run", "google/nano-banana-pro/text-to-image", "-p", "x", "-i", "sandbox_duration=1.2",
                 "--via", "poll", env=env)
    assert result.code == 0, result.stderr
    [submit] = sandbox.sandbox.submissions()
    polls = api_requests(sandbox, "GET", "/v1/requests/")
    assert len(polls) == 1
    assert polls[0].at - submit.at >= 1.9


def test_retry_after_is_honoured_while_polling(sandbox: ThreadedSandbox) -> None:
    """A poll answered 429 with Retry-After: 1 is retried no sooner than a second later."""
    sandbox.sandbox.inject(status=429, count=1, method="GET", path_prefix="/api/v3/predictions", retry_after=1)
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", *FAST, env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    polls = api_requests(sandbox, "GET", "/api/v3/predictions/")
    assert len(polls) == 2
    assert polls[1].at - polls[0].at >= 0.95


def test_busy_listener_port_fails_webhook_and_falls_back_under_auto(sandbox: ThreadedSandbox) -> None:
    """--listen-port in use: --via webhook exits 7 before submitting; --via auto warns and polls."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        strict = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--listen-port", port,
                     env=sandbox_env(sandbox))
        assert strict.code == 7 and strict.stdout == ""
        assert sandbox.sandbox.submissions() == []
        result, record = run_json(sandbox, "flux-dev", "-p", "x", "--via", "auto", "--listen-port", port)
    assert (result.code, record["via"]) == (0, "poll")
    assert "falling back to polling" in result.stderr


@pytest.mark.parametrize(
    ("url", "content_type", "ext"),
    [("https://cdn.example/a/b.png?sig=x", "", ".png"), ("https://cdn.example/out.MP4", "video/mp4", ".mp4"),
     ("https://cdn.example/file", "image/jpeg; charset=binary", ".jpg"), ("https://cdn.example/file", "", ".bin"),
     ("https://cdn.example/v1.2/blob", "image/webp", ".webp")],
)
def test_output_extension_comes_from_url_else_content_type(url: str, content_type: str, ext: str) -> None:
    """<id>_<index>.<ext>: the extension of the URL's path, else the Content-Type's."""
    from get3w_cli.downloads import extension_for

    assert extension_for(url, content_type) == ext
