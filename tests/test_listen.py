"""``g3w listen``: the real command (in a subprocess while it serves, in-process for one-shot uses),
and its receiver core in-process, over real sockets. No port is picked and released: servers bind
port 0 and report theirs, and an app that is down is a socket bound without listening."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from conftest import ThreadedSandbox, wait_until
from fake_ngrok import install
from inproc import invoke

from get3w_cli.constants import WEBHOOK_MAX_BODY_BYTES
from get3w_cli.records import Status
from get3w_cli.webhooks.forwarder import Forwarder, forward_headers, load_saved, resign, save_delivery, saved_record
from get3w_cli.webhooks.receiver import NoteLimiter, Receiver, ReceiverConfig
from get3w_cli.webhooks.signatures import sign_abstrakt, sign_get3w, verify_delivery

SECRET = "whsec_test"
KEY = "sk_test"
EVENT_KEYS = {"received_at", "provider", "id", "status", "verified", "outputs", "error", "payload"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LISTENING = re.compile(r"Listening on http://127\.0\.0\.1:(\d+)")


# --- helpers -------------------------------------------------------------------------


@contextmanager
def refusing_url() -> Iterator[str]:
    """A URL whose port is held (bound, not listening) while the test runs: every connection to it
    is refused, and nobody else can start serving there meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


def get3w_body(task_id: str = "pred_1", status: str = "completed") -> bytes:
    return json.dumps({"id": task_id, "model": "get3w/flux-dev", "status": status,
                       "outputs": ["https://x/1.png"] if status == "completed" else []}).encode()


def abstrakt_body(job_id: str = "job_1", status: str = "succeeded") -> bytes:
    return json.dumps({"job_id": job_id, "status": status, "output": {"items": [{"url": "https://x/a.png"}]}}).encode()


class Listen:
    """``g3w listen --print-url ...`` in a subprocess; stdout lines arrive on a queue."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.port = 0  # the listener picks its port, and --print-url says which
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "get3w_cli", "listen", "--port", str(self.port), "--print-url", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self._err.append), daemon=True)]
        for thread in self._threads:
            thread.start()
        self.url = self.line(timeout=10)
        wait_until(lambda: LISTENING.search(self.stderr) is not None, timeout=10)  # said with the URL
        self.port = int(LISTENING.search(self.stderr).group(1))  # the local port, behind any tunnel

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def line(self, timeout: float = 5) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no stdout line in {timeout}s; stderr:\n{self.stderr}") from None

    def event(self, timeout: float = 5) -> dict[str, Any]:
        return json.loads(self.line(timeout))

    def wait(self, timeout: float = 10) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self._err)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def listen() -> Iterator[Any]:
    started: list[Listen] = []

    def start(*args: str, **kwargs: Any) -> Listen:
        started.append(Listen(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


class Target:
    """A local app for --forward-to: records each request (thread server, started on demand).

    Its port is bound at once and held: until ``start()`` listens on it, connections are refused
    (the app is down), and no other server can take the port in between."""

    def __init__(self, status: int = 200) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = status
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/app"

    def start(self) -> Target:
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target.requests.append((self.path, dict(self.headers), body))
                self.send_response(target.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        self._server.socket.close()
        self._server.socket = self._socket  # the port held since __init__
        self._server.server_activate()
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._socket.close()


class Relay:
    """A webhook URL to give the provider before the listener exists (``--for`` needs the task's id,
    which only the submit tells): 503 until ``to`` is set, so the provider retries on its schedule;
    then each delivery is passed on to ``to`` (body and signature headers) and its answer returned."""

    def __init__(self) -> None:
        self.to: str | None = None
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 503
                if relay.to is not None:
                    status = httpx.post(relay.to, content=body, headers=forward_headers(dict(self.headers))).status_code
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def submit_get3w(sb: ThreadedSandbox, webhook_url: str, **inputs: Any) -> str:
    body = {"prompt": "x", "webhook_url": webhook_url, "sandbox_duration": 0, **inputs}
    resp = httpx.post(f"{sb.base_url}/api/v3/get3w/flux-dev", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["id"]


def submit_abstrakt(sb: ThreadedSandbox, webhook_url: str, **inputs: Any) -> str:
    body = {"input": {"prompt": "x", "sandbox_duration": 0, **inputs}, "webhook_url": webhook_url}
    resp = httpx.post(f"{sb.base_url}/v1/models/flux-schnell/run", json=body,
                      headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code in (200, 202), resp.text
    return resp.json()["job_id"]



# --- the command ---------------------------------------------------------------------


def test_print_url_first_then_json_event_lines(listen, sandbox):
    """--print-url is stdout's first line; each event is one JSON line of the contract's shape."""
    proc = listen("--json", "--count", "1")
    assert proc.url == f"http://127.0.0.1:{proc.port}"
    task_id = submit_get3w(sandbox, proc.url)
    event = proc.event()
    assert set(event) == EVENT_KEYS
    seen = (event["provider"], event["id"], event["status"], event["verified"])
    assert seen == ("get3w", task_id, "completed", False)
    assert event["outputs"] and event["outputs"][0].startswith(sandbox.base_url) and event["error"] is None
    assert ISO_UTC.match(event["received_at"]) and event["payload"]["id"] == task_id
    assert proc.wait() == 0
    assert f"Listening on http://127.0.0.1:{proc.port}" in proc.stderr
    assert re.search(rf"get3w\s+{task_id}\s+completed\s+unverified", proc.stderr)


def test_for_id_exits_0_when_the_verified_abstrakt_job_completes(listen):
    """--for ID with --secret: a signed Abstrakt delivery is verified and the exit code is 0."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.1, webhook_secret=SECRET) as sb, \
            Relay() as relay:  # the sandbox's retries span ~6 s
        job_id = submit_abstrakt(sb, relay.url, sandbox_duration=0.5)
        proc = listen("--json", "--for", job_id, "--secret", SECRET)
        relay.to = proc.url + "/hooks"
        event = proc.event(timeout=8)
        seen = (event["id"], event["status"], event["verified"], event["provider"])
        assert seen == (job_id, "completed", True, "abstrakt")
        assert proc.wait() == 0


