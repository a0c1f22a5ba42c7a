"""g3w batch: many mixed tasks against the sandbox, 429s, kill -9 and --resume, Ctrl-C, bad lines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, ThreadedSandbox, g3w_on_terminal, run_in_virtual_time, sandbox_env, wait_until
from inproc import invoke

from get3w_cli.batch.ledger import Ledger
from get3w_cli.batch.lines import BatchLine, LineDefaults, check_file, spool, valid_lines
from get3w_cli.batch.pacing import Pacer
from get3w_cli.batch.report import Stats
from get3w_cli.batch.runner import BatchConfig, BatchRunner, Connection
from get3w_cli.journal import Journal
from get3w_cli.providers import resolve_route
from get3w_cli.records import Status, Task
from get3w_cli.waiting import WaitPlan

MODELS = ("flux-dev", "google/nano-banana-pro/text-to-image", "abstrakt:fal-ai/flux/schnell")
FAST = ("--poll-max", "0.2")


def make_lines(count: int, *, duration: float | Callable[[int], float] = 0.05, fail_every: int = 0,
               models: tuple[str, ...] = MODELS, keyed: bool = True) -> list[dict[str, Any]]:
    """``count`` lines cycling through ``models``; even lines keyed ``k<i>`` (odd ones use their number)."""
    lines = []
    for i in range(count):
        value = duration(i) if callable(duration) else duration
        line: dict[str, Any] = {"model": models[i % len(models)],
                                "input": {"prompt": f"prompt {i}", "sandbox_duration": value}}
        if fail_every and i % fail_every == fail_every - 1:
            line["input"]["sandbox_fail"] = True
        if keyed and i % 2 == 0:
            line["key"] = f"k{i}"
        lines.append(line)
    return lines


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def expected_key(index: int, line: dict[str, Any]) -> str | int:
    return line.get("key", index + 1)


def read_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(row) for row in text.splitlines() if row.strip()]


def batch(sb: ThreadedSandbox, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return invoke("batch", *args, *FAST, env={**sandbox_env(sb), **(env or {})}, input=input)


def accepted_prompts(sb: ThreadedSandbox) -> Counter[str]:
    """Prompts of the tasks the sandbox created (a submit answered 429 created nothing)."""
    tasks = list(sb.sandbox._runtime.store.tasks.values())
    return Counter(task.input["prompt"] for task in tasks)


def submitted_prompt(request: Any) -> str:
    """The prompt of a logged submit, whatever the API's body shape."""
    body = json.loads(request.body)
    return (body.get("input") or body)["prompt"]


def start_batch(sb: ThreadedSandbox, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **sandbox_env(sb)}
    return subprocess.Popen([sys.executable, "-m", "get3w_cli", "batch", *args, *FAST], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)



# --- end to end ------------------------------------------------------------------------------


def test_mixed_batch_writes_every_line_once_and_exits_9_on_failures(tmp_path: Path) -> None:
    """120 lines over Get3W v3, v1 and Abstrakt, some failing: one record each, with its key; exit 9."""
    lines = make_lines(120, duration=lambda i: (i % 5) * 0.05, fail_every=10)
    source, out = write(tmp_path / "tasks.jsonl", lines), tmp_path / "out.jsonl"
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = batch(sb, str(source), "-j", "16", "--out", str(out))
        submits = len(sb.sandbox.submissions())
    assert result.code == 9, result.stderr
    assert result.stdout == ""
    records = read_records(out.read_text())
    expected = sorted(str(expected_key(i, text)) for i, text in enumerate(lines))
    assert sorted(map(str, (r["key"] for r in records))) == expected
    by_key = {r["key"]: r for r in records}
    for i, line in enumerate(lines):
        record = by_key[expected_key(i, line)]
        assert record["input"] == line["input"]
        assert record["status"] == ("failed" if line["input"].get("sandbox_fail") else "completed")
        assert record["via"] == "webhook"
    assert {r["provider"] + " " + r["api"] for r in records} == {"get3w v3", "get3w v1", "abstrakt v1"}
    assert submits == 120
    assert "12 of 120 lines did not complete" in result.stderr


