"""A paid task is never lost under faults that strike after its submit (issue #8).

The journal damaged or the disk full once the provider has the POST, an answer that trickles
forever, a wait that ends in ``--on-timeout cancel``: g3w against the stand-in provider of
tests/test_paid_tasks.py or the sandbox, in-process, and in a real process where an rlimit or a
signal needs one.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import Result, ThreadedSandbox, sandbox_env
from inproc import invoke
from test_paid_tasks import (
    FAST,
    TASK_ID,
    StandIn,
    _start_run,
    created,
    history,
    interrupted_run,
    journal_rows,
    one_record,
)

from get3w_cli.http import HttpSession

# Bytes that are no SQLite file, no WAL and no wal-index.
GARBAGE = b"this is not a journal: " * 64


@pytest.fixture
def home() -> Path:
    return Path(os.environ["G3W_HOME"])


def assert_task_kept(result: Result, provider: StandIn) -> None:
    """The journal failed after the submit: the id was said, the record is on stdout, exit 6, no
    traceback, no invitation to submit again, and one POST."""
    assert result.code == 6, result.stderr
    record = one_record(result)
    assert (record["id"], record["status"]) == (TASK_ID, "completed")
    assert f"its id is {TASK_ID}" in result.stderr
    assert f"g3w wait {TASK_ID}" in result.stderr
    assert "--no-history" not in result.stderr and "Traceback" not in result.stderr
    assert provider.posts == 1


# --- the journal damaged after the submit ---------------------------------------------------------


def _damage(db: Path) -> None:
    """Overwrite history.db and its -wal/-shm in place with garbage of at least their size (the
    files are not shortened: sqlite maps -shm into memory, and a shortened mapping would be a
    SIGBUS, not a damaged journal)."""
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            size = path.stat().st_size
            with path.open("r+b") as file:
                file.write((GARBAGE * (size // len(GARBAGE) + 1))[:max(size, len(GARBAGE))])


def test_a_journal_damaged_after_the_submit_costs_exit_6_never_the_task(home: Path) -> None:
    """history.db (and its -wal/-shm) turn to garbage while the provider takes the POST: the id is
    said at once, the wait goes on, the record reaches stdout, exit 6, one POST."""
    damaged: list[bool] = []

    def damage_then_answer(handler: BaseHTTPRequestHandler) -> None:
        _damage(home / "history.db")
        damaged.append(True)
        created(handler)

    with StandIn(damage_then_answer) as provider:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", "--json", *FAST, env=provider.env())
    assert damaged == [True]
    assert_task_kept(result, provider)


# --- the disk full after the submit ---------------------------------------------------------------


def _ignores(pid: int, signum: int) -> bool:
    """Whether process ``pid`` ignores ``signum`` (its SigIgn mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    [mask] = [line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")]
    return bool(int(mask, 16) >> (signum - 1) & 1)


def test_a_disk_full_after_the_submit_costs_exit_6_never_the_task(home: Path) -> None:
    """Once the provider has the POST, g3w may not write a byte more to any file (RLIMIT_FSIZE 0, as
    a full disk: each write fails, with EFBIG; Python ignores SIGXFSZ, so it is a failed write, not
    a killed process): the id is said, the record reaches stdout, exit 6, one POST."""
    child: list[subprocess.Popen[str]] = []
    ignored: list[bool] = []

    def fill_then_answer(handler: BaseHTTPRequestHandler) -> None:
        pid = child[0].pid
        ignored.append(_ignores(pid, signal.SIGXFSZ))
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, 0))
        created(handler)

    with StandIn(fill_then_answer) as provider:
        child.append(_start_run(provider, "--json"))
        try:
            stdout, stderr = child[0].communicate(timeout=60)
        finally:
            child[0].kill()
            child[0].wait()
    assert ignored == [True]
    assert_task_kept(Result(child[0].returncode, stdout, stderr), provider)
    # what was written before the POST is intact: the row of the submit, never updated
    assert [status for _, status in journal_rows(home)] == ["submitting"]