def test_for_id_exits_1_when_the_task_fails(listen):
    """--for ID exits 1 with the task's error when the provider reports it failed."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.1, webhook_secret=SECRET) as sb, \
            Relay() as relay:  # the sandbox's retries span ~6 s
        task_id = submit_get3w(sb, relay.url, sandbox_duration=0.5, sandbox_fail="out of cats")
        proc = listen("--json", "--for", task_id, env={"GET3W_WEBHOOK_SECRET": SECRET})
        relay.to = proc.url
        event = proc.event(timeout=8)
        assert (event["status"], event["verified"], event["error"]["message"]) == ("failed", True, "out of cats")
        assert proc.wait() == 1
        assert f"task {task_id} failed: out of cats" in proc.stderr


def test_duplicates_are_acknowledged_and_not_reemitted(listen):
    """The sandbox's extra copies get 2xx and are counted, but only the first is printed."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET, webhook_duplicates=2) as sb:
        proc = listen("--json", "--count", "2", "--secret", SECRET)
        first = submit_get3w(sb, proc.url)
        wait_until(lambda: sum(d.task_id == first and d.ok for d in sb.sandbox.deliveries) == 3)
        second = submit_get3w(sb, proc.url)
        assert [proc.event()["id"], proc.event()["id"]] == [first, second]
        assert proc.wait() == 0
        assert proc.lines.empty()
        assert [d.status_code for d in sb.sandbox.deliveries if d.task_id == first] == [200, 200, 200]
        duplicates = int(re.search(r"(\d+) duplicate\(s\)", proc.stderr).group(1))
        assert duplicates >= 2  # the second task's copies may come before or after the exit


def test_forward_to_retries_until_the_app_is_up(listen):
    """The provider gets 2xx at once; the body and signature (not Authorization) reach the app later."""
    target = Target()
    proc = listen("--count", "1", "--forward-to", target.url)
    body = get3w_body("fwd_1")
    headers = {"Content-Type": "application/json", "X-Get3W-Signature": sign_get3w(SECRET, body),
               "Authorization": "Bearer sk_live_secret", "X-Other": "1"}
    started = time.monotonic()
    resp = httpx.post(proc.url + "/anything", content=body, headers=headers)
    assert resp.status_code == 200 and time.monotonic() - started < 1.0
    wait_until(lambda: "retrying with backoff" in proc.stderr)
    target.start()
    try:
        assert proc.wait() == 0
    finally:
        target.stop()
    [(path, got, raw)] = target.requests
    assert path == "/app" and raw == body
    assert got["X-Get3W-Signature"] == headers["X-Get3W-Signature"] and got["Content-Type"] == "application/json"
    assert "Authorization" not in got and "X-Other" not in got
    assert "forwarded fwd_1 completed" in proc.stderr


