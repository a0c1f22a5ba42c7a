"""`--via stream` (Get3W v3 ``"stream": true``): both documented event shapes, the id journalled as
soon as an event names it, a broken stream continued by polling (never a second submit), a refusal
submitted once without streaming, and a usage error on the APIs that cannot stream.

Against the sandbox (its ``sandbox_stream`` control picks the shape or the fault), and against a
stand-in server of the test's own for a stream that goes silent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import StandInHandler, ThreadedSandbox, g3w_on_terminal, sandbox_env, serving, wait_until
from inproc import invoke

from get3w_cli.errors import NetworkError
from get3w_cli.http import HttpSession
from get3w_cli.http.stream import ServerEvent
from get3w_cli.providers.v3_stream import stream_update
from get3w_cli.records import Status

STREAM = ("--via", "stream", "--json", "--poll-max", "0.2")


def posts(sb: ThreadedSandbox) -> list[dict[str, Any]]:
    """The bodies of the task submits the sandbox received."""
    return [json.loads(r.body) for r in sb.sandbox.submissions()]


def gets(sb: ThreadedSandbox) -> list[str]:
    return [r.path for r in sb.sandbox.requests if r.method == "GET" and r.path.startswith("/api/v3/predictions/")]


def history(env: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in invoke("history", "--json", env=env).stdout.splitlines()]



# --- the event shapes ----------------------------------------------------------------------------


def test_the_documented_event_lines_parse() -> None:
    """The docs' own example lines: Get3W's progress fraction and end, WaveSpeed's percentage and end."""
    first = stream_update({"status": "processing", "progress": 0.1})
    assert first is not None and (first.status, first.progress, first.task_id) == (Status.PROCESSING, 0.1, None)
    ending = stream_update({"status": "completed", "outputs": ["https://cdn.get3w.com/outputs/image-xxx.png"]})
    assert ending is not None and (ending.status, ending.outputs) == (
        Status.COMPLETED, ("https://cdn.get3w.com/outputs/image-xxx.png",))
    typed = stream_update({"type": "progress", "percentage": 25})
    assert typed is not None and (typed.status, typed.progress, typed.task_id) == (None, 0.25, None)
    done = stream_update({"type": "complete", "outputs": ["https://x/1.png"], "id": "pred_1"})
    assert done is not None and (done.status, done.outputs, done.task_id) == (
        Status.COMPLETED, ("https://x/1.png",), "pred_1")
    failed = stream_update({"type": "error", "error": "NSFW content"})
    assert failed is not None and failed.status is Status.FAILED and failed.error is not None
    assert failed.error.message == "NSFW content"
    assert stream_update("[DONE]") is None


@pytest.mark.parametrize("shape", ["get3w", "wavespeed"])
def test_a_streamed_run_completes_from_the_stream(sandbox: ThreadedSandbox, shape: str) -> None:
    """Either shape: one submit asking for a stream, the end read from it (no poll), via "stream"."""
    result = invoke("run", "flux-dev", "-p", "a cat", *STREAM, "-i", f"sandbox_stream={shape}",
                    "-i", "sandbox_duration=0.3", env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    record = result.json()
    assert (record["status"], record["via"]) == ("completed", "stream")
    assert record["outputs"] == [f"{sandbox.base_url}/cdn/outputs/{record['id']}_0.png"]
    assert [body.get("stream") for body in posts(sandbox)] == [True]
    assert gets(sandbox) == []
    assert record["raw"]["outputs"] == record["outputs"]  # the stream's last event
    assert record["progress"] == 1.0
    [journalled] = history(sandbox_env(sandbox))
    assert (journalled["id"], journalled["status"], journalled["via"]) == (record["id"], "completed", "stream")
    assert journalled.get("progress") == 1.0


def test_wavespeeds_output_events_bring_the_outputs_a_bare_complete_does_not_repeat() -> None:
    """WaveSpeed's typed events from a stand-in: ``log``, ``progress``, one ``output`` per result,
    then a ``complete`` that carries no outputs: the run completes from the stream with the outputs
    the ``output`` events brought, in their order (no poll, one submit)."""
    cdn = "https://cdn.example/outputs"
    events = [{"type": "log", "message": "loading", "id": "pred_ws1"}, {"type": "progress", "percentage": 40,
              "id": "pred_ws1"}, {"type": "output", "output": f"{cdn}/a.png", "id": "pred_ws1"},
              {"type": "output", "outputs": [f"{cdn}/b.png"], "id": "pred_ws1"}, {"type": "complete", "id": "pred_ws1"}]
    asked: list[tuple[str, str]] = []

    class Handler(StandInHandler):
        def do_GET(self) -> None:  # the model list run reads for its input check, and any poll
            asked.append(("GET", self.path))
            self.send_error(404)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked.append(("POST", self.path))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()

    with serving(Handler) as url:
        result = invoke("run", "flux-dev", "-p", "x", *STREAM, env={"GET3W_BASE_URL": url, "GET3W_API_KEY": "sk_test"})
    assert result.code == 0, result.stderr
    record = result.json()
    assert (record["id"], record["status"], record["via"]) == ("pred_ws1", "completed", "stream")
    assert record["outputs"] == [f"{cdn}/a.png", f"{cdn}/b.png"] and record["progress"] == 1.0
    assert [path for method, path in asked if method == "POST"] == ["/api/v3/get3w/flux-dev"]
    assert not [path for method, path in asked if path.startswith("/api/v3/predictions")]


@pytest.mark.parametrize("shape", ["get3w", "wavespeed"])
def test_a_task_that_fails_in_the_stream_exits_1(sandbox: ThreadedSandbox, shape: str) -> None:
    """The failure event ends the run: exit 1, its message in the record's error."""
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "-i", f"sandbox_stream={shape}",
                    "-i", "sandbox_fail=model exploded", "-i", "sandbox_duration=0.2", env=sandbox_env(sandbox))
    assert result.code == 1
    record = result.json()
    assert (record["status"], record["via"], record["error"]["message"]) == ("failed", "stream", "model exploded")
    assert 0 <= record["progress"] < 1  # as far as the stream last said


