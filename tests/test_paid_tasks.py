"""A paid task is never lost: its id reaches stdout and the journal on every exit (issue #8).

g3w against the sandbox, or against a stand-in Get3W v3 provider of the test's own where the
sandbox cannot misbehave the way a provider can (hold an answer, drop it): in-process, and in
real processes where a signal is sent.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, ThreadedSandbox, said_until_submitted, sandbox_env
from inproc import invoke

FAST = ("--poll-max", "0.2")
TASK_ID = "pred_standin1"


class StandIn:
    """A Get3W v3 provider on 127.0.0.1 whose submit answer the test controls.

    ``on_post(handler)`` answers the submit (or not); GETs answer the task as completed.
    ``posted`` is set once a submit's body has been read.
    """

    def __init__(self, on_post: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.posted = threading.Event()
        self.posts = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.posts += 1
                stand_in.posted.set()
                on_post(self)

            def do_GET(self) -> None:
                answer(self, {"id": TASK_ID, "model": "get3w/flux-dev", "status": "completed",
                              "outputs": ["https://cdn.invalid/out.png"]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> dict[str, str]:
        return {"GET3W_BASE_URL": self.url, "GET3W_API_KEY": "sk_test_key"}


def answer(handler: BaseHTTPRequestHandler, data: dict[str, Any], status: str = "created") -> None:
    body = json.dumps({"code": 200, "message": "success", "data": {**data, "status": data.get("status", status)}})
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body.encode())


def created(handler: BaseHTTPRequestHandler) -> None:
    answer(handler, {"id": TASK_ID, "model": "get3w/flux-dev"})


def journal_rows(home: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "history.db") as db:
        return db.execute("SELECT id, status FROM tasks").fetchall()


def history(env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = invoke("history", "--json", env=env)
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def one_record(result: Result) -> dict[str, Any]:
    assert result.stdout.count("\n") == 1, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def home() -> Path:
    return Path(os.environ["G3W_HOME"])


# --- the journal fails after the submit ------------------------------------------------------------


def test_a_journal_locked_after_the_submit_costs_exit_6_never_the_task(home: Path) -> None:
    """The journal cannot be written once the task exists: the id is said at once, the wait goes on,
    the record reaches stdout, exit 6, and no hint invites a second submit."""
    holder: list[sqlite3.Connection] = []

    def lock_then_answer(handler: BaseHTTPRequestHandler) -> None:
        db = sqlite3.connect(home / "history.db", isolation_level=None, check_same_thread=False)
        db.execute("BEGIN IMMEDIATE")  # holds the write lock until the test ends
        holder.append(db)
        created(handler)

    with StandIn(lock_then_answer) as provider:
        try:
            result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", "--json", *FAST, env=provider.env())
        finally:
            for db in holder:
                db.rollback()
                db.close()
    assert result.code == 6, result.stderr
    record = one_record(result)
    assert (record["id"], record["status"]) == (TASK_ID, "completed")
    assert f"its id is {TASK_ID}" in result.stderr
    assert "--no-history" not in result.stderr and "Traceback" not in result.stderr
    assert f"g3w wait {TASK_ID}" in result.stderr
    assert provider.posts == 1


# --- Ctrl-C / SIGTERM while the submit is in flight -----------------------------------------------


def _start_run(provider: StandIn, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **provider.env()}
    return subprocess.Popen([sys.executable, "-m", "get3w_cli", "run", "flux-dev", "-p", "x", "--via", "poll",
                             *FAST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_during_the_submit_waits_for_its_answer_and_keeps_the_id(signum: int, home: Path) -> None:
    """The POST is at the provider when SIGTERM/Ctrl-C comes: its answer still gets in (grace),
    so the id is printed (--json record) and journalled; exit 130; the task is not cancelled."""
    release = threading.Event()

    def held(handler: BaseHTTPRequestHandler) -> None:
        release.wait(30)
        created(handler)

    with StandIn(held) as provider:
        proc = _start_run(provider, "--json")
        try:
            assert provider.posted.wait(30)
            proc.send_signal(signum)
            release.set()
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            release.set()
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    record = json.loads(stdout)
    assert (record["id"], record["status"]) == (TASK_ID, "created")
    assert f"g3w wait {TASK_ID}" in stderr and "Traceback" not in stderr
    assert journal_rows(home) == [(TASK_ID, "created")]


def test_an_interrupt_during_a_submit_that_never_answers_journals_it_unknown(home: Path) -> None:
    """SIGTERM during the POST and the answer never comes: exit 130, a row says `unknown`, and the
    user is told a task may exist."""
    release = threading.Event()

    def dropped(handler: BaseHTTPRequestHandler) -> None:
        release.wait(30)
        handler.close_connection = True  # no answer at all: the connection just closes

    with StandIn(dropped) as provider:
        proc = _start_run(provider, "--json")
        try:
            assert provider.posted.wait(30)
            proc.send_signal(signal.SIGTERM)
            release.set()
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            release.set()
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stdout == ""
    assert "may exist" in stderr and "Traceback" not in stderr
    assert [status for _, status in journal_rows(home)] == ["unknown"]
    assert [h["status"] for h in history()] == ["unknown"]


# --- submit answers that may hide a created task --------------------------------------------------

UNREADABLE = [
    (200, b"this is not JSON"),
    (200, b'{"code": 200, "message": "success", "data": {"id": "pred_tr'),
    (200, b'{"code": 200, "message": "success", "data": {"status": "created"}}'),
    (500, b"<html><body><h1>500 Internal Server Error</h1></body></html>"),
    (502, b"<html><body>Bad gateway</body></html>"),
]


@pytest.mark.parametrize(("status", "body"), UNREADABLE)
@pytest.mark.parametrize("command", ["run", "submit"])
def test_an_unreadable_submit_answer_is_unknown_exit_6_never_resent(sandbox: ThreadedSandbox, status: int,
                                                                  body: bytes, command: str) -> None:
    """A 200 that is not JSON, is cut short or names no id, or a 5xx page: the task may exist, so it is
    journalled `unknown`, g3w exits 6 and says not to resubmit blindly; exactly one POST was sent."""
    sandbox.sandbox.inject(status=status, body=body, method="POST", path_prefix="/api/v3/get3w")
    extra = ("--via", "poll", *FAST) if command == "run" else ()
    result = invoke(command, "flux-dev", "-p", "x", *extra, env=sandbox_env(sandbox))
    assert result.code == 6, result.stderr
    assert "may have been created" in result.stderr and "resubmitting blindly" in result.stderr
    assert "try again later" not in result.stderr and "Traceback" not in result.stderr
    assert len(sandbox.sandbox.submissions()) == 1
    assert [h["status"] for h in history()] == ["unknown"]


def test_a_submit_refused_for_good_leaves_no_row(sandbox: ThreadedSandbox) -> None:
    """A 400 created nothing: no journal row is left behind (the pre-submit row is dropped)."""
    sandbox.sandbox.inject(status=400, method="POST", path_prefix="/api/v3/get3w")
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", env=sandbox_env(sandbox))
    assert result.code == 5
    assert history() == []


# --- --json prints the record on every exit with an id --------------------------------------------


def test_timeout_prints_the_record_and_journals_what_was_known(sandbox: ThreadedSandbox) -> None:
    """--json on timeout (exit 4): the record is on stdout (status still processing), and the journal
    row says processing too, not the `created` of the submit answer."""
    result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=6", "--via", "poll", "--timeout", "1.5s",
                 "--json", *FAST, env=sandbox_env(sandbox))
    assert result.code == 4, result.stderr
    record = one_record(result)
    assert record["status"] == "processing" and record["via"] is None
    assert f"g3w wait {record['id']}" in result.stderr
    assert [(h["id"], h["status"]) for h in history(sandbox_env(sandbox))] == [(record["id"], "processing")]


def interrupted_run(sandbox: ThreadedSandbox, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    """``g3w run flux-dev -p x ARGS --json`` of a 30 s sandbox task, polled; Ctrl-C once it says
    it submitted; (exit code, stdout, stderr)."""
    env = {**os.environ, **sandbox_env(sandbox)}
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "run", "flux-dev", "-p", "x", "-i",
                             "sandbox_duration=30", "--via", "poll", *args, "--json", *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        said = said_until_submitted(proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, stdout, said + stderr


def test_interrupt_prints_the_record(sandbox: ThreadedSandbox, home: Path) -> None:
    """--json and Ctrl-C during the wait: exit 130 with the record (id, status) on stdout."""
    code, stdout, stderr = interrupted_run(sandbox)
    assert code == 130, stderr
    record = json.loads(stdout)
    assert record["status"] in ("created", "processing") and record["id"].startswith("pred_")
    assert journal_rows(home) == [(record["id"], record["status"])]


# --- cancel looks first ----------------------------------------------------------------------------


@pytest.fixture
def finished_task(sandbox: ThreadedSandbox) -> str:
    env = sandbox_env(sandbox)
    task_id = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", env=env).stdout.strip()
    assert invoke("wait", task_id, *FAST, env=env).code == 0
    return task_id


def test_cancel_of_a_finished_task_sends_nothing_and_exits_2(sandbox: ThreadedSandbox, finished_task: str) -> None:
    """`g3w cancel` of a completed Get3W v3 task: no DELETE (it would delete the outputs), exit 2,
    and the journal still says completed."""
    env = sandbox_env(sandbox)
    result = invoke("cancel", finished_task, env=env)
    assert result.code == 2
    assert "already completed" in result.stderr and "--delete-outputs" in result.stderr
    assert [r for r in sandbox.sandbox.requests if r.method == "DELETE"] == []
    assert [h["status"] for h in history(env)] == ["completed"]


def test_cancel_delete_outputs_deletes_a_finished_task(sandbox: ThreadedSandbox, finished_task: str) -> None:
    """--delete-outputs is the explicit way to delete a finished v3 task's outputs; the record keeps
    its status."""
    env = sandbox_env(sandbox)
    result = invoke("cancel", finished_task, "--delete-outputs", "--json", env=env)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert [r.path for r in sandbox.sandbox.requests if r.method == "DELETE"] == [
        f"/api/v3/predictions/{finished_task}"]