def test_exec_gets_each_event_json_in_order_and_failures_are_not_fatal(listen, tmp_path):
    """--exec runs per unique event with its JSON on stdin; a non-zero exit is reported, not fatal."""
    proc = listen("--count", "2", "--exec", "cat >> events.jsonl; exit 3", cwd=tmp_path)
    for task_id in ("e1", "e2"):
        assert httpx.post(proc.url, content=get3w_body(task_id)).status_code == 200
    assert proc.wait() == 0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["id"] for e in events] == ["e1", "e2"] and set(events[0]) == EVENT_KEYS
    assert proc.stderr.count("exited with status 3") == 2


def test_save_then_replay(listen, tmp_path):
    """--save writes every delivery; --replay sends one again: exit 0 on 2xx, 6 when the app is down."""
    saved = tmp_path / "saved"
    proc = listen("--count", "1", "--save", str(saved))
    body = abstrakt_body("job_s")
    signed = {"X-Abstrakt-Timestamp": "1", "X-Abstrakt-Signature": "x", "Authorization": "Bearer k"}
    assert httpx.post(proc.url, content=b"not json").status_code == 400
    assert httpx.post(proc.url + "/p?q=1", content=body, headers=signed).status_code == 200
    assert proc.wait() == 0
    files = sorted(saved.glob("*.json"))
    records = [json.loads(f.read_text()) for f in files]
    assert [r["answered"] for r in records] == [400, 200]
    assert (records[1]["path"], records[1]["query"]) == ("/p", "q=1")
    assert records[1]["body"] == body.decode() and "Authorization" not in records[1]["headers"]
    target = Target().start()
    try:
        result = invoke("listen", "--replay", str(files[1]), "--forward-to", target.url)
        assert result.code == 0, result.stderr
        [(_, got, raw)] = target.requests
        assert raw == body and got["X-Abstrakt-Signature"] == "x" and "Authorization" not in got
    finally:
        target.stop()
    with refusing_url() as down_url:
        down = invoke("listen", "--replay", str(files[1]), "--forward-to", down_url)
    assert down.code == 6 and "could not replay" in down.stderr


def test_timeout_exits_4_with_the_resume_hint():
    """--timeout ends the wait with exit 4; with --for the hint names g3w wait ID."""
    started = time.monotonic()
    result = invoke("listen", "--port", "0", "--for", "pred_x", "--timeout", "0.3")
    assert result.code == 4 and time.monotonic() - started < 5
    assert "g3w wait pred_x" in result.stderr


def test_sigint_exits_130_and_frees_the_port(listen):
    """Ctrl-C closes the listener: exit 130, and the port can be bound again."""
    proc = listen()
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", proc.port))


def test_ctrl_c_is_how_a_listener_stops_summary_and_no_error(listen):
    """Ctrl-C prints the summary, no "Error: interrupted", and still exits 130."""
    proc = listen()
    assert httpx.post(proc.url, content=get3w_body("pred_sum")).status_code == 200
    wait_until(lambda: "pred_sum" in proc.stderr)
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130
    assert "1 event(s), 0 duplicate(s), 0 stale, 0 rejected" in proc.stderr
    assert "Error" not in proc.stderr and "interrupted" not in proc.stderr


def test_ctrl_c_says_which_forwards_were_dropped(listen):
    """An event still waiting to reach a --forward-to app that is down is dropped at Ctrl-C: said."""
    with refusing_url() as down:
        proc = listen("--forward-to", down)
        assert httpx.post(proc.url, content=get3w_body("pred_fwd")).status_code == 200
        wait_until(lambda: "is not taking deliveries" in proc.stderr)
        proc.proc.send_signal(signal.SIGINT)
        assert proc.wait() == 130
    assert f"stopped before forwarding 1 event(s) to {down}: they were dropped" in proc.stderr


