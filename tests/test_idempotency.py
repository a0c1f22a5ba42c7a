"""Idempotent re-runs (CONTRACT.md section 11, issue #12): a retried CI step never pays again.

Against the sandbox's request log: two runs with one key send one POST (which carries the key
as ``Idempotency-Key``); the second run prints, downloads again or waits for the first's task.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli.journal import Journal

FAST = ("--via", "poll", "--poll-max", "0.2")


def run_json(sb: ThreadedSandbox, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    result = invoke("run", "flux-dev", *args, *FAST, "--json", env={**sandbox_env(sb), **(env or {})})
    return result.code, json.loads(result.stdout) if result.stdout.strip() else {}, result.stderr


def test_same_key_and_request_submits_once_and_prints_the_record_again(sandbox: ThreadedSandbox) -> None:
    """Run twice with one key: one POST (with the Idempotency-Key header); the second run prints the
    first's record (same id, same elapsed time) and says that nothing was submitted."""
    code, first, _ = run_json(sandbox, "-p", "a cat", "--idempotency-key", "ci-step-42")
    assert code == 0
    code, second, stderr = run_json(sandbox, "-p", "a cat", "--idempotency-key", "ci-step-42")
    assert code == 0, stderr
    [post] = sandbox.sandbox.submissions()
    assert post.headers["Idempotency-Key"] == "ci-step-42"
    assert second["id"] == first["id"] and second["status"] == "completed"
    assert second["elapsed_s"] == first["elapsed_s"] and second["outputs"] == first["outputs"]
    assert "nothing submitted" in stderr


def test_the_key_goes_only_with_the_submit(sandbox: ThreadedSandbox) -> None:
    """The header is on the POST, not on the polls."""
    code, _, _ = run_json(sandbox, "-p", "a cat", "-i", "sandbox_duration=0.3", "--idempotency-key", "k")
    assert code == 0
    gets = [r for r in sandbox.sandbox.requests if r.method == "GET" and r.path.startswith("/api/v3/predictions/")]
    assert gets
    assert all("Idempotency-Key" not in r.headers for r in gets)


