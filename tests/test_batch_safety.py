"""g3w batch never pays twice and never waits forever: one process per batch, a batch known by
its path, edited lines caught, --out never the input, per-line deadlines, stdin spools cleaned."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import ThreadedSandbox, g3w, sandbox_env, wait_until
from test_batch import FAST, batch, read_records, start_batch, submitted_prompt, write

from get3w_cli.batch.pacing import Pacer


def keyed_lines(count: int, *, duration: float = 0.05) -> list[dict[str, Any]]:
    return [{"model": "flux-dev", "input": {"prompt": f"p{i}", "sandbox_duration": duration}, "key": f"k{i}"}
            for i in range(count)]


def sent_prompts(sb: ThreadedSandbox) -> Counter[str]:
    """Prompts of every submit the provider received (its request log), answered or not."""
    return Counter(submitted_prompt(r) for r in sb.sandbox.submissions())


# --- one batch, one process -------------------------------------------------------------------


def test_a_second_process_on_a_running_batch_exits_2_naming_the_first(tmp_path: Path) -> None:
    """`--resume` while the batch runs elsewhere: exit 2 naming that process; no line sent twice."""
    source = write(tmp_path / "t.jsonl", keyed_lines(8, duration=0.6))
    with ThreadedSandbox(duration=0.6, webhook_time_scale=0.01) as sb:
        first = start_batch(sb, str(source), "-j", "2")
        wait_until(lambda: len(sb.sandbox.submissions()) >= 1)
        second = batch(sb, str(source), "--resume", "-j", "8")
        _, first_err = first.communicate(timeout=60)
        sent = sent_prompts(sb)
    assert second.code == 2, second.stderr
    assert f"is running in process {first.pid}" in second.stderr and second.stdout == ""
    assert first.returncode == 0, first_err
    assert sorted(sent) == [f"p{i}" for i in range(8)] and set(sent.values()) == {1}


def test_two_plain_runs_started_together_submit_each_line_once(tmp_path: Path) -> None:
    """Two runs racing the "already ran" check: one runs, the other exits 2; the log has each line once."""
    source = write(tmp_path / "t.jsonl", keyed_lines(6, duration=0.3))
    with ThreadedSandbox(duration=0.3, webhook_time_scale=0.01) as sb:
        runs = [start_batch(sb, str(source), "-j", "2") for _ in range(2)]
        results = [(run.returncode, err) for run in runs for _, err in [run.communicate(timeout=60)]]
        sent = sent_prompts(sb)
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is running in process" in refused or "already ran" in refused
    assert len(sent) == 6 and set(sent.values()) == {1}


# --- a batch known by its path; edited lines --------------------------------------------------------


def test_an_edited_line_is_listed_and_only_it_is_resubmitted_when_asked(tmp_path: Path,
                                                                         sandbox: ThreadedSandbox) -> None:
    """Editing one line of a keyed file keeps the batch (known by its path): a plain run is
    refused, --resume lists the changed line and exits 2 sending nothing, --resubmit-changed
    sends it (and a new key) as new tasks and re-emits the rest."""
    lines = keyed_lines(4)
    source = write(tmp_path / "t.jsonl", lines)
    assert batch(sandbox, str(source)).code == 0
    lines[1]["input"]["prompt"] = "p1 edited"
    write(source, [*lines, {"model": "flux-dev", "input": {"prompt": "p4"}, "key": "k4"}])
    again = batch(sandbox, str(source))
    assert again.code == 2 and "already ran" in again.stderr
    resumed = batch(sandbox, str(source), "--resume")
    assert resumed.code == 2, resumed.stderr
    assert "line 2 (key k1): changed since it was submitted" in resumed.stderr
    assert "--resubmit-changed" in resumed.stderr
    assert len(sandbox.sandbox.submissions()) == 4 and resumed.stdout == ""
    forced = batch(sandbox, str(source), "--resume", "--resubmit-changed")
    assert forced.code == 0, forced.stderr
    assert "line 2 (key k1): submitting it again as a new task" in forced.stderr
    assert sent_prompts(sandbox) == Counter({"p0": 1, "p1": 1, "p2": 1, "p3": 1, "p1 edited": 1, "p4": 1})
    records = {r["key"]: r for r in read_records(forced.stdout)}
    assert sorted(records) == ["k0", "k1", "k2", "k3", "k4"]
    assert records["k1"]["input"]["prompt"] == "p1 edited" and records["k1"]["status"] == "completed"


def test_unkeyed_lines_shifted_by_an_insertion_are_caught(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Lines without keys are matched by number: a line inserted above them changes them all."""
    lines = [{"model": "flux-dev", "input": {"prompt": f"u{i}"}} for i in range(3)]
    source = write(tmp_path / "t.jsonl", lines)
    assert batch(sandbox, str(source)).code == 0
    write(source, [{"model": "flux-dev", "input": {"prompt": "new"}}, *lines])
    resumed = batch(sandbox, str(source), "--resume")
    assert resumed.code == 2
    assert all(f"line {n}: changed" in resumed.stderr for n in (1, 2, 3)) and "line 4" not in resumed.stderr
    assert len(sandbox.sandbox.submissions()) == 3


