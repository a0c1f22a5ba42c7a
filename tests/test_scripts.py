"""g3w in shell scripts (issue #12): prompts and config values from stdin (a real pipe, a real
terminal), -o checked before anything is paid for, no outputs is exit 1, run --no-wait, and
wait for several tasks at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSandbox, g3w, sandbox_env
from inproc import invoke

from get3w_cli.config import read_config

FAST = ("--via", "poll", "--poll-max", "0.2")


def submitted_prompts(sb: ThreadedSandbox) -> list[Any]:
    return [json.loads(r.body).get("prompt") for r in sb.sandbox.submissions()]


# --- the prompt from stdin or a file -------------------------------------------------------------


def test_prompt_from_a_real_pipe(sandbox: ThreadedSandbox) -> None:
    """`echo ... | g3w submit -p -`: the prompt is stdin's text without its trailing newline."""
    result = g3w("submit", "flux-dev", "-p", "-", input="a lighthouse\nat dusk\n", env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert submitted_prompts(sandbox) == ["a lighthouse\nat dusk"]


def test_prompt_file(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("a fox in the snow, 35mm\n\n", encoding="utf-8")
    result = invoke("run", "flux-dev", "--prompt-file", str(prompt), *FAST, env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert submitted_prompts(sandbox) == ["a fox in the snow, 35mm"]


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("--prompt-file", "{missing}"), None, "cannot read the prompt"),
    (("-p", "x", "--prompt-file", "{file}"), None, "not both"),
    (("-p", "-"), "\n\n", "is empty"),
    (("-p", "-", "--input", "-"), '{"seed": 1}', "cannot both be read from stdin"),
])
def test_bad_prompt_sources_exit_2_sending_nothing(sandbox: ThreadedSandbox, tmp_path: Path, args: tuple[str, ...],
                                                   stdin: str | None, message: str) -> None:
    file = tmp_path / "p.txt"
    file.write_text("x")
    names = {"missing": str(tmp_path / "nope.txt"), "file": str(file)}
    result = invoke("run", "flux-dev", *(a.format(**names) for a in args), *FAST, input=stdin,
                    env=sandbox_env(sandbox))
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert sandbox.sandbox.requests == []


# --- config set KEY - ----------------------------------------------------------------------------


def test_config_set_reads_the_value_from_a_pipe(tmp_path: Path) -> None:
    result = g3w("config", "set", "get3w.api_key", "-", input="sk_from_stdin_123\n")
    assert result.code == 0, result.stderr
    path = tmp_path / "home" / ".config" / "g3w" / "config.toml"
    assert read_config(path) == {"get3w.api_key": "sk_from_stdin_123"}
    assert "sk_from_stdin_123" not in result.stdout + result.stderr
    empty = g3w("config", "set", "get3w.api_key", "-", input="\n")
    assert empty.code == 2 and "no value" in empty.stderr


# The child, leader of a new session, makes the pty on its stdin its controlling terminal (as a
# login shell's is), then becomes g3w: getpass reads /dev/tty.
ON_OWN_TERMINAL = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                   "os.execv(sys.executable, [sys.executable, '-m', 'get3w_cli', *sys.argv[1:]])")


def test_config_set_on_a_terminal_asks_without_echo(tmp_path: Path) -> None:
    """On a terminal, `config set KEY -` asks with a hidden prompt: what is typed is stored and
    never shown."""
    master, terminal = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", ON_OWN_TERMINAL, "config", "set", "abstrakt.api_key", "-"],
                            stdin=terminal, stdout=subprocess.DEVNULL, stderr=terminal, start_new_session=True,
                            env={**os.environ, "TERM": "xterm"})
    os.close(terminal)
    shown: list[bytes] = []
    prompted = threading.Event()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                return
            if not chunk:
                return
            shown.append(chunk)
            if b"abstrakt.api_key: " in b"".join(shown):
                prompted.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert prompted.wait(30), b"".join(shown)
        os.write(master, b"sk_typed_secret_9\n")
        assert proc.wait(30) == 0
    finally:
        reader.join(10)
        os.close(master)
    path = tmp_path / "home" / ".config" / "g3w" / "config.toml"
    assert read_config(path) == {"abstrakt.api_key": "sk_typed_secret_9"}
    assert b"sk_typed_secret_9" not in b"".join(shown)


# --- -o checked before anything is paid for ------------------------------------------------------


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_dir_that_cannot_be_used_exits_2_before_the_submit(sandbox: ThreadedSandbox, tmp_path: Path,
                                                                     where: str) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("")
    target = blocker if where == "a file" else blocker / "out"
    for command in (("run", "flux-dev", "-p", "x", *FAST), ("batch", "-", "--via", "poll")):
        stdin = '{"model": "flux-dev", "input": {"prompt": "x"}}\n' if command[0] == "batch" else None
        result = invoke(*command, "-o", str(target), input=stdin, env=sandbox_env(sandbox))
        assert result.code == 2, result.stderr
        assert f"-o {target}" in result.stderr
    assert sandbox.sandbox.requests == []


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_wait_with_an_output_dir_that_cannot_be_used_exits_2_asking_nothing(sandbox: ThreadedSandbox,
                                                                              tmp_path: Path, where: str) -> None:
    """wait ID -o BAD: exit 2 naming -o, before the task is even looked up (nothing fetched)."""
    task_id = _submit(sandbox)
    before = len(sandbox.sandbox.requests)
    blocker = tmp_path / "taken"
    blocker.write_text("")
    target = blocker if where == "a file" else blocker / "out"
    result = invoke("wait", task_id, "-o", str(target), *FAST, env=sandbox_env(sandbox))
    assert result.code == 2, result.stderr
    assert f"-o {target}" in result.stderr and result.stdout == ""
    assert len(sandbox.sandbox.requests) == before
    assert blocker.read_text() == ""


