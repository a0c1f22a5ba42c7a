"""Floods and hostile connections (issue #8): what strangers cannot make the webhook servers do.

- ``g3w listen`` holds a bounded number of bytes: a slow ``--forward-to`` app, a slow ``--exec``
  command or a stalled stdout push back on senders with 503 + Retry-After instead of growing
  memory, and what was accepted is still handled once the consumer catches up;
- both servers (``g3w listen``'s Receiver and run/batch's CallbackListener) close connections
  that do not send their headers within a few seconds, or sit idle after an answer;
- running out of file descriptors costs a rate-limited warning line, never a traceback;
- ``--save`` never writes a header that may carry a credential, but keeps the signature headers.

Subprocess tests run the real command on ``--port 0`` (the port is read back from its URL).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest
from conftest import wait_until

from get3w_cli.constants import LISTEN_QUEUE_MAX_BYTES, LISTEN_RETRY_AFTER_S, WEBHOOK_HEADER_TIMEOUT
from get3w_cli.webhooks.inbox import Inbox
from get3w_cli.webhooks.listener import CallbackListener
from get3w_cli.webhooks.receiver import NoteLimiter, Receiver, ReceiverConfig

MiB = 1024 * 1024
BIG = 8 * MiB  # a large delivery, under the 10 MiB body limit
FITS = LISTEN_QUEUE_MAX_BYTES // BIG  # large deliveries the byte bound leaves room for


def task_body(task_id: str, pad: int = 0) -> bytes:
    """A Get3W completed callback, padded to about ``pad`` extra bytes (like inline outputs)."""
    return json.dumps({"id": task_id, "model": "get3w/flux-dev", "status": "completed",
                       "outputs": ["https://x/1.png"], "pad": "x" * pad}).encode()



class ListenProc:
    """``g3w listen --port 0 --print-url ARGS`` in a subprocess; stderr lines arrive on a queue.

    ``max_files`` lowers the child's RLIMIT_NOFILE; ``read_stdout=False`` leaves its stdout
    unread after the URL (a stalled consumer) until ``read_stdout()``.
    """

    def __init__(self, *args: str, cwd: Path | None = None, max_files: int | None = None,
                 read_stdout: bool = True) -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

        def limit_files() -> None:  # in the child, before exec
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, hard))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "get3w_cli", "listen", "--port", "0", "--print-url", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
            preexec_fn=limit_files if max_files else None,  # noqa: PLW1509 - setrlimit only, no locks taken
        )
        self.err_lines: list[str] = []
        self._err: queue.Queue[str] = queue.Queue()
        self.out: queue.Queue[str] = queue.Queue()
        self._threads = [threading.Thread(target=self._pump_err, daemon=True)]
        self._threads[0].start()
        self.url = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        assert self.url.startswith("http://"), f"no URL; stderr:\n{self.stderr}"
        self.port = urlsplit(self.url).port
        if read_stdout:
            self.read_stdout()

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.append(line.rstrip("\n"))
            self._err.put(line)

    def read_stdout(self) -> None:
        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.out.put(line)

        self._threads.append(threading.Thread(target=pump, daemon=True))
        self._threads[-1].start()

    @property
    def stderr(self) -> str:
        return "\n".join(self.err_lines)

    def wait_for_stderr(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._err.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no stderr line with {text!r} in {timeout}s; stderr:\n{self.stderr}") from None
            if text in line:
                return line

    def event(self, timeout: float = 10) -> dict[str, Any]:
        try:
            return json.loads(self.out.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no event line in {timeout}s; stderr:\n{self.stderr}") from None

    def peak_memory(self) -> int:
        """The child's peak resident memory so far (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def interrupt(self, timeout: float = 15) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(10)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for thread in self._threads:
            thread.join(5)
        if not any(thread.is_alive() for thread in self._threads):  # closing under a reader would block
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def listen() -> Iterator[Callable[..., ListenProc]]:
    started: list[ListenProc] = []

    def start(*args: str, **kwargs: Any) -> ListenProc:
        started.append(ListenProc(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


class HeldApp:
    """A --forward-to app that holds every request until ``release()``, then records its task id."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.arrived: queue.Queue[str] = queue.Queue()  # task ids, as requests complete
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                app.gate.wait(60)  # bounded: a failing test must not leave the thread behind
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                app.arrived.put(json.loads(body)["id"])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/app"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def release(self) -> None:
        self.gate.set()

    def take(self, count: int, timeout: float = 30) -> list[str]:
        try:
            return [self.arrived.get(timeout=timeout) for _ in range(count)]
        except queue.Empty:
            raise AssertionError("the listener did not forward every accepted delivery") from None

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i:02d}" for i in range(count)]


def flood(url: str, task_ids: list[str], *, stop_at_503: bool = False) -> tuple[list[str], list[str]]:
    """Post a large delivery for each id, one after another: (accepted ids, ids answered 503)."""
    accepted, refused = [], []
    with httpx.Client(timeout=30) as client:
        for task_id in task_ids:
            resp = client.post(url, content=task_body(task_id, BIG))
            if resp.status_code == 503:
                assert resp.headers["Retry-After"] == str(LISTEN_RETRY_AFTER_S)
                refused.append(task_id)
                if stop_at_503:
                    break
            else:
                assert resp.status_code == 200, resp.text
                accepted.append(task_id)
    return accepted, refused


# --- 1. the byte bound ----------------------------------------------------------------------


def test_a_slow_forward_target_gets_503s_not_memory_and_everything_accepted_is_forwarded_once(listen):
    """30 deliveries of 8 MiB behind an app that does not answer: the listener takes what fits in
    its byte bound, answers 503 + Retry-After to the rest and stays small; once the app answers,
    each accepted delivery reaches it exactly once, and a retried one is accepted again."""
    app = HeldApp()
    try:
        proc = listen("--forward-to", app.url)
        accepted, refused = flood(proc.url, ids("big", 30))
        assert 1 <= len(accepted) <= FITS and len(refused) == 30 - len(accepted)
        assert accepted == ids("big", len(accepted))  # taken in order until full
        peak = proc.peak_memory()
        # Holding all 30 (the count bound alone) took > 500 MB; the byte bound keeps the bodies
        # (and their parsed payloads) of about FITS deliveries, plus the interpreter (~50 MB).
        assert peak < 300 * MiB, f"peak memory {peak // MiB} MiB"
        app.release()
        forwarded = app.take(len(accepted))
        for task_id in accepted:  # the note comes just before the delivery's bytes are let go
            proc.wait_for_stderr(f"forwarded {task_id} completed")
        retried, again_refused = flood(proc.url, refused[:2])  # the provider retries what got 503
        assert again_refused == [] and retried == refused[:2]
        forwarded += app.take(2)
        assert Counter(forwarded) == Counter(accepted + retried)
        assert app.arrived.empty()
        assert proc.interrupt() == 130
        assert "Traceback" not in proc.stderr and "503: too many deliveries waiting" in proc.stderr
    finally:
        app.stop()


def test_a_slow_exec_command_pushes_back_with_503(listen, tmp_path):
    """--exec runs one event at a time: while its command hangs, the events waiting for it hold
    their bytes, so the listener soon answers 503; released, every accepted event is run."""
    # The command waits for a file the test creates (for 30 s at most, so that it never outlives a failed test).
    command = ("cat > /dev/null; for i in $(seq 1500); do [ -e release ] && break; sleep 0.02; done; "
               "echo ran >> ran.log")
    proc = listen("--exec", command, cwd=tmp_path)
    try:
        accepted, refused = flood(proc.url, ids("ex", FITS + 2), stop_at_503=True)
        assert len(refused) == 1 and 1 <= len(accepted) <= FITS
    finally:
        (tmp_path / "release").touch()
    ran = tmp_path / "ran.log"
    wait_until(lambda: ran.exists() and len(ran.read_text().splitlines()) == len(accepted), timeout=30)
    assert proc.interrupt() == 130


def test_a_stalled_stdout_pushes_back_with_503_and_loses_nothing(listen):
    """`g3w listen --json | slow-reader`: events wait to be printed holding their bytes, new ones
    get 503; when the reader catches up, every accepted event is printed once, in order."""
    proc = listen("--json", read_stdout=False)
    accepted, refused = flood(proc.url, ids("out", FITS + 2), stop_at_503=True)
    assert len(refused) == 1 and 1 <= len(accepted) <= FITS
    proc.read_stdout()
    assert [proc.event(timeout=30)["id"] for _ in accepted] == accepted
    assert proc.interrupt() == 130
    assert proc.out.empty()


async def post(url: str, body: bytes | Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers or {}) as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


def serve_receiver(scenario: Callable[[Receiver], Awaitable[None]], **config: Any) -> None:
    async def main() -> None:
        receiver = Receiver(ReceiverConfig(port=0, **config), NoteLimiter(lambda _: None))
        await receiver.start()
        try:
            await scenario(receiver)
        finally:
            await receiver.close()

    asyncio.run(main())


def test_receiver_bytes_stay_charged_until_the_consumer_lets_go():
    """The receiver counts a delivery's bytes from its read until the consumer releases it: a
    full budget answers 503 (even with room in the queue); bodies of unknown length are
    charged as they arrive; rejected deliveries (not saved) give their bytes back at once."""

    async def scenario(receiver: Receiver) -> None:
        url = receiver.local_url
        assert (await post(url, task_body("b1", 3000)))[0] == 200
        assert receiver.budget.used > 3000
        status, headers = await post(url, task_body("b2", 3000))
        assert status == 503 and headers["Retry-After"] == str(LISTEN_RETRY_AFTER_S)

        async def chunks() -> Any:  # no Content-Length: charged chunk by chunk
            for _ in range(4):
                yield b" " * 1000

        assert (await post(url, chunks()))[0] == 503
        item = receiver.queue.get_nowait()
        assert item.event is not None and item.event.task.id == "b1" and receiver.queue.empty()
        item.release()
        assert receiver.budget.used == 0
        assert (await post(url, b"not json" * 500))[0] == 400 and receiver.budget.used == 0
        assert (await post(url, task_body("b2", 3000)))[0] == 200
        receiver.queue.get_nowait().release()
        assert receiver.budget.used == 0

    serve_receiver(scenario, queue_max_bytes=5000)


# --- 2. headers that never come -------------------------------------------------------------

Opened = tuple[int, str, Callable[[], Awaitable[None]]]  # port, delivery URL, close


async def open_listener(header_timeout: float) -> Opened:
    listener = CallbackListener(Inbox(), header_timeout=header_timeout)
    await listener.start()
    return listener.port, listener.local_url, listener.close


async def open_receiver(header_timeout: float) -> Opened:
    receiver = Receiver(ReceiverConfig(port=0, header_timeout=header_timeout), NoteLimiter(lambda _: None))
    await receiver.start()
    return receiver.port, receiver.local_url, receiver.close


SERVERS = pytest.mark.parametrize("open_server", [open_listener, open_receiver], ids=["listener", "receiver"])
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def trickle(conns: list[Conn]) -> None:
    """The attacker: one more header line on each connection every tenth of a second, never the end."""
    while True:
        for reader, writer in conns:
            if not (reader.at_eof() or writer.is_closing()):
                writer.write(b"X-Slow: 1\r\n")
        await asyncio.sleep(0.1)  # pacing the attacker, not waiting for the server


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionError:
        return True
    except asyncio.TimeoutError:
        return False


@SERVERS
def test_connections_trickling_headers_are_closed_and_deliveries_still_get_through(open_server):
    """200 connections send a request line and then a header every 0.1 s, never finishing: a
    genuine delivery meanwhile is answered at once, and each trickling connection is closed
    once the header timeout (0.5 s here) has passed."""

    async def main() -> None:
        port, url, close = await open_server(0.5)
        conns: list[Conn] = []
        try:
            for _ in range(200):
                conns.append(await asyncio.open_connection("127.0.0.1", port))
                conns[-1][1].write(b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            attacker = asyncio.create_task(trickle(conns))
            started = time.monotonic()
            assert (await post(url, task_body("genuine")))[0] == 200
            assert time.monotonic() - started < 5  # did not wait behind the trickling connections
            closed = [await closed_by_server(reader, timeout=10) for reader, _ in conns]
            assert all(closed), f"{closed.count(False)} trickling connections still open"
            attacker.cancel()
        finally:
            for _, writer in conns:
                writer.close()
            await close()

    asyncio.run(main())


def request_head(path: str, body: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()


async def answer(reader: asyncio.StreamReader) -> int:
    """Read one whole answer from a keep-alive connection; returns its status."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
    length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                  if line.lower().startswith("content-length"))
    await reader.readexactly(length)
    return int(head.split()[1])


@SERVERS
def test_keep_alive_connections_serve_prompt_requests_then_close_when_idle(open_server):
    """Requests sent one after another on one connection are all answered (the deadline is
    re-armed after each answer and paused while a request is handled, even one whose body
    takes longer than the timeout); left idle, the connection is closed."""

    async def main() -> None:
        port, url, close = await open_server(0.5)
        path = urlsplit(url).path or "/"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(3):
                body = task_body(f"k{i}")
                writer.write(request_head(path, body) + body)
                assert await answer(reader) == 200
            body = task_body("slow_body")
            writer.write(request_head(path, body))
            await asyncio.sleep(1.0)  # a slow sender: its body comes after the header timeout
            writer.write(body)
            assert await answer(reader) == 200
            assert await closed_by_server(reader, timeout=10)
        finally:
            writer.close()
            await close()

    asyncio.run(main())


# --- 3. out of file descriptors ---------------------------------------------------------------

# The listener needs about 8 descriptors of its own; the rest of this limit goes to connections.
MAX_FILES = 48
OVER_LIMIT = MAX_FILES + 20  # connections opened: some wait in the listening socket's backlog


def test_running_out_of_file_descriptors_is_one_warning_line_never_a_traceback(listen):
    """Connections beyond the open files limit: one warning line, no traceback, and a delivery
    is taken as soon as the connections are gone."""
    proc = listen("--json", max_files=MAX_FILES)
    conns: list[socket.socket] = []
    try:
        conns.extend(socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(OVER_LIMIT))
        proc.wait_for_stderr("cannot accept new connections", timeout=15)
    finally:
        for sock in conns:
            sock.close()
    resp = httpx.post(proc.url, content=task_body("after_the_flood"), timeout=15)
    assert resp.status_code == 200
    assert proc.event()["id"] == "after_the_flood"
    assert proc.interrupt() == 130
    assert "Traceback" not in proc.stderr, proc.stderr
    assert sum("cannot accept" in line for line in proc.err_lines) == 1, proc.stderr
    assert len([line for line in proc.err_lines if "accept" in line]) <= 2  # + the count of those held back


def test_slowloris_on_the_real_command_cannot_keep_a_delivery_out(listen):
    """The issue's attack on `g3w listen` itself: connections that never finish their headers take
    every descriptor the process may open; the listener closes them after the header timeout, so
    a delivery posted meanwhile (waiting in the backlog) is then answered, with no traceback."""
    proc = listen("--json", max_files=MAX_FILES)
    conns: list[socket.socket] = []
    try:
        for _ in range(OVER_LIMIT):
            conns.append(socket.create_connection(("127.0.0.1", proc.port), timeout=5))
            conns[-1].sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        proc.wait_for_stderr("cannot accept new connections", timeout=15)
        started = time.monotonic()
        resp = httpx.post(proc.url, content=task_body("genuine"), timeout=WEBHOOK_HEADER_TIMEOUT + 15)
        assert resp.status_code == 200 and time.monotonic() - started < WEBHOOK_HEADER_TIMEOUT + 10
        assert proc.event()["id"] == "genuine"
    finally:
        for sock in conns:
            sock.close()
    assert proc.interrupt() == 130
    assert "Traceback" not in proc.stderr, proc.stderr


# asyncio retries a failed accept() a second later, from a timer that its server's close() does
# not cancel: a server closed meanwhile then gets the retry on its closed socket. The probe runs
# a listener out of descriptors, closes it, and lets that second pass.
_CLOSED_WHILE_OUT_OF_FILES = r"""
import asyncio, logging, resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from get3w_cli.webhooks.inbox import Inbox
from get3w_cli.webhooks.listener import CallbackListener

async def main() -> None:
    loop = asyncio.get_running_loop()
    refused = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cannot accept" in record.getMessage():
                refused.set()

    logging.getLogger("g3w.webhooks").addHandler(Seen())
    listener = CallbackListener(Inbox())
    await listener.start()
    clients = []
    try:
        while True:  # every descriptor left; the kernel queues the connections for accept()
            clients.append(socket.create_connection(("127.0.0.1", listener.port)))
    except OSError:
        pass
    await asyncio.wait_for(refused.wait(), 10)  # accept() failed: asyncio's retry is now pending
    for client in clients:
        client.close()
    await listener.close()
    passed = loop.create_future()
    loop.call_later(asyncio.constants.ACCEPT_RETRY_DELAY, passed.set_result, None)  # after every pending retry
    await passed
    print("closed", flush=True)

asyncio.run(main())
"""


def test_a_server_closed_while_out_of_file_descriptors_stays_quiet() -> None:
    """Closing a webhook server right after accept() ran out of descriptors (Ctrl-C in the middle
    of a flood) prints no traceback when asyncio's pending accept retry comes."""
    result = subprocess.run([sys.executable, "-c", _CLOSED_WHILE_OUT_OF_FILES, str(MAX_FILES)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "closed\n"), result.stderr  # after accept() was refused
    assert "Traceback" not in result.stderr and "Exception in callback" not in result.stderr, result.stderr


# --- 4. what --save leaves out ----------------------------------------------------------------

CREDENTIALS = {"Authorization": "Bearer sk_live_1", "Proxy-Authorization": "Basic eDp5", "Cookie": "s=1",
               "Set-Cookie": "s=2", "X-Api-Key": "k1", "X-Auth-Token": "t1", "Client-Secret": "c1",
               "X-Webhook-Secret": "w1", "Api-KEY": "k2", "X-Refresh-Token": "t2"}
SIGNATURES = {"X-Get3W-Signature": "abc", "X-Abstrakt-Signature": "def", "X-Abstrakt-Timestamp": "1700000000",
              "webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,xyz"}


def test_save_drops_every_header_that_may_carry_a_credential_and_keeps_the_signatures(listen, tmp_path):
    """CONTRACT 5: no Authorization, cookies, X-Api-Key or name with token/secret/key in a saved
    delivery; the signature headers --replay needs are kept, and so is everything else."""
    saved = tmp_path / "saved"
    proc = listen("--save", str(saved))
    headers = {**CREDENTIALS, **SIGNATURES, "X-Request-Id": "r1"}
    assert httpx.post(proc.url, content=task_body("saved_1"), headers=headers).status_code in (200, 401, 422)
    wait_until(lambda: any(saved.glob("*.json")))
    assert proc.interrupt() == 130
    [file] = saved.glob("*.json")
    kept = {name.lower(): value for name, value in json.loads(file.read_text())["headers"].items()}
    assert not {name.lower() for name in CREDENTIALS} & set(kept), kept
    assert {name.lower(): value for name, value in SIGNATURES.items()}.items() <= kept.items()
    assert kept["x-request-id"] == "r1"
    text = file.read_text()
    assert not any(secret in text for secret in CREDENTIALS.values())


def test_ctrl_c_while_out_of_file_descriptors_exits_130_quietly(listen):
    """Interrupted while every descriptor is taken: the summary and exit 130, no internal error
    (closing must not need a new thread, a module import or a file)."""
    proc = listen("--json", max_files=MAX_FILES)
    conns: list[socket.socket] = []
    try:
        conns.extend(socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(OVER_LIMIT))
        proc.wait_for_stderr("cannot accept new connections", timeout=15)
        assert proc.interrupt() == 130, proc.stderr
    finally:
        for sock in conns:
            sock.close()
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "0 event(s)" in proc.stderr