# --- --on-timeout cancel: the row says cancelled ---------------------------------------------------


def deletes(sandbox: ThreadedSandbox) -> list[str]:
    return [r.path for r in sandbox.sandbox.requests if r.method == "DELETE"]


def test_on_timeout_cancel_journals_the_task_cancelled(sandbox: ThreadedSandbox) -> None:
    """A task still running at --timeout with --on-timeout cancel: one DELETE, exit 4, and both the
    record and the journal row (history, history show) say cancelled."""
    env = sandbox_env(sandbox)
    result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=30", "--via", "poll", "--timeout", "1",
                    "--on-timeout", "cancel", "--json", *FAST, env=env)
    assert result.code == 4, result.stderr
    record = one_record(result)
    assert record["status"] == "cancelled"
    assert deletes(sandbox) == [f"/api/v3/predictions/{record['id']}"]
    assert [(h["id"], h["status"]) for h in history(env)] == [(record["id"], "cancelled")]
    shown = invoke("history", "show", record["id"], "--json", env=env)
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "cancelled"


def test_ctrl_c_with_on_timeout_cancel_journals_the_task_cancelled(sandbox: ThreadedSandbox, home: Path) -> None:
    """Ctrl-C during the wait of a run with --on-timeout cancel: one DELETE, exit 130, and the record
    and the journal row say cancelled (what g3w knew when it exited)."""
    code, stdout, stderr = interrupted_run(sandbox, "--on-timeout", "cancel")
    assert code == 130, stderr
    record = json.loads(stdout)
    assert record["status"] == "cancelled"
    assert deletes(sandbox) == [f"/api/v3/predictions/{record['id']}"]
    assert journal_rows(home) == [(record["id"], "cancelled")]
    assert f"task {record['id']} was cancelled" in stderr and f"g3w get {record['id']}" in stderr
    assert "Traceback" not in stderr


# --- a submit answer that trickles forever, through g3w run ----------------------------------------

# The per-request deadline of these tests (production: HTTP_REQUEST_DEADLINE, 60 s).
SHORT_DEADLINE = 0.5
# The stand-in's pace: one byte this often, never silent long enough for a read timeout.
TRICKLE_EVERY = 0.05


def test_a_trickled_submit_answer_through_run_is_unknown_exit_6_never_resent(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider sends the submit answer's headers, then a byte now and then, forever: the POST
    ends at its deadline, the task may exist, so it is journalled `unknown`, exit 6 says not to
    resubmit blindly, and exactly one POST was sent."""
    # HTTP_REQUEST_DEADLINE is HttpSession's default: the CLI has no knob for it (none is wanted),
    # so the deadline the CLI's session gets is shortened here, in-process, as test_http.py does
    # with ``request_deadline=``.
    monkeypatch.setitem(HttpSession.__init__.__kwdefaults__, "request_deadline", SHORT_DEADLINE)
    stop = threading.Event()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(10**8))
        handler.end_headers()
        handler.wfile.write(b'{"code": 200, "data": {"id": "')
        try:
            while not stop.wait(TRICKLE_EVERY):  # the server's pace, not the test's synchronisation
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except OSError:
            pass  # g3w hung up: what the test wants
        handler.close_connection = True

    with StandIn(trickle) as provider:
        try:
            result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", "--json", *FAST, env=provider.env())
        finally:
            stop.set()
    assert result.code == 6, result.stderr
    assert result.stdout == ""
    # the words of every lost submit answer (http/failures.py), and the hint of SubmitUnknownError
    assert f"within {SHORT_DEADLINE}s" in result.stderr and "may have been received" in result.stderr
    assert "a task may exist" in result.stderr and "resubmitting blindly" in result.stderr
    assert "Traceback" not in result.stderr
    assert provider.posts == 1
    assert [status for _, status in journal_rows(home)] == ["unknown"]