def test_a_missing_output_dir_is_created_first(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    result = invoke("run", "flux-dev", "-p", "x", "-o", str(target), *FAST, env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert [p.parent for p in map(Path, result.stdout.split())] == [target]


# --- a task completed without outputs --------------------------------------------------------------


def test_no_outputs_is_exit_1_for_run_wait_and_get(sandbox: ThreadedSandbox) -> None:
    """Completed with no outputs (a safety filter): exit 1, error.code no_outputs, status completed."""
    env = sandbox_env(sandbox)
    args = ("flux-dev", "-p", "x", "-i", "sandbox_outputs=0")
    ran = invoke("run", *args, *FAST, "--json", env=env)
    task_id = invoke("submit", *args, env=env).stdout.strip()
    waited = invoke("wait", task_id, "--poll-max", "0.2", "--json", env=env)
    got = invoke("get", task_id, "--json", env=env)
    for result in (ran, waited, got):
        assert result.code == 1, result.stderr
        record = json.loads(result.stdout)
        assert (record["status"], record["outputs"], record["error"]["code"]) == ("completed", [], "no_outputs")
        assert "no outputs" in result.stderr
    history = [json.loads(line) for line in invoke("history", "--json", env=env).stdout.splitlines()]
    assert {h["error"]["code"] for h in history} == {"no_outputs"}


def test_a_batch_line_completed_without_outputs_did_not_complete(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """In a batch the same: the line's record keeps status completed with error.code no_outputs, it
    counts as not completed (exit 9, its key named), and it has no files."""
    lines = tmp_path / "jobs.jsonl"
    lines.write_text(json.dumps({"key": "empty", "model": "flux-dev",
                                 "input": {"prompt": "x", "sandbox_outputs": 0, "sandbox_duration": 0.05}}) + "\n"
                     + json.dumps({"key": "fine", "model": "flux-dev",
                                   "input": {"prompt": "y", "sandbox_duration": 0.05}}) + "\n")
    result = invoke("batch", str(lines), "-o", str(tmp_path / "out"), *FAST, env=sandbox_env(sandbox))
    assert result.code == 9, result.stderr
    records = {r["key"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert (records["empty"]["status"], records["empty"]["error"]["code"]) == ("completed", "no_outputs")
    assert not records["empty"].get("files") and records["fine"]["error"] is None
    assert "did not complete: empty" in result.stderr


# --- run --no-wait -----------------------------------------------------------------------------------


def test_run_no_wait_is_submit(sandbox: ThreadedSandbox) -> None:
    env = sandbox_env(sandbox)
    plain = invoke("run", "flux-dev", "-p", "x", "--no-wait", env=env)
    assert plain.code == 0, plain.stderr
    assert plain.stdout.strip().startswith("pred_") and plain.stdout.count("\n") == 1
    as_json = invoke("run", "flux-dev", "-p", "x", "--no-wait", "--json", env=env)
    submitted = invoke("submit", "flux-dev", "-p", "x", "--json", env=env)
    assert list(json.loads(as_json.stdout)) == list(json.loads(submitted.stdout))
    assert json.loads(as_json.stdout)["status"] == "created"
    assert len(sandbox.sandbox.submissions()) == 3
    # nothing waited for (the one GET allowed is the daily model list, for the inputs check)
    assert not [r for r in sandbox.sandbox.requests if r.path.startswith("/api/v3/predictions/")]
    refused = invoke("run", "flux-dev", "-p", "x", "--no-wait", "-o", "out", env=env)
    assert refused.code == 2 and "--no-wait" in refused.stderr


# --- wait ID ID ... -----------------------------------------------------------------------------------


def _submit(sb: ThreadedSandbox, *inputs: str) -> str:
    result = invoke("submit", "flux-dev", "-p", "x", *(a for i in inputs for a in ("-i", i)), env=sandbox_env(sb))
    assert result.code == 0
    return result.stdout.strip()


def test_wait_for_several_prints_each_record_in_order(sandbox: ThreadedSandbox) -> None:
    """One JSON record a line, in the arguments' order; the exit code is the worst one's (1 here)."""
    slow = _submit(sandbox, "sandbox_duration=0.4")
    failing = _submit(sandbox, "sandbox_fail=true")
    quick = _submit(sandbox, "sandbox_duration=0")
    result = invoke("wait", slow, failing, quick, slow, "--poll-max", "0.2", "--json", env=sandbox_env(sandbox))
    assert result.code == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["status"]) for r in records] == [(slow, "completed"), (failing, "failed"),
                                                         (quick, "completed")]
    assert f"task {failing} failed" in result.stderr
    plain = invoke("wait", quick, slow, env=sandbox_env(sandbox))
    assert plain.code == 0
    assert len(plain.stdout.splitlines()) == 2 and all(u.startswith("http") for u in plain.stdout.split())


def test_wait_for_several_exits_with_the_worst_code(sandbox: ThreadedSandbox) -> None:
    """A timeout (4) is worse than a failed task (1); every error is said."""
    failing = _submit(sandbox, "sandbox_fail=true")
    slow = _submit(sandbox, "sandbox_duration=60")
    result = invoke("wait", failing, slow, "--timeout", "1", "--poll-max", "0.2", "--json", env=sandbox_env(sandbox))
    assert result.code == 4, result.stderr
    assert f"task {failing} failed" in result.stderr and f"timed out waiting for task {slow}" in result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [failing, slow]