# --- --out -------------------------------------------------------------------------------------------------


def test_out_naming_a_file_the_batch_reads_is_refused_before_anything_happens(
        tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """--out = the input (however spelt, or a hard link to it) or the journal: exit 2, the file
    untouched, nothing sent."""
    source = write(tmp_path / "jobs.jsonl", keyed_lines(2))
    before = source.read_bytes()
    os.link(source, tmp_path / "link.jsonl")
    journal = Path(os.environ["G3W_HOME"]) / "history.db"
    for out in (str(source), str(tmp_path / "." / "jobs.jsonl"), str(tmp_path / "link.jsonl"), str(journal)):
        result = batch(sandbox, str(source), "--out", out)
        assert result.code == 2, (out, result.stderr)
        assert f"--out {out} is the" in result.stderr
    assert source.read_bytes() == before and sandbox.sandbox.submissions() == []


# --- no line waits forever ----------------------------------------------------------------------------


def test_a_storm_of_429s_ends_each_line_rate_limited_at_its_timeout(tmp_path: Path,
                                                                    sandbox: ThreadedSandbox) -> None:
    """Every submit answered 429: with --timeout 2 each line ends `rate_limited` (exit 9) instead
    of retrying for ever; nothing was created, so --resume submits them once the storm is over."""
    source = write(tmp_path / "t.jsonl", keyed_lines(3))
    sandbox.sandbox.inject(status=429, count=1_000_000, method="POST", path_prefix="/api/v3/", retry_after=0.2)
    started = time.monotonic()
    stormed = batch(sandbox, str(source), "--timeout", "2", "-j", "2")
    assert time.monotonic() - started < 50  # did not hang
    assert stormed.code == 9, stormed.stderr
    records = read_records(stormed.stdout)
    assert sorted(r["key"] for r in records) == ["k0", "k1", "k2"]
    assert all(r["error"]["code"] == "rate_limited" and r["id"] is None and r["status"] == "failed"
               for r in records)
    assert "--timeout (2s)" in records[0]["error"]["message"]
    assert len(sandbox.sandbox.submissions()) > 3  # they were retried, each answered 429
    urllib.request.urlopen(urllib.request.Request(f"{sandbox.base_url}/_sandbox/reset", method="POST"), timeout=10)
    resumed = batch(sandbox, str(source), "--resume")
    assert resumed.code == 0, resumed.stderr
    assert sent_prompts(sandbox) == Counter({"p0": 1, "p1": 1, "p2": 1})


def test_the_pacer_gives_up_at_the_deadline() -> None:
    """acquire(deadline) returns None when a Retry-After pause, or a full set of slots, outlasts it."""
    async def main() -> None:
        pacer = Pacer(1)
        epoch = await pacer.acquire()
        assert epoch == 0
        assert await pacer.acquire(time.monotonic() + 0.05) is None  # the one slot is held
        pacer.release()
        pacer.throttled(epoch, 30.0)
        assert await pacer.acquire(time.monotonic() + 0.05) is None  # paused for 30 s
        assert await pacer.acquire(time.monotonic() - 1) is None  # already past

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 10  # not the 30 s pause


# --- stdin spools --------------------------------------------------------------------------------------


def test_the_stdin_spool_of_a_killed_batch_is_removed_by_the_next(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """kill -9 leaves `batch -`'s spool (named with its pid); the next `batch -` removes it and
    leaves a live process's spool alone."""
    spools = tmp_path / "tmp"
    spools.mkdir()
    env = {**os.environ, **sandbox_env(sandbox), "TMPDIR": str(spools)}
    slow = "".join(json.dumps(line) + "\n" for line in keyed_lines(2, duration=30))
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "batch", "-", "--name", "slow", *FAST], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None
    proc.stdin.write(slow)
    proc.stdin.close()
    wait_until(lambda: len(sandbox.sandbox.submissions()) >= 1)  # spooled, checked, submitting
    left = list(spools.glob("g3w-batch-*.jsonl"))
    assert [p.name.split("-")[2] for p in left] == [str(proc.pid)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert left[0].exists()
    live = spools / f"g3w-batch-{os.getpid()}-keep.jsonl"
    live.write_text("")
    quick = "".join(json.dumps(line) + "\n" for line in keyed_lines(1))
    # A process of its own: TMPDIR is read once per process (tempfile caches it).
    result = g3w("batch", "-", "--name", "quick", *FAST, env={"TMPDIR": str(spools), **sandbox_env(sandbox)},
                 input=quick)
    assert result.code == 0, result.stderr
    assert not left[0].exists()
    assert list(spools.glob("g3w-batch-*")) == [live]  # its own spool went too, at its end