def test_the_key_from_the_environment_and_outputs_downloaded_again(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    """G3W_IDEMPOTENCY_KEY works like the flag; -o on the second run downloads the outputs again."""
    env = {"G3W_IDEMPOTENCY_KEY": "nightly-1"}
    code, first, _ = run_json(sandbox, "-p", "a cat", "-o", str(tmp_path / "first"), env=env)
    assert code == 0
    code, second, stderr = run_json(sandbox, "-p", "a cat", "-o", str(tmp_path / "again"), env=env)
    assert code == 0, stderr
    assert len(sandbox.sandbox.submissions()) == 1
    assert second["id"] == first["id"]
    [file] = second["files"]
    assert Path(file).parent == tmp_path / "again"
    assert Path(file).read_bytes() == Path(first["files"][0]).read_bytes()


def test_same_key_with_another_request_exits_2_sending_nothing(sandbox: ThreadedSandbox) -> None:
    code, _, _ = run_json(sandbox, "-p", "a cat", "--idempotency-key", "k1")
    assert code == 0
    before = len(sandbox.sandbox.requests)
    for other in (("-p", "a dog"), ("-p", "a cat", "-i", "seed=2")):
        result = invoke("run", "flux-dev", *other, *FAST, "--idempotency-key", "k1", env=sandbox_env(sandbox))
        assert result.code == 2, result.stderr
        assert "was used for another request" in result.stderr and result.stdout == ""
    result = invoke("run", "abstrakt:flux-dev", "-p", "a cat", *FAST, "--idempotency-key", "k1",
                    env=sandbox_env(sandbox))
    assert result.code == 2
    assert len(sandbox.sandbox.requests) == before


def test_an_unfinished_task_is_waited_for_not_submitted_again(sandbox: ThreadedSandbox) -> None:
    """submit with a key, then run with it: the run polls the submitted task to its end."""
    args = ("flux-dev", "-p", "a cat", "-i", "sandbox_duration=0.5", "--idempotency-key", "k2")
    submitted = invoke("submit", *args, env=sandbox_env(sandbox))
    assert submitted.code == 0
    task_id = submitted.stdout.strip()
    result = invoke("run", *args, *FAST, "--json", env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["id"], record["status"]) == (task_id, "completed")
    assert len(sandbox.sandbox.submissions()) == 1


def test_submit_twice_prints_the_same_id(sandbox: ThreadedSandbox) -> None:
    ids = []
    for _ in range(2):
        result = invoke("submit", "flux-dev", "-p", "x", "--idempotency-key", "k3", env=sandbox_env(sandbox))
        assert result.code == 0, result.stderr
        ids.append(result.stdout)
    assert ids[0] == ids[1] and ids[0].startswith("pred_")
    assert len(sandbox.sandbox.submissions()) == 1


def test_run_no_wait_twice_with_one_key_submits_once(sandbox: ThreadedSandbox) -> None:
    """run --no-wait with a key, twice: one POST (with the header), the same id printed, and the
    second run says nothing was submitted and waits for nothing."""
    ids, stderrs = [], []
    for _ in range(2):
        result = invoke("run", "flux-dev", "-p", "x", "--no-wait", "--idempotency-key", "nw-1",
                        env=sandbox_env(sandbox))
        assert result.code == 0, result.stderr
        ids.append(result.stdout)
        stderrs.append(result.stderr)
    assert ids[0] == ids[1] and ids[0].startswith("pred_")
    [post] = sandbox.sandbox.submissions()
    assert post.headers["Idempotency-Key"] == "nw-1"
    assert "nothing submitted" in stderrs[1] and "nothing submitted" not in stderrs[0]
    assert not [r for r in sandbox.sandbox.requests if r.path.startswith("/api/v3/predictions/")]


def test_a_lost_answer_exits_6_until_resubmit_unknown(sandbox: ThreadedSandbox) -> None:
    """The first submit's answer is lost (journalled unknown, exit 6); the same key again sends
    nothing and exits 6; with --resubmit-unknown it submits (once) and completes."""
    sandbox.sandbox.inject(status=200, body=b"not json", method="POST", path_prefix="/api/v3/get3w")
    code, _, _ = run_json(sandbox, "-p", "a cat", "--idempotency-key", "k4")
    assert code == 6
    code, _, stderr = run_json(sandbox, "-p", "a cat", "--idempotency-key", "k4")
    assert code == 6
    assert "may exist" in stderr and "--resubmit-unknown" in stderr
    assert len(sandbox.sandbox.submissions()) == 1
    code, record, stderr = run_json(sandbox, "-p", "a cat", "--idempotency-key", "k4", "--resubmit-unknown")
    assert code == 0, stderr
    assert record["status"] == "completed"
    assert len(sandbox.sandbox.submissions()) == 2
    code, again, _ = run_json(sandbox, "-p", "a cat", "--idempotency-key", "k4")  # the new task is the key's now
    assert (code, again["id"]) == (0, record["id"])
    assert len(sandbox.sandbox.submissions()) == 2


def test_a_failed_task_is_reported_again_with_exit_1(sandbox: ThreadedSandbox) -> None:
    code, first, _ = run_json(sandbox, "-p", "x", "-i", "sandbox_fail=true", "--idempotency-key", "k5")
    assert code == 1
    code, second, _ = run_json(sandbox, "-p", "x", "-i", "sandbox_fail=true", "--idempotency-key", "k5")
    assert (code, second["id"], second["status"]) == (1, first["id"], "failed")
    assert len(sandbox.sandbox.submissions()) == 1


def test_a_file_input_counts_by_its_content(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    """-i image=@FILE: the same content is the same request (not uploaded again); changed content is another."""
    image = tmp_path / "photo.png"
    image.write_bytes(b"first")
    args = ("-p", "x", "-i", f"image_url=@{image}", "--idempotency-key", "k6")
    assert run_json(sandbox, *args)[0] == 0
    assert run_json(sandbox, *args)[0] == 0
    uploads = [r for r in sandbox.sandbox.requests if r.path == "/api/v3/files/upload"]
    assert len(uploads) == 1 and len(sandbox.sandbox.submissions()) == 1
    image.write_bytes(b"second")
    assert run_json(sandbox, *args)[0] == 2
    assert len([r for r in sandbox.sandbox.requests if r.method == "POST"]) == 2


@pytest.mark.parametrize("args", [
    ("--idempotency-key", "k", "--no-history"),
    ("--idempotency-key", "line\nbreak"),
    ("--idempotency-key", "clé"),
    ("--idempotency-key", "k" * 256),
    ("--resubmit-unknown",),
])
def test_bad_keys_are_usage_errors(sandbox: ThreadedSandbox, args: tuple[str, ...]) -> None:
    result = invoke("run", "flux-dev", "-p", "x", *FAST, *args, env=sandbox_env(sandbox))
    assert result.code == 2, result.stderr
    assert sandbox.sandbox.requests == []


def test_two_runs_with_one_key_cannot_both_journal_a_submit() -> None:
    """The journal writes a keyed row only while the key's newest row is the one the run looked at:
    a second run that looked before the first wrote gets None (and exits 6 without sending)."""
    journal = Journal(Path(os.environ["G3W_HOME"]) / "history.db")
    row = {"provider": "get3w", "api": "v3", "model": "get3w/flux-dev", "base_url": "http://x", "input": {},
           "idempotency_key": "k", "request_hash": "h"}
    first = journal.task_submitting_keyed(expected_ref=None, **row)
    assert first is not None
    assert journal.task_submitting_keyed(expected_ref=None, **row) is None
    second = journal.task_submitting_keyed(expected_ref=first, **row)  # --resubmit-unknown after `first`
    assert second is not None
    found = journal.find_by_idempotency_key("k")
    assert found is not None and found.ref == second
    journal.close()


def test_a_submit_in_flight_elsewhere_is_not_sent_again(sandbox: ThreadedSandbox) -> None:
    """A `submitting` row with the key (another process is sending it, or was killed doing so):
    exit 6, nothing sent."""
    from get3w_cli.journal import request_hash

    journal = Journal(Path(os.environ["G3W_HOME"]) / "history.db")
    digest = request_hash("get3w", "v3", "get3w/flux-dev", {"prompt": "x"})
    journal.task_submitting(provider="get3w", api="v3", model="get3w/flux-dev", base_url=sandbox.base_url,
                            input={"prompt": "x"}, idempotency_key="k7", request_hash=digest)
    journal.close()
    code, _, stderr = run_json(sandbox, "-p", "x", "--idempotency-key", "k7")
    assert code == 6
    assert "still going" in stderr
    assert sandbox.sandbox.requests == []