def test_batch_with_every_task_completed_exits_0(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """No failure: exit 0, records on stdout in completion order, a summary on stderr."""
    lines = make_lines(12)
    result = batch(sandbox, str(write(tmp_path / "t.jsonl", lines)), "-j", "4")
    assert result.code == 0, result.stderr
    records = read_records(result.stdout)
    assert len(records) == 12 and all(r["status"] == "completed" and r["outputs"] for r in records)
    assert "12 of 12 lines: 12 completed" in result.stderr


def test_429s_lower_the_pace_and_fail_no_line(tmp_path: Path) -> None:
    """max_concurrent 4 against -j 16: 429s are retried after Retry-After; every line completes once."""
    lines = make_lines(40, models=("abstrakt:fal-ai/flux/schnell",), duration=0.1)
    with ThreadedSandbox(duration=0.1, webhook_time_scale=0.01, max_concurrent=4, retry_after=0.05) as sb:
        result = batch(sb, str(write(tmp_path / "t.jsonl", lines)), "-j", "16")
        submits = [submitted_prompt(r) for r in sb.sandbox.submissions()]
        accepted = accepted_prompts(sb)
    assert result.code == 0, result.stderr
    records = read_records(result.stdout)
    assert len(records) == 40 and all(r["status"] == "completed" for r in records)
    assert set(accepted.values()) == {1} and len(accepted) == 40
    throttled = len(submits) - 40
    assert throttled > 0  # 429s did happen, and each was simply sent again
    assert f"{throttled} rate-limited submits retried" in result.stderr
    assert "rate limiting (HTTP 429)" in result.stderr


def test_kill_9_then_resume_pays_no_line_twice(tmp_path: Path) -> None:
    """SIGKILL mid-batch, then --resume: no prompt accepted twice, every line in the output once."""
    lines = make_lines(100, duration=0.3)
    source, out = write(tmp_path / "t.jsonl", lines), tmp_path / "out.jsonl"
    with ThreadedSandbox(duration=0.3, webhook_time_scale=0.01) as sb:
        proc = start_batch(sb, str(source), "-j", "16", "--out", str(out))
        wait_until(lambda: len(sb.sandbox.submissions()) >= 30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        before = len(sb.sandbox.submissions())
        assert before < 100
        result = batch(sb, str(source), "-j", "16", "--out", str(out), "--resume")
        accepted = accepted_prompts(sb)
        sent = Counter(submitted_prompt(r) for r in sb.sandbox.submissions())
    assert max(sent.values()) == 1, [p for p, n in sent.items() if n > 1]  # the provider's request log
    assert max(accepted.values()) == 1
    records = read_records(out.read_text())
    expected = sorted(str(expected_key(i, text)) for i, text in enumerate(lines))
    assert sorted(map(str, (r["key"] for r in records))) == expected
    unknown = [r for r in records if r["status"] == "unknown"]
    assert all(r["status"] == "completed" for r in records if r not in unknown)
    assert all(r["error"]["code"] == "submit_unknown" for r in unknown)
    assert result.code == (9 if unknown else 0), result.stderr
    # Every prompt the provider never saw was submitted by the resume; unknown ones were not resent.
    assert len(accepted) + sum(1 for r in unknown if r["input"]["prompt"] not in accepted) == 100


def test_ctrl_c_stops_exits_130_and_prints_the_resume_command(tmp_path: Path) -> None:
    """SIGINT: exit 130 with `g3w batch FILE --resume --name N`; the resume finishes the rest."""
    lines = make_lines(30, duration=1.0)
    source = write(tmp_path / "t.jsonl", lines)
    with ThreadedSandbox(duration=1.0, webhook_time_scale=0.01) as sb:
        proc = start_batch(sb, str(source), "-j", "4", "--name", "night-run")
        wait_until(lambda: len(sb.sandbox.submissions()) >= 4)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130, stderr
        assert f"g3w batch {source} --resume --name night-run" in stderr
        sent = len(sb.sandbox.submissions())
        assert sent < 30
        result = batch(sb, str(source), "-j", "16", "--name", "night-run", "--resume")
        accepted = accepted_prompts(sb)
    assert result.code == 0, result.stderr
    assert len(read_records(result.stdout)) == 30
    assert len(accepted) == 30 and set(accepted.values()) == {1}


def test_webhook_mode_uses_one_listener_for_the_whole_batch(tmp_path: Path) -> None:
    """--via webhook: every task registers the same callback URL and finishes via webhook."""
    lines = make_lines(24)
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = batch(sb, str(write(tmp_path / "t.jsonl", lines)), "-j", "8", "--via", "webhook")
        urls = {d.url for d in sb.sandbox.deliveries}
    assert result.code == 0, result.stderr
    assert all(r["via"] == "webhook" for r in read_records(result.stdout))
    assert len(urls) == 1
    assert result.stderr.count("listening for callbacks") == 1


def test_invalid_lines_are_listed_and_nothing_is_sent(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Bad lines: exit 2, each listed with its line number; the sandbox saw no submit."""
    text = "\n".join([
        json.dumps({"model": "flux-dev", "input": {"prompt": "ok"}, "key": "a"}),
        "{not json",
        "",
        json.dumps(["a list"]),
        json.dumps({"input": {"prompt": "no model"}}),
        json.dumps({"model": "flux-dev", "input": "a string"}),
        json.dumps({"model": "nope:flux-dev", "input": {}}),
        json.dumps({"model": "flux-dev", "input": {"prompt": "dup"}, "key": "a"}),
        json.dumps({"model": "flux-dev", "input": {}, "prompt": "typo"}),
        json.dumps({"model": "flux-dev", "input": {}, "key": 7}),
    ]) + "\n"
    result = batch(sandbox, str(write_text(tmp_path / "bad.jsonl", text)))
    assert result.code == 2
    for number in (2, 4, 5, 6, 7, 8, 9, 10):
        assert f"line {number}: " in result.stderr
    assert "line 1:" not in result.stderr and "line 3:" not in result.stderr
    assert "already used on line 1" in result.stderr
    assert "8 invalid line(s)" in result.stderr
    assert sandbox.sandbox.submissions() == [] and result.stdout == ""


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_skip_invalid_submits_the_valid_lines(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """--skip-invalid: the valid lines run (exit 0), the invalid ones are reported on stderr and
    get a record each (status invalid, keyed by line number when they have no usable key)."""
    good = make_lines(3)
    text = json.dumps(good[0]) + "\n{oops\n" + json.dumps(good[1]) + "\n" + json.dumps(good[2]) + "\n"
    result = batch(sandbox, str(write_text(tmp_path / "t.jsonl", text)), "--skip-invalid")
    assert result.code == 0, result.stderr
    assert "line 2: not valid JSON" in result.stderr and "skipping 1 invalid line" in result.stderr
    records = read_records(result.stdout)
    assert sorted(map(str, (r["key"] for r in records))) == ["2", "3", "k0", "k2"]
    assert [r["status"] for r in records if r["key"] == 2] == ["invalid"]
    assert len(sandbox.sandbox.submissions()) == 3


def test_stdin_is_read_as_the_batch_file(sandbox: ThreadedSandbox) -> None:
    """FILE `-` reads the lines from stdin."""
    text = "".join(json.dumps(line) + "\n" for line in make_lines(5))
    result = batch(sandbox, "-", input=text)
    assert result.code == 0, result.stderr
    assert len(read_records(result.stdout)) == 5


def test_running_a_batch_again_without_resume_is_refused(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """A second run of the same file: exit 2, nothing sent; --resume re-emits every record, sends nothing."""
    source = write(tmp_path / "t.jsonl", make_lines(6))
    first = batch(sandbox, str(source))
    assert first.code == 0, first.stderr
    sent = len(sandbox.sandbox.submissions())
    again = batch(sandbox, str(source))
    assert again.code == 2 and "--resume" in again.stderr
    resumed = batch(sandbox, str(source), "--resume")
    assert resumed.code == 0, resumed.stderr
    assert len(sandbox.sandbox.submissions()) == sent == 6
    assert sorted(r["id"] for r in read_records(resumed.stdout)) == sorted(r["id"] for r in read_records(first.stdout))


def test_unknown_submits_are_not_resent_unless_asked(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """A submit whose answer is lost is `unknown` (exit 9), stays so on --resume, is resent with --resubmit-unknown."""
    lines = make_lines(3, models=("flux-dev",))
    source = write(tmp_path / "t.jsonl", lines)
    sandbox.sandbox.inject(status=200, method="POST", path_prefix="/api/v3/get3w", drop_connection=True)
    first = batch(sandbox, str(source), "-j", "1")
    unknown = [r for r in read_records(first.stdout) if r["status"] == "unknown"]
    assert first.code == 9 and len(unknown) == 1
    assert unknown[0]["id"] is None and unknown[0]["error"]["code"] == "submit_unknown"
    again = batch(sandbox, str(source), "--resume")
    assert again.code == 9 and len(sandbox.sandbox.submissions()) == 3
    assert [r["status"] for r in read_records(again.stdout)].count("unknown") == 1
    forced = batch(sandbox, str(source), "--resume", "--resubmit-unknown")
    assert forced.code == 0, forced.stderr
    assert len(sandbox.sandbox.submissions()) == 4
    assert all(r["status"] == "completed" for r in read_records(forced.stdout))


def test_timed_out_lines_are_waited_for_again_on_resume(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """--timeout per task: a record with error timeout (exit 9); --resume polls it to completion, no resubmit."""
    source = write(tmp_path / "t.jsonl", make_lines(2, duration=1.0, models=("flux-dev",)))
    first = batch(sandbox, str(source), "--timeout", "0.3", "--via", "poll")
    records = read_records(first.stdout)
    assert first.code == 9
    assert {r["error"]["code"] for r in records} == {"timeout"} and all(r["id"] for r in records)
    wait_until(lambda: all(task.finished for task in sandbox.sandbox._runtime.store.tasks.values()))
    resumed = batch(sandbox, str(source), "--resume")
    assert resumed.code == 0, resumed.stderr
    assert [r["via"] for r in read_records(resumed.stdout)] == ["poll", "poll"]
    assert len(sandbox.sandbox.submissions()) == 2


def test_output_dir_downloads_every_output(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """-o DIR: each record lists its downloaded files, which exist."""
    source = write(tmp_path / "t.jsonl", make_lines(4))
    result = batch(sandbox, str(source), "-o", str(tmp_path / "out"))
    assert result.code == 0, result.stderr
    files = [f for r in read_records(result.stdout) for f in r["files"]]
    assert len(files) == 4 and all(Path(f).read_bytes().startswith(b"\x89PNG") for f in files)


def test_missing_key_for_a_provider_exits_3_before_sending(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Every provider the file uses needs a key: exit 3 and no submit when one is missing."""
    source = write(tmp_path / "t.jsonl", make_lines(3))
    result = batch(sandbox, str(source), env={"ABSTRAKT_API_KEY": ""})
    assert result.code == 3 and "no API key for abstrakt" in result.stderr
    assert sandbox.sandbox.submissions() == []


def test_history_shows_batches_and_their_lines(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """history --batches lists the batch with its counts; --batch NAME lists its lines."""
    source = write(tmp_path / "t.jsonl", make_lines(5, fail_every=5))
    assert batch(sandbox, str(source), "--name", "hist").code == 9
    rows = read_records(invoke("history", "--batches", "--json").stdout)
    assert [(r["name"], r["total"], r["done"], r["failed"]) for r in rows] == [("hist", 5, 4, 1)]
    lines = read_records(invoke("history", "--batch", "hist", "--json").stdout)
    assert [(r["line"], r["state"]) for r in lines] == [(1, "done"), (2, "done"), (3, "done"), (4, "done"),
                                                        (5, "failed")]
    assert all(r["id"] and r["record"]["key"] == r["key"] for r in lines)
    table = invoke("history", "--batch", "hist")
    assert table.code == 0 and "failed" in table.stdout


def test_a_key_refused_mid_batch_stops_it_with_exit_3(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """403 insufficient balance on submit: exit 3, the resume command in the hint, no line journalled as sent."""
    source = write(tmp_path / "t.jsonl", make_lines(6, models=("flux-dev",)))
    result = batch(sandbox, str(source), env={"GET3W_API_KEY": "sk_broke"})
    assert result.code == 3, result.stderr
    assert "--resume" in result.stderr and result.stdout == ""
    lines = read_records(invoke("history", "--batches", "--json").stdout)
    assert [(r["done"], r["failed"], r["unknown"], r["open"]) for r in lines] == [(0, 0, 0, 0)]


# --- the parts ---------------------------------------------------------------------------------


class SlowAdapter:
    """A provider whose submits take 0.2 s and whose tasks never finish; ``posting`` is set once
    ``expected`` submits are in flight together."""

    provider, api, can_cancel, has_sync = "get3w", "v3", False, False

    def __init__(self, expected: int) -> None:
        self.in_flight, self.expected = 0, expected
        self.posting = asyncio.Event()

    async def submit(self, model: str, input: dict[str, Any], *, webhook_url: str | None = None,
                     sync: bool = False) -> Task:
        self.in_flight += 1
        if self.in_flight >= self.expected:
            self.posting.set()
        await asyncio.sleep(0.2)
        return Task(f"t-{input['prompt']}", "get3w", "v3", model, Status.CREATED)

    async def get(self, task_id: str) -> Task:
        return Task(task_id, "get3w", "v3", "get3w/flux-dev", Status.PROCESSING)


def test_interrupt_lets_posts_in_flight_reach_the_journal(tmp_path: Path) -> None:
    """Cancelled while 4 submits are in flight: each gets its answer journalled (submitted, not unknown)."""
    journal = Journal(tmp_path / "history.db")
    adapter = SlowAdapter(expected=4)
    ledger = Ledger(journal, "b", Stats(total=10), sink=lambda record: None)
    runner = BatchRunner(BatchConfig(name="b", concurrency=4, mode="poll", plan=WaitPlan()), ledger=ledger,
                         connect=lambda route: Connection(adapter, adapter, "http://provider"), session=None)
    route = resolve_route("flux-dev")
    lines = [BatchLine(i + 1, None, route, {"prompt": str(i)}) for i in range(10)]

    async def main() -> None:
        job = asyncio.ensure_future(runner.run(lines))
        await asyncio.wait_for(adapter.posting.wait(), 10)  # -j 4: four POSTs at the provider
        job.cancel()
        try:
            await job
        except asyncio.CancelledError:
            return
        raise AssertionError("the run was not cancelled")

    try:
        asyncio.run(main())
        states = {(line, state, task_id) for line, _, state, task_id, _ in journal.batch_lines("b")}
    finally:
        journal.close()
    assert states == {(n, "submitted", f"t-{n - 1}") for n in (1, 2, 3, 4)}




def test_lines_are_checked_and_streamed(tmp_path: Path) -> None:
    """check_file counts and routes lines; valid_lines yields them lazily, skipping invalid ones."""
    source = write_text(tmp_path / "t.jsonl", "\ufeff" + json.dumps({"model": "flux-dev", "input": {}}) + "\n\n"
                        + "nope\n" + json.dumps({"model": "x", "input": {}, "provider": "abstrakt", "key": "a"}) + "\n")
    result = check_file(source, LineDefaults())
    assert (result.valid, result.invalid, result.invalid_lines) == (2, 1, {3})
    assert result.routes == {("get3w", "v3"), ("abstrakt", "v1")}
    stream = valid_lines(source, LineDefaults(), result.invalid_lines)
    first = next(stream)
    assert (first.number, first.out_key, first.ident, first.route.model) == (1, 1, "n:1", "get3w/flux-dev")
    assert [(ln.number, ln.out_key, ln.ident) for ln in stream] == [(4, "a", "k:a")]


def test_stdin_spool_keeps_the_bytes(tmp_path: Path) -> None:
    """spool copies a stream to a file that can be read twice."""
    import io

    path = spool(io.BytesIO(b'{"a": 1}\n' * 1000), tmp_path)
    try:
        assert path.read_bytes() == b'{"a": 1}\n' * 1000
    finally:
        path.unlink()


def test_pacer_halves_once_per_round_and_grows_back() -> None:
    """A burst of 429s from one round halves the allowance once; accepted submits grow it back to -j."""
    async def main() -> None:
        pacer = Pacer(16, clock=lambda: 0.0)
        epochs = [await pacer.acquire() for _ in range(16)]
        for epoch in epochs[:8]:
            pacer.release()
            pacer.throttled(epoch, 0.0)
        assert pacer.limit == 8  # one decrease for the whole burst: min(16, 15 active + 1) / 2
        assert pacer.throttles == 8
        for _ in range(8):
            pacer.release()
        for _ in range(200):
            epoch = await pacer.acquire()
            pacer.accepted()
            pacer.release()
        assert pacer.limit == 16

    asyncio.run(main())


def test_pacer_waits_for_retry_after_and_free_slots() -> None:
    """After a 429 no slot is given before Retry-After; above the limit, acquire waits for a release
    (in virtual time: the pause is exact, and "waits" means for as long as the test lets it)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(2, clock=loop.time)
        epoch = await pacer.acquire()
        pacer.release()
        pacer.throttled(epoch, 20)
        started = loop.time()
        await pacer.acquire()
        assert loop.time() - started == pytest.approx(20, abs=1e-6)  # Retry-After, to the instant
        assert pacer.limit == 1
        waiting = asyncio.ensure_future(pacer.acquire())
        await asyncio.sleep(3600)  # an hour of the loop's time, and still no slot
        assert not waiting.done()
        pacer.release()
        await asyncio.wait_for(waiting, 1)

    run_in_virtual_time(main)


def test_lines_finishing_together_are_journalled_before_their_records_are_written(tmp_path: Path) -> None:
    """Final records of one loop turn share a transaction; each record reaches the output only once journalled."""
    journal = Journal(tmp_path / "history.db")
    route = resolve_route("flux-dev")
    lines = [BatchLine(i + 1, None, route, {"prompt": str(i)}) for i in range(3)]
    tasks = [Task(f"t-{i}", "get3w", "v3", "get3w/flux-dev", Status.COMPLETED) for i in range(3)]
    seen: list[tuple[Any, set[tuple[int, str]]]] = []

    def sink(record: dict[str, Any]) -> None:
        seen.append((record["key"], {(line, state) for line, _, state, _, _ in journal.batch_lines("b")}))

    ledger = Ledger(journal, "b", Stats(total=3), sink=sink)

    async def main() -> None:
        refs = await asyncio.gather(*(ledger.submitting(line, "http://provider") for line in lines))
        await asyncio.gather(*(ledger.submitted(line, ref, dataclasses.replace(task, status=Status.PROCESSING))
                               for line, ref, task in zip(lines, refs, tasks, strict=False)))
        assert seen == []
        await asyncio.gather(*(ledger.finished(line, ref, task, {"key": line.number, "status": "completed"}, "done")
                               for line, ref, task in zip(lines, refs, tasks, strict=False)))

    try:
        asyncio.run(main())
        statuses = {entry.id: entry.status for entry in journal.tasks(batch="b")}
    finally:
        journal.close()
    assert [key for key, _ in seen] == [1, 2, 3] and ledger.stats.done == 3
    assert all(states == {(1, "done"), (2, "done"), (3, "done")} for _, states in seen)
    assert statuses == {"t-0": "completed", "t-1": "completed", "t-2": "completed"}


def test_closed_stdout_stops_the_batch_with_the_resume_command(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    """`g3w batch ... | head -1`: the batch stops like an interruption (130), says how to resume, no traceback."""
    path = write(tmp_path / "lines.jsonl", make_lines(150, duration=0.05))  # more records than a pipe buffers
    proc = start_batch(sandbox, str(path), "-j", "4")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert json.loads(first)["status"] == "completed"
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err


def test_a_configured_proxy_carries_the_batch(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Batch requests go through aiohttp's pool, which ignores *_PROXY; with a proxy set, httpx's
    own pool carries them. The sandbox plays the proxy for a provider host that does not resolve."""
    lines = make_lines(6, models=("flux-dev",))
    env = {"HTTP_PROXY": sandbox.base_url, "NO_PROXY": "", "no_proxy": "",
           "GET3W_BASE_URL": "http://get3w.proxied.invalid"}
    result = batch(sandbox, str(write(tmp_path / "t.jsonl", lines)), "--via", "poll", env=env)
    assert result.code == 0, result.stderr
    assert len(read_records(result.stdout)) == 6
    assert len(accepted_prompts(sandbox)) == 6


# --- progress ------------------------------------------------------------------------------


def test_progress_is_a_live_bar_when_stderr_is_a_terminal(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """On a terminal, stderr shows a bar redrawn in place with the counters, rate and ETA."""
    lines = make_lines(6, duration=0.6, models=("flux-dev",))
    result = g3w_on_terminal("batch", str(write(tmp_path / "t.jsonl", lines)), "-j", "2", *FAST,
                             env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert len(read_records(result.stdout)) == 6  # records stay on stdout, apart from the bar
    shown = result.stderr
    assert "in flight" in shown and "queued" in shown and "ETA" in shown and "/6" in shown
    assert "\x1b[" in shown  # drawn with terminal control sequences, not printed line by line


def test_progress_is_a_plain_periodic_line_when_stderr_is_not_a_terminal(capsys: Any) -> None:
    """Not a terminal: a plain line every BATCH_PROGRESS_INTERVAL, with no control sequences
    (in virtual time: exactly two lines in two and a half intervals)."""
    from get3w_cli import constants as C
    from get3w_cli.cli import batch_output
    from get3w_cli.cli.render import Ui

    stats = Stats(total=5, done=2, failed=1, in_flight=1)

    async def main() -> None:
        async with batch_output.progress(Ui(), stats):
            await asyncio.sleep(2.5 * C.BATCH_PROGRESS_INTERVAL)

    run_in_virtual_time(main)
    shown = capsys.readouterr().err.splitlines()
    assert len(shown) == 2
    assert shown[0].startswith("batch: 3/5 · 2 done · 1 failed · 1 in flight · 1 queued")
    assert not any("\x1b" in line or "\r" in line for line in shown)