def test_event_lines_are_columns_and_wrap_between_words_at_80_columns():
    """On a terminal: the status in colour, the columns aligned, and a long error on its own
    indented lines, never a word cut at the window's edge."""
    import io

    from rich.console import Console

    from get3w_cli.cli.listen_output import event_line, show
    from get3w_cli.cli.render import Ui
    from get3w_cli.records import Task, TaskError
    from get3w_cli.webhooks.receiver import Event, RawDelivery

    def event(provider: str, task_id: str, status: str, error: str | None = None) -> Event:
        raw = RawDelivery(received_at=time.time(), method="POST", path="/", query="", headers={}, body=b"{}",
                          answered=200)
        task = Task(task_id, provider, "v3", "m", Status(status), error=TaskError(None, error) if error else None)
        return Event(provider=provider, task=task, verified=False, payload={}, raw=raw)

    long_error = "the model refused this prompt because it asks for something far too long to draw " * 2
    events = [event("get3w", "pred_1", "completed"), event("abstrakt", "job_22", "processing"),
              event("get3w", "pred_333", "failed", long_error)]
    plain = [event_line(e) for e in events]
    statuses = ("completed", "processing", "failed")
    assert len({line.index(status) for line, status in zip(plain, statuses, strict=True)}) == 1
    ui = Ui()
    ui.plain_err, ui.animated = False, True
    ui._err = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    for each in events:
        show(ui, each)
    drawn = ui._err.file.getvalue()
    text = re.sub(r"\x1b\[[0-9;]*m", "", drawn)
    assert all(len(line) <= 80 for line in text.splitlines())
    words = set(long_error.split())
    continued = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    assert continued and all(word in words for line in continued for word in line.split())
    assert "\x1b[32mcompleted" in drawn and "\x1b[31mfailed" in drawn


def test_on_a_real_terminal_of_80_columns_the_columns_align_in_colour_and_wrap_between_words():
    """`g3w listen` with stderr on a pseudo-terminal 80 columns wide (no COLUMNS to go by): each
    event is one line of aligned columns, the status in colour; a long error goes under it,
    indented and wrapped between words; no line is wider than the window."""
    import fcntl
    import struct
    import termios

    master, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 800, 480))
    env = {**os.environ, "TERM": "xterm"}
    env.pop("COLUMNS", None)
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "listen", "--port", "0", "--print-url"],
                            stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, env=env, text=True)
    os.close(terminal)
    drawn: list[bytes] = []

    def drain() -> None:  # until the child's side closes (EIO)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            drawn.append(chunk)

    def lines_of(chunks: list[bytes]) -> list[str]:  # what the window shows, colours left out
        return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode(errors="replace")).split("\r\n")

    def continued(lines: list[str]) -> list[str]:  # the error's lines, under its event's line
        return [line.strip() for line in lines if line.startswith("    ") and line.strip()]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    long_error = "the model refused this prompt because it asks for something far too long to draw " * 2
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        failed = json.dumps({"id": "pred_333", "model": "get3w/flux-dev", "status": "failed",
                             "error": long_error.strip()}).encode()
        for body in (get3w_body("pred_1"), abstrakt_body("job_22", "running"), failed):
            assert httpx.post(url, content=body).status_code == 200
        wait_until(lambda: " ".join(continued(lines_of(drawn))) == long_error.strip())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        os.close(master)
        if proc.stdout is not None:
            proc.stdout.close()
    screen = b"".join(drawn).decode()
    lines = lines_of(drawn)
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    events = [next(line for line in lines if task_id in line) for task_id in ("pred_1", "job_22", "pred_333")]
    statuses = ("completed", "processing", "failed")
    assert len({line.index(status) for line, status in zip(events, statuses, strict=True)}) == 1
    words = set(long_error.split())
    assert len(continued(lines)) > 1 and all(word in words for line in continued(lines) for word in line.split())
    assert "\x1b[32mcompleted" in screen and "\x1b[36mprocessing" in screen and "\x1b[31mfailed" in screen