def test_a_stream_without_task_ids_completes_under_a_local_id(sandbox: ThreadedSandbox) -> None:
    """Get3W's events exactly as documented (no id): the outputs are kept, under a local id that says so."""
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "-i", "sandbox_stream=no_id", "-i", "sandbox_duration=0.2",
                    env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    record = result.json()
    assert record["id"].startswith("local-") and record["via"] == "stream" and len(record["outputs"]) == 1
    assert "never named its task id" in result.stderr
    assert [r["id"] for r in history(sandbox_env(sandbox))] == [record["id"]]


# --- faults ---------------------------------------------------------------------------------------


def test_a_broken_stream_is_continued_by_polling_never_by_a_second_submit(sandbox: ThreadedSandbox) -> None:
    """The connection drops after the event naming the task: that task is polled to its end."""
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "-i", "sandbox_stream=break", "-i", "sandbox_duration=0.5",
                    env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    record = result.json()
    assert (record["status"], record["via"]) == ("completed", "poll")
    assert "progress" not in record  # the end came from polling, not from the stream
    assert len(posts(sandbox)) == 1
    assert gets(sandbox) and set(gets(sandbox)) == {f"/api/v3/predictions/{record['id']}"}
    assert f"polling task {record['id']}" in result.stderr


def test_a_stream_broken_before_naming_its_task_is_unknown_and_not_resent(sandbox: ThreadedSandbox) -> None:
    """No event named the task: a task may exist; exit 6, journalled unknown, nothing sent again."""
    env = sandbox_env(sandbox)
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "-i", "sandbox_stream=break_before_id", env=env)
    assert result.code == 6 and result.stdout == ""
    assert "before naming the task; a task may exist" in result.stderr
    assert len(posts(sandbox)) == 1 and gets(sandbox) == []
    [row] = history(env)
    assert row["status"] == "unknown" and row["id"] is None


def test_a_model_that_refuses_to_stream_is_submitted_once_without_it(sandbox: ThreadedSandbox) -> None:
    """A 400 naming streaming comes before any task: the same inputs go once more, without "stream"."""
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "-i", "sandbox_stream=refuse", "-i", "sandbox_duration=0.2",
                    env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "poll"
    first, second = posts(sandbox)
    assert first["stream"] is True and "stream" not in second
    assert {k: v for k, v in first.items() if k != "stream"} == second
    assert "does not stream" in result.stderr


def test_a_provider_answering_without_a_stream_gives_the_task_to_poll(sandbox: ThreadedSandbox) -> None:
    """A JSON submit answer to "stream": true is the task itself: polled, not submitted again."""
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "-i", "sandbox_stream=ignore", "-i", "sandbox_duration=0.2",
                    env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "poll" and len(posts(sandbox)) == 1
    assert "answered without streaming" in result.stderr


def test_timeout_while_streaming_exits_4_with_the_id(sandbox: ThreadedSandbox) -> None:
    """--timeout bounds the stream too: exit 4, the record names the task, which may still run."""
    result = invoke("run", "flux-dev", "-p", "x", *STREAM, "--timeout", "1", "-i", "sandbox_duration=30",
                    env=sandbox_env(sandbox))
    assert result.code == 4
    record = result.json()
    assert record["id"].startswith("pred_") and record["status"] in ("created", "processing")
    assert f"g3w wait {record['id']}" in result.stderr
    assert len(posts(sandbox)) == 1


