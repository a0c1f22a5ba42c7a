"""g3w batch conveniences: records for invalid lines, a summary naming what did not complete,
--name-template, and --retry-failed on --resume."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ThreadedSandbox
from inproc import invoke
from test_batch import batch, make_lines, read_records, write, write_text

from get3w_cli.batch.report import Stats, summary


def test_skipped_invalid_lines_get_records_a_join_by_key_can_use(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """--skip-invalid: every invalid line gets a record (status invalid, error.code invalid_line, the
    reason, the line's key when it had one, else its number); the summary names them."""
    text = "\n".join([
        json.dumps({"model": "flux-dev", "input": {"prompt": "ok"}, "key": "good"}),
        json.dumps({"model": "flux-dev", "input": "not an object", "key": "bad-input"}),
        "{oops",
        json.dumps({"model": "flux-dev", "input": {"prompt": "again"}, "key": "good"}),
        json.dumps({"model": 7, "input": {"prompt": "x"}, "key": ""}),
    ]) + "\n"
    result = batch(sandbox, str(write_text(tmp_path / "t.jsonl", text)), "--skip-invalid")
    assert result.code == 0, result.stderr
    records = read_records(result.stdout)
    by_line = {r["error"]["message"].split(":")[0]: r for r in records if r["status"] == "invalid"}
    assert set(by_line) == {"line 2", "line 3", "line 4", "line 5"}
    assert {r["error"]["code"] for r in by_line.values()} == {"invalid_line"}
    assert (by_line["line 2"]["key"], by_line["line 2"]["model"]) == ("bad-input", "flux-dev")
    assert "input must be a JSON object" in by_line["line 2"]["error"]["message"]
    assert by_line["line 3"]["key"] == 3 and by_line["line 3"]["model"] is None
    assert (by_line["line 4"]["key"], by_line["line 4"]["input"]) == ("good", {"prompt": "again"})
    assert "already used on line 1" in by_line["line 4"]["error"]["message"]
    assert (by_line["line 5"]["key"], by_line["line 5"]["model"]) == (5, None)
    assert all(r["id"] is None and r["outputs"] == [] for r in by_line.values())
    assert [r["status"] for r in records if r["status"] != "invalid"] == ["completed"]
    assert len(sandbox.sandbox.submissions()) == 1
    assert "4 invalid line(s) skipped" in result.stderr
    assert "skipped as invalid: bad-input, line 3, good, line 5" in result.stderr


def test_the_summary_names_the_keys_that_did_not_complete(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Exit 9 with a summary naming the keys of the lines that failed (lines without a key by number)."""
    lines = make_lines(6, fail_every=3)  # fail: line 3 (key k2) and line 6 (no key)
    lines[4]["input"]["sandbox_fail"] = True  # and line 5 (key k4)
    result = batch(sandbox, str(write(tmp_path / "t.jsonl", lines)), "-j", "1")
    assert result.code == 9, result.stderr
    named = next(line for line in result.stderr.splitlines() if line.startswith("did not complete: "))
    assert sorted(named.removeprefix("did not complete: ").split(", ")) == ["k2", "k4", "line 6"]


def test_a_long_list_of_keys_is_cut_with_a_count() -> None:
    stats = Stats(total=30)
    for i in range(25):
        stats.did_not_complete(f"k{i}" if i % 2 else i + 1)
    text = summary(stats)
    assert text.startswith("25 of 30 lines: 0 completed, 25 not completed")
    assert text.splitlines()[1] == ("did not complete: line 1, k1, line 3, k3, line 5, k5, line 7, k7, line 9, k9"
                                    " and 15 more")


def test_a_name_template_names_the_output_files(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """--name-template '{key}_{index}.{ext}': keys made safe, lines without a key by number; every
    record lists its files (absolute), which exist."""
    lines = [{"model": "flux-dev", "input": {"prompt": "a", "sandbox_outputs": 2}, "key": "cats/one two"},
             {"model": "flux-dev", "input": {"prompt": "b"}}]
    out = tmp_path / "out"
    result = batch(sandbox, str(write(tmp_path / "t.jsonl", lines)), "-o", str(out),
                   "--name-template", "{key}_{index}.{ext}")
    assert result.code == 0, result.stderr
    files = {r["key"]: r["files"] for r in read_records(result.stdout)}
    assert files == {"cats/one two": [str(out / "cats_one_two_0.png"), str(out / "cats_one_two_1.png")],
                     2: [str(out / "2_0.png")]}
    assert sorted(p.name for p in out.iterdir()) == ["2_0.png", "cats_one_two_0.png", "cats_one_two_1.png"]


def test_two_outputs_given_one_name_are_not_overwritten(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """A key "2" and an unkeyed line 2 both render {key} as 2: the second is a failed download (exit
    9, download_failed), the first file stays."""
    lines = [{"model": "flux-dev", "input": {"prompt": "keyed"}, "key": "2"},
             {"model": "flux-dev", "input": {"prompt": "unkeyed"}}]
    result = batch(sandbox, str(write(tmp_path / "t.jsonl", lines)), "-o", str(tmp_path / "out"), "-j", "1",
                   "--name-template", "{key}.{ext}")
    assert result.code == 9, result.stderr
    records = read_records(result.stdout)
    first, second = records
    assert first["error"] is None
    assert second["error"]["code"] == "download_failed"
    assert "gives 2.png to two outputs" in second["error"]["message"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["2.png"]


def test_a_bad_name_template_is_exit_2_before_anything_is_sent(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    source = write(tmp_path / "t.jsonl", make_lines(2))
    unknown = batch(sandbox, str(source), "-o", str(tmp_path / "out"), "--name-template", "{key}_{n}.{ext}")
    assert unknown.code == 2 and "unknown placeholder {n}" in unknown.stderr
    no_dir = batch(sandbox, str(source), "--name-template", "{key}.{ext}")
    assert no_dir.code == 2 and "add -o DIR" in no_dir.stderr
    assert sandbox.sandbox.submissions() == [] and not (tmp_path / "out").exists()


def test_retry_failed_submits_the_failed_lines_again_as_new_tasks(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """A line whose task failed (and one refused at submit): --resume alone re-emits them; --resume
    --retry-failed says so and submits them as new tasks, and nothing else."""
    lines = make_lines(4, models=("flux-dev",))
    lines[1]["input"]["sandbox_fail"] = "boom"  # line 2: the task fails every time
    source = write(tmp_path / "t.jsonl", lines)
    sandbox.sandbox.inject(status=422, count=1, method="POST", path_prefix="/api/v3/get3w")  # the first submit
    first = batch(sandbox, str(source), "-j", "1", "--name", "r")
    assert first.code == 9, first.stderr
    failed_ids = {r["key"]: r["id"] for r in read_records(first.stdout) if r["status"] != "completed"}
    assert set(failed_ids) == {"k0", 2} and failed_ids["k0"] is None

    again = batch(sandbox, str(source), "--resume", "--name", "r")
    assert again.code == 9 and len(sandbox.sandbox.submissions()) == 4

    retried = batch(sandbox, str(source), "--resume", "--retry-failed", "--name", "r")
    assert retried.code == 9, retried.stderr
    assert "line 1 (key k0): failed before; submitting it again as a new task" in retried.stderr
    assert "line 2: failed before; submitting it again as a new task" in retried.stderr
    assert "2 failed line(s) will be submitted again as new tasks" in retried.stderr
    submitted = [json.loads(r.body)["prompt"] for r in sandbox.sandbox.submissions()[4:]]
    assert sorted(submitted) == ["prompt 0", "prompt 1"]
    records = {r["key"]: r for r in read_records(retried.stdout)}
    assert records["k0"]["status"] == "completed"
    assert records[2]["status"] == "failed" and records[2]["id"] not in (None, failed_ids[2])
    lines_now = {json.loads(row)["line"]: json.loads(row) for row in
                 invoke("history", "--batch", "r", "--json").stdout.splitlines()}
    assert lines_now[2]["id"] == records[2]["id"]
    journalled = {json.loads(row)["id"] for row in invoke("history", "--json", "-n", "0").stdout.splitlines()}
    assert failed_ids[2] in journalled  # the earlier failed task stays in the journal


def test_retry_failed_needs_resume(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    result = batch(sandbox, str(write(tmp_path / "t.jsonl", make_lines(1))), "--retry-failed")
    assert result.code == 2 and "add --resume" in result.stderr
    assert sandbox.sandbox.submissions() == []