def test_closed_stdout_ends_the_listener_quietly():
    """``g3w listen --json | head -1``: when the reader goes away the command exits 0, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "listen", "--port", "0", "--print-url", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = proc.stdout.readline().decode().strip()
        proc.stdout.close()
        assert httpx.post(url, content=get3w_body("gone")).status_code == 200
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and b"Traceback" not in err and b"gone" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# The server answers 413 and closes while the client is still uploading 10 MiB; under load the
# client's half-closed socket can be finalised as an "unraisable" warning in this process. That
# is the test client's noise, not the listener's behaviour, which every assertion below checks.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_hostile_requests_get_4xx_and_the_listener_survives(listen):
    """404/405/400/422/413 and malformed HTTP: one short stderr line per kind, no traceback, still serving."""
    proc = listen("--path", "/hook", "--json", "--count", "1")
    assert proc.url.endswith("/hook")
    base = f"http://127.0.0.1:{proc.port}"
    with httpx.Client() as client:
        assert client.post(base + "/%1B[2Jother", content=get3w_body()).status_code == 404  # noted first
        assert client.post(base + "/other", content=get3w_body()).status_code == 404
        assert client.get(proc.url).status_code == 405
        assert client.post(proc.url, content=b"\xff{not json").status_code == 400
        assert client.post(proc.url, content=b"[1, 2]").status_code == 400
        assert client.post(proc.url, content=b'{"hello": "world"}').status_code == 422
        assert client.post(proc.url, content=b" " * (WEBHOOK_MAX_BODY_BYTES + 1)).status_code == 413
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            assert b" 400 " in sock.recv(100)
        for _ in range(200):
            assert client.post(proc.url, content=b"flood").status_code == 400
        assert client.post(proc.url + "/", content=get3w_body("ok_1")).status_code == 200
    assert proc.event()["id"] == "ok_1"
    assert proc.wait() == 0
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr  # no terminal escapes from strangers
    assert len([line for line in proc.stderr.splitlines() if "400: body is not" in line]) <= 3
    for status in ("404", "405", "413", "422"):
        assert f"{status}: " in proc.stderr
    assert "[2Jother is not /hook" in proc.stderr


def test_tunnel_ngrok_prints_the_public_url(listen, tmp_path):
    """--tunnel ngrok opens the (fake) agent, prints its URL first, and deliveries through it arrive."""
    state = tmp_path / "ngrok-state"
    state.mkdir()
    ngrok = install(str(tmp_path / "bin"), "ok", state_dir=str(state))
    proc = listen("--tunnel", "ngrok", "--json", "--count", "1", "--path", "/cb",
                  env={"NGROK_PATH": ngrok, "NGROK_AUTHTOKEN": "tok_123"})
    assert proc.url.endswith("/cb") and f":{proc.port}/" not in proc.url
    assert httpx.post(proc.url, content=get3w_body("via_tunnel")).status_code == 200
    assert proc.event()["id"] == "via_tunnel"
    assert proc.wait() == 0
    assert f"Public URL: {proc.url}" in proc.stderr and "tok_123" not in proc.stderr
    pids = [int(p.stem) for p in state.glob("*.pid")]
    assert pids
    wait_until(lambda: not any(_alive(pid) for pid in pids))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_setup_failures_exit_7(tmp_path):
    """A taken port or a tunnel that cannot open exits 7 (the authtoken is never shown)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = invoke("listen", "--port", str(sock.getsockname()[1]))
    assert taken.code == 7 and "cannot listen" in taken.stderr
    ngrok = install(str(tmp_path / "bin"), "auth_failed")
    failed = invoke("listen", "--port", "0", "--tunnel", "ngrok",
                    env={"NGROK_PATH": ngrok, "NGROK_AUTHTOKEN": "tok_secret"})
    assert failed.code == 7 and "tok_secret" not in failed.stderr


# --- the receiver core, in-process ---------------------------------------------------


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.json(content_type=None)


def serve(scenario: Any, **config: Any) -> Any:
    """Run ``scenario(receiver, notes)`` against a started receiver on a free port."""
    notes: list[str] = []

    async def main() -> Any:
        receiver = Receiver(ReceiverConfig(port=0, **config), NoteLimiter(notes.append))
        await receiver.start()
        try:
            return await scenario(receiver, notes)
        finally:
            await receiver.close()

    return asyncio.run(main())


def drain(receiver: Receiver) -> list[Any]:
    items = []
    while not receiver.queue.empty():
        items.append(receiver.queue.get_nowait())
    return items