def test_a_silent_stream_ends_after_its_idle_timeout() -> None:
    """A stream that sends its head and an event, then nothing: NetworkError after ``idle``, not a hang."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'data: {"id": "pred_1", "status": "processing", "progress": 0.1}\n\n')
            self.wfile.flush()
            release.wait(30)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = False  # server_close() then waits for the handler: its socket is closed
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    seen: list[str] = []

    async def read_all(events: AsyncIterator[ServerEvent]) -> None:
        async for event in events:
            seen.append(event.data)  # noqa: PERF401 - kept one by one: what came before the silence

    async def main() -> list[str]:
        async with HttpSession() as http:
            client = http.api(url, "sk_x", errors=lambda status, body, text: (None, "", None))
            async with client.post_events("/api/v3/get3w/flux-dev", json={"stream": True}, idle=0.3) as stream:
                with pytest.raises(NetworkError, match=r"sent nothing for 0\.3s"):
                    await read_all(stream.events())
        return seen

    try:
        started = time.monotonic()
        assert asyncio.run(main()) == ['{"id": "pred_1", "status": "processing", "progress": 0.1}']
        assert time.monotonic() - started < 10  # ended by the idle timeout, not by the server
    finally:
        release.set()
        server.shutdown()
        server.server_close()


# --- where stream applies ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["google/nano-banana-pro/text-to-image", "abstrakt:flux-schnell"])
def test_stream_on_an_api_that_cannot_stream_is_a_usage_error(sandbox: ThreadedSandbox, model: str) -> None:
    """Get3W v1 and Abstrakt: exit 2 before anything is sent (the schema look-up included)."""
    result = invoke("run", model, "-p", "x", "--via", "stream", env=sandbox_env(sandbox))
    assert result.code == 2 and "--via stream is for one Get3W v3 task" in result.stderr
    assert sandbox.sandbox.requests == []


def test_wait_with_stream_polls(sandbox: ThreadedSandbox) -> None:
    """`g3w wait ID --via stream`: a stream comes only with a submit; the task is polled, and says so."""
    env = sandbox_env(sandbox)
    task_id = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_duration=0.05", env=env).stdout.strip()
    result = invoke("wait", task_id, "--via", "stream", "--json", "--poll-max", "0.2", env=env)
    assert result.code == 0 and result.json()["via"] == "poll"
    assert "no stream can be opened for a task already submitted; polling" in result.stderr


def test_batch_refuses_stream(tmp_path: Any, sandbox: ThreadedSandbox) -> None:
    """A batch cannot stream its tasks: exit 2, nothing sent."""
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"model": "flux-dev", "input": {"prompt": "x"}}\n')
    result = invoke("batch", str(lines), "--via", "stream", env=sandbox_env(sandbox))
    assert result.code == 2 and "--via stream" in result.stderr
    assert sandbox.sandbox.submissions() == []


def test_auto_never_picks_stream(sandbox: ThreadedSandbox) -> None:
    """--via auto (the default) waits by webhook or poll; the submit never asks for a stream."""
    result = invoke("run", "flux-dev", "-p", "x", "--json", "-i", "sandbox_duration=0.05", env=sandbox_env(sandbox))
    assert result.code == 0 and result.json()["via"] in ("webhook", "poll")
    assert ["stream" in body for body in posts(sandbox)] == [False]


# --- real processes: the spinner, and Ctrl-C while streaming ------------------------------------------


def test_progress_shows_in_the_spinner(sandbox: ThreadedSandbox) -> None:
    """On a terminal the spinner's phase carries the streamed percentage."""
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "--via", "stream", "-i", "sandbox_duration=2",
                             env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert re.search(r"streaming \d{1,3}%", result.stderr), result.stderr


def test_the_id_is_journalled_while_streaming_and_ctrl_c_keeps_it(sandbox: ThreadedSandbox) -> None:
    """The journal has the task as soon as an event names it; Ctrl-C then prints its record (exit 130)."""
    env = sandbox_env(sandbox)
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "run", "flux-dev", "-p", "x", *STREAM,
                             "-i", "sandbox_duration=60"], env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: any(r["id"] for r in history(env)))
        [row] = history(env)
        assert row["status"] in ("created", "processing") and proc.poll() is None  # still streaming
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert json.loads(out)["id"] == row["id"]
    assert f"g3w wait {row['id']}" in err
    assert len(posts(sandbox)) == 1
