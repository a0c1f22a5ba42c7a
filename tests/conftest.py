"""Shared fixtures: an isolated environment, a sandbox serving in a thread, and CLI runners."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ENV_PREFIXES = ("G3W_", "GET3W_", "ABSTRAKT_", "NGROK_", "CLOUDFLARED_")
# A virtual-time test still running at this loop time has hung: looptime then fails its tasks.
VIRTUAL_END = 24 * 3600.0
_T = TypeVar("_T")


class StandInHandler(http.server.BaseHTTPRequestHandler):
    """Base of a test's own stand-in server (what the sandbox cannot do): quiet, with a JSON answer."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_json(self, value: Any, status: int = 200) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 (the kernel picks it; nothing races for it)
    in a thread; yield its base URL; stop it after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def said_until_submitted(proc: subprocess.Popen[str]) -> str:
    """Read ``proc``'s stderr up to the line saying ``submitted <id>`` (said as the wait begins)
    and return what was read: from then on a task exists and the process is waiting for it."""
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:
        said.append(line)
        if line.startswith("submitted "):
            break
    return "".join(said)


def wait_until(check: Callable[[], _T], timeout: float = 20.0) -> _T:
    """Check again every 20 ms until ``check()`` is truthy, and return it; fail after ``timeout``
    seconds. For conditions another process or thread brings about (a file, a log line): the
    check, not a sleep, is what the test waits on."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return found


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real config, keys or journal leak in or out of a test."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name == "NO_COLOR":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".state"))
    monkeypatch.setenv("G3W_HOME", str(tmp_path / "g3w-home"))
    monkeypatch.setenv("COLUMNS", "200")
    # A cloudflared installed on this machine is not used (--tunnel auto would open quick tunnels):
    # tests that want one point CLOUDFLARED_PATH at tests/fake_cloudflared.py.
    monkeypatch.setenv("CLOUDFLARED_PATH", str(tmp_path / "no-cloudflared"))
    return tmp_path


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    """g3w's own back-off pauses take no time in this process (``retry.set_testing``), so failure
    paths cost milliseconds; a provider's Retry-After still counts. Subprocesses pay real pauses.
    A test of the pauses themselves takes ``real_backoff``."""
    from get3w_cli import retry

    retry.set_testing(True)
    yield
    retry.set_testing(False)


@pytest.fixture
def real_backoff(no_backoff: None) -> None:
    """The production back-off, for the tests that check its pauses."""
    from get3w_cli import retry

    retry.set_testing(False)


def run_in_virtual_time(main: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``main()`` on an event loop whose clock jumps to its next timer whenever nothing is
    ready (looptime): sleeps, timeouts and back-offs take no real time, and ``loop.time()`` is
    exact, so a test asserts the very instants things happen. Only for code that waits on the
    loop's own timers; real sockets belong on a real loop (``asyncio.run``)."""
    import looptime

    loop = looptime.new_event_loop(end=VIRTUAL_END)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class ThreadedSandbox:
    """A sandbox serving from its own event loop in a thread, for CLI runs in the main thread."""

    def __init__(self, **options: Any) -> None:
        from get3w_cli.sandbox import Sandbox, SandboxOptions

        self.loop = asyncio.new_event_loop()
        self.sandbox = Sandbox(SandboxOptions(**options))
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedSandbox:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sandbox.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sandbox.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def base_url(self) -> str:
        return self.sandbox.base_url

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture
def sandbox() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        yield sb


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def g3w(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60) -> Result:
    """Run the real console entry point in a subprocess (stdout and stderr kept apart)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "get3w_cli", *args], capture_output=True, text=True, env=full_env,
        input=input, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def g3w_on_terminal(*args: str, env: dict[str, str], timeout: float = 60,
                    answers: dict[bytes, bytes] | None = None, size: tuple[int, int] | None = None,
                    stdout_on_terminal: bool = False) -> Result:
    """Run g3w with stderr on a pseudo-terminal (TERM=xterm), as a user at a terminal sees it;
    ``stderr`` is everything drawn there, control sequences included. ``stdout_on_terminal``:
    stdout is the terminal instead (a table drawn for a person), and ``stdout`` what was drawn.

    ``answers``: the test plays the terminal: stdin is the pseudo-terminal too, and each time g3w
    writes a query (a key: ``b"\x1b[c"``) its answer is typed back. ``size``: the window's
    (columns, rows), 10 x 20 pixels a cell, as the terminal reports it.
    """
    master, terminal = os.openpty()
    if size is not None:
        import fcntl
        import struct
        import termios

        columns, rows = size
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, columns * 10, rows * 20))
    full_env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", **env}
    full_env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", *args], env=full_env, text=True,
                            stdout=terminal if stdout_on_terminal else subprocess.PIPE,
                            stderr=subprocess.PIPE if stdout_on_terminal else terminal,
                            stdin=terminal if answers is not None else None)
    os.close(terminal)
    chunks: list[bytes] = []

    def drain() -> None:  # until the child's side closes (EIO), so it never blocks on a full pty
        seen = 0
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)
            drawn = b"".join(chunks)
            for query, answer in (answers or {}).items():
                for _ in range(drawn.count(query, max(seen - len(query) + 1, 0))):
                    os.write(master, answer)
            seen = len(drawn)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        reader.join(10)
        os.close(master)
    drawn = b"".join(chunks).decode(errors="replace")
    return Result(proc.returncode, drawn, err) if stdout_on_terminal else Result(proc.returncode, out, drawn)


def sandbox_env(sb: ThreadedSandbox, key: str = "sk_test_key") -> dict[str, str]:
    """Environment pointing both providers at a test sandbox."""
    return {"GET3W_BASE_URL": sb.base_url, "ABSTRAKT_BASE_URL": sb.base_url,
            "GET3W_API_KEY": key, "ABSTRAKT_API_KEY": key}