def test_signatures_are_checked_for_both_providers():
    """Good Get3W / Abstrakt signatures are verified events; bad or missing ones get 401."""

    async def scenario(receiver, notes):
        url, now = receiver.local_url, str(int(time.time()))
        g, a = get3w_body("g1"), abstrakt_body("a1")
        assert (await post(url, g, {"X-Get3W-Signature": sign_get3w(SECRET, g)}))[0] == 200
        assert (await post(url, g, {"X-Get3W-Signature": sign_get3w("wrong", g)}))[0] == 401
        assert (await post(url, get3w_body("g2")))[0] == 401
        good = {"X-Abstrakt-Timestamp": now, "X-Abstrakt-Signature": sign_abstrakt(SECRET, a, now)}
        assert (await post(url, a, good))[0] == 200
        assert (await post(url, a, {**good, "X-Abstrakt-Signature": sign_abstrakt("wrong", a, now)}))[0] == 401
        forged = {"X-Abstrakt-Timestamp": "1", "X-Abstrakt-Signature": "x"}
        assert (await post(url, abstrakt_body("a2"), forged))[0] == 401
        events = [item.event for item in drain(receiver)]
        seen = [(e.provider, e.task.id, e.verified) for e in events]
        assert seen == [("get3w", "g1", True), ("abstrakt", "a1", True)]
        assert receiver.stats.rejected == 4 and sum("401: bad or missing" in n for n in notes) >= 1

    serve(scenario, secrets={"get3w": SECRET, "abstrakt": SECRET})


def test_unverified_deliveries_only_dedupe_when_no_secret_is_configured():
    """Without any secret, repeats are duplicates; with one configured, unverified ones are never events
    (401, whatever provider they claim), so they can neither count nor mask a verified one."""

    async def without(receiver, notes):
        for _ in range(2):
            assert (await post(receiver.local_url, abstrakt_body()))[0] == 200
        assert len(drain(receiver)) == 1 and receiver.stats.duplicates == 1

    async def with_get3w_secret(receiver, notes):
        for _ in range(2):
            assert (await post(receiver.local_url, abstrakt_body()))[0] == 401
        body = get3w_body("g1")
        signed = {"X-Get3W-Signature": sign_get3w(SECRET, body)}
        assert (await post(receiver.local_url, body, signed))[0] == 200
        assert (await post(receiver.local_url, body, signed)) == (200, {"received": True, "duplicate": True})
        assert [(i.event.task.id, i.event.verified) for i in drain(receiver)] == [("g1", True)]
        assert (receiver.stats.rejected, receiver.stats.duplicates) == (2, 1)

    serve(without)
    serve(with_get3w_secret, secrets={"get3w": SECRET})


@pytest.mark.parametrize("provider", [None, "get3w"])
@pytest.mark.parametrize("headers", [{}, {"X-Abstrakt-Timestamp": "1", "X-Abstrakt-Signature": "x"}])
def test_a_secret_is_never_bypassed_by_claiming_the_other_provider(headers, provider):
    """With only a Get3W secret (with or without --provider), unsigned deliveries shaped or labelled as
    Abstrakt are 401."""

    async def scenario(receiver, notes):
        for body in (abstrakt_body("job_f"), get3w_body("pred_f")):
            status, reply = await post(receiver.local_url, body, headers)
            assert status == 401 and "error" in reply
        assert drain(receiver) == [] and receiver.stats.rejected == 2

    serve(scenario, secrets={"get3w": SECRET}, provider=provider)


def test_the_verifying_secret_decides_the_provider_of_an_event():
    """An Abstrakt-signed delivery whose body also looks like Get3W's is an Abstrakt event, even with
    --provider get3w."""

    async def scenario(receiver, notes):
        body = json.dumps({"id": "both_1", "job_id": "both_1", "status": "completed"}).encode()
        now = str(int(time.time()))
        signed = {"X-Abstrakt-Timestamp": now, "X-Abstrakt-Signature": sign_abstrakt("abstrakt-secret", body, now)}
        assert (await post(receiver.local_url, body, signed))[0] == 200
        [item] = drain(receiver)
        assert (item.event.provider, item.event.verified, item.raw.verified) == ("abstrakt", True, True)

    serve(scenario, secrets={"get3w": SECRET, "abstrakt": "abstrakt-secret"}, provider="get3w")


def test_for_is_not_fooled_by_a_forgery_claiming_the_other_provider(listen):
    """listen --provider get3w --secret S --for ID: a forged unsigned 'completed' labelled Abstrakt gets 401
    and neither ends the command nor runs --exec; the signed one does."""
    proc = listen("--json", "--provider", "get3w", "--secret", SECRET, "--for", "pred_for", "--exec", "cat >&2")
    forged = get3w_body("pred_for")
    labelled = {"X-Abstrakt-Timestamp": str(int(time.time())), "X-Abstrakt-Signature": "0" * 64}
    assert httpx.post(proc.url, content=forged, headers=labelled).status_code == 401
    assert httpx.post(proc.url, content=abstrakt_body("pred_for")).status_code == 401
    assert proc.proc.poll() is None
    genuine = get3w_body("pred_for")
    signed = {"X-Get3W-Signature": sign_get3w(SECRET, genuine)}
    assert httpx.post(proc.url, content=genuine, headers=signed).status_code == 200
    event = proc.event()
    assert (event["id"], event["verified"], event["provider"]) == ("pred_for", True, "get3w")
    assert proc.wait() == 0
    executed = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert proc.lines.empty() and [(e["id"], e["verified"]) for e in executed] == [("pred_for", True)]  # --exec: once


def test_replay_with_secret_resigns_only_what_was_verified_when_saved(listen, tmp_path):
    """--save records 'verified'; --replay --secret re-signs a verified delivery, and sends a rejected
    forgery (or an older file that does not say) as it was saved, with one line saying why."""
    saved = tmp_path / "saved"
    proc = listen("--count", "1", "--secret", SECRET, "--save", str(saved))
    forged, genuine = abstrakt_body("job_forged"), abstrakt_body("job_real")
    stale = {"X-Abstrakt-Timestamp": "1", "X-Abstrakt-Signature": "0" * 64}
    now = str(int(time.time()))
    assert httpx.post(proc.url, content=forged, headers=stale).status_code == 401
    signed = {"X-Abstrakt-Timestamp": now, "X-Abstrakt-Signature": sign_abstrakt(SECRET, genuine, now)}
    assert httpx.post(proc.url, content=genuine, headers=signed).status_code == 200
    assert proc.wait() == 0
    rejected, verified = [json.loads(f.read_text()) for f in sorted(saved.glob("*.json"))]
    assert (rejected["answered"], rejected["verified"]) == (401, False)
    assert (verified["answered"], verified["verified"]) == (200, True)
    older = tmp_path / "older.json"
    older.write_text(json.dumps({k: v for k, v in verified.items() if k != "verified"}))
    target = Target().start()
    try:
        for path in [*sorted(saved.glob("*.json")), older]:
            result = invoke("listen", "--replay", str(path), "--forward-to", target.url, "--secret", SECRET)
            assert result.code == 0, result.stderr
            said = [line for line in result.stderr.splitlines() if "not re-signed" in line]
            assert len(said) == (0 if path.name != older.name and "job_real" in path.read_text() else 1), said
    finally:
        target.stop()
    (_, got_forged, body_f), (_, got_real, body_r), (_, got_older, body_o) = target.requests
    assert body_f == forged and got_forged["X-Abstrakt-Signature"] == "0" * 64  # as saved: still invalid
    assert not verify_delivery("abstrakt", SECRET, got_forged, forged)
    assert body_r == genuine and verify_delivery("abstrakt", SECRET, got_real, genuine)  # re-signed, fresh
    assert body_o == genuine and got_older["X-Abstrakt-Signature"] == signed["X-Abstrakt-Signature"]


def test_late_processing_after_final_is_acknowledged_not_emitted():
    """A processing delivery after the task's final one answers 2xx and is not queued."""

    async def scenario(receiver, notes):
        assert (await post(receiver.local_url, get3w_body("t", "completed")))[0] == 200
        status, reply = await post(receiver.local_url, get3w_body("t", "processing"))
        assert status == 200 and reply == {"received": True, "stale": True}
        assert [i.event.task.status for i in drain(receiver)] == [Status.COMPLETED] and receiver.stats.stale == 1

    serve(scenario)


def test_full_queue_answers_503_and_the_retry_is_not_a_duplicate():
    """When the queue is full the sender is told to retry, and that retry is then a new event."""

    async def scenario(receiver, notes):
        assert (await post(receiver.local_url, get3w_body("q1")))[0] == 200
        async with aiohttp.ClientSession() as session:
            async with session.post(receiver.local_url, data=get3w_body("q2")) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        drain(receiver)
        assert (await post(receiver.local_url, get3w_body("q2"))) == (200, {"received": True})
        assert [i.event.task.id for i in drain(receiver)] == ["q2"]

    serve(scenario, queue_max=1)


def test_path_guard_and_callback_urls():
    """--path accepts its path (trailing slash or not); the public URL gets the path unless it has one."""

    async def scenario(receiver, notes):
        assert (await post(receiver.local_url + "/", get3w_body("p1")))[0] == 200
        assert (await post(receiver.local_url.replace("/hook", "/hooks"), get3w_body("p2")))[0] == 404
        assert receiver.callback_url("https://abc.ngrok.app/") == "https://abc.ngrok.app/hook"
        assert receiver.callback_url("https://proxy.example/in/x") == "https://proxy.example/in/x"
        assert receiver.callback_url(None) == receiver.local_url

    serve(scenario, path="hook")


def test_note_limiter_holds_repeats_and_counts_them():
    """One note per kind per interval; held ones are counted into the next and flushed at exit."""
    lines: list[str] = []
    now = [0.0]
    limiter = NoteLimiter(lines.append, interval=1.0, clock=lambda: now[0])
    for _ in range(5):
        limiter.note("not_json", "400: body is not JSON")
    limiter.note("method", "405: GET")
    now[0] = 1.5
    limiter.note("not_json", "400: body is not JSON")
    limiter.note("not_json", "400: body is not JSON")
    limiter.flush()
    assert lines == ["400: body is not JSON", "405: GET", "400: body is not JSON (+4 more like it)",
                     "1 more not_json note(s) were not shown"]


def test_forwarder_retries_5xx_and_stops_on_4xx():
    """5xx and refused connections are retried; a 4xx is the app's answer and is not."""
    target = Target(status=500).start()

    async def main() -> None:
        async with Forwarder(target.url, max_attempts=3, delay=lambda n: 0.01) as forwarder:
            result = await forwarder.send({"content-type": "application/json"}, b"{}")
            assert (result.ok, result.attempts, result.status) == (False, 3, 500)
            target.status = 404
            result = await forwarder.send({}, b"{}")
            assert (result.ok, result.attempts, result.status) == (False, 1, 404)
        with refusing_url() as down_url:
            async with Forwarder(down_url, max_attempts=2, delay=lambda n: 0.01) as forwarder:
                result = await forwarder.send({}, b"{}")
                assert (result.ok, result.attempts, result.status) == (False, 2, None)

    try:
        asyncio.run(main())
    finally:
        target.stop()
    assert len(target.requests) == 4
    assert forward_headers({"authorization": "x", "x-get3w-signature": "s"}) == {
        "X-Get3W-Signature": "s", "Content-Type": "application/json"}


def test_saved_binary_bodies_round_trip_and_credentials_are_dropped(tmp_path):
    """A non-UTF-8 body is saved as base64 and read back byte for byte; Authorization is not saved."""
    body = b"\xff\x00binary"
    record = saved_record("2026-01-01T00:00:00.000Z", "POST", "/", "", {"Authorization": "Bearer k", "A": "b"},
                          body, 400)
    path = save_delivery(tmp_path, "one.json", record)
    assert "body" not in record and (path.stat().st_mode & 0o077) == 0
    assert load_saved(path) == ({"A": "b"}, body)


def test_replay_resigns_with_a_fresh_timestamp():
    """With --secret a replay carries new signatures that verify now (Abstrakt's old stamp would not)."""
    a = abstrakt_body()
    old = {"Content-Type": "application/json", "X-Abstrakt-Timestamp": "1", "X-Abstrakt-Signature": "stale"}
    fresh = resign(old, a, SECRET)
    assert fresh["X-Abstrakt-Timestamp"] != "1" and verify_delivery("abstrakt", SECRET, fresh, a)
    assert not verify_delivery("abstrakt", SECRET, old, a)
    g = get3w_body()
    assert verify_delivery("get3w", SECRET, resign({"x-get3w-signature": "bad"}, g, SECRET), g)
