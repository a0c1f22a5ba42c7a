"""g3w history: --refresh (unfinished rows asked about, bounded, rate limits honoured), show ID
(offline), --prompt, the table's columns, -n and "showing N of M", --status checked."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import ThreadedSandbox, sandbox_env, wait_until
from inproc import invoke
from test_batch import batch, make_lines, write

from get3w_cli.cli.history_refresh import fetch_all
from get3w_cli.errors import TransientError
from get3w_cli.journal import JournalEntry
from get3w_cli.journal.codec import prompt_of
from get3w_cli.records import Status, Task


def provider_status(sb: ThreadedSandbox, task_id: str) -> str:
    """The task's status as the provider tells it (what the test waits on)."""
    request = urllib.request.Request(f"{sb.base_url}/api/v3/predictions/{task_id}",
                                     headers={"Authorization": "Bearer sk_test_key"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        status: str = json.load(answer)["data"]["status"]
    return status


def prediction_gets(sb: ThreadedSandbox) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in sb.sandbox.requests
            if r.method == "GET" and r.path.startswith("/api/v3/predictions/")]


def history(*args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = invoke("history", "--json", *args, env=env)
    assert result.code == 0, result.stderr
    return [json.loads(row) for row in result.stdout.splitlines()]


def test_refresh_brings_an_unfinished_row_up_to_date(sandbox: ThreadedSandbox) -> None:
    """A submitted task shows `created`; once the provider has finished it, --refresh asks (only
    about unfinished rows, through a 429), prints the refreshed row and journals it `completed`."""
    env = sandbox_env(sandbox)
    done = invoke("run", "flux-dev", "-p", "done", "--via", "poll", "--poll-max", "0.2", "--json", env=env).json()
    pending = invoke("submit", "flux-dev", "-p", "later", "-i", "sandbox_duration=0.3", env=env).stdout.strip()
    assert {r["id"]: r["status"] for r in history(env=env)} == {done["id"]: "completed", pending: "created"}
    wait_until(lambda: provider_status(sandbox, pending) == "completed")
    sandbox.sandbox.inject(status=429, count=1, method="GET", path_prefix="/api/v3/predictions", retry_after=0.1)
    asked_before = len(prediction_gets(sandbox))

    refreshed = invoke("history", "--refresh", "--json", env=env)
    assert refreshed.code == 0, refreshed.stderr
    records = [json.loads(row) for row in refreshed.stdout.splitlines()]
    assert [(r["id"], r["status"], r["via"]) for r in records] == [(pending, "completed", "poll")]
    assert records[0]["outputs"] and records[0]["input"] == {"prompt": "later", "sandbox_duration": 0.3}
    assert prediction_gets(sandbox)[asked_before:] == [pending, pending]  # the 429, then the answer
    assert {r["id"]: r["status"] for r in history(env=env)} == {done["id"]: "completed", pending: "completed"}
    table = invoke("history", "--refresh", env=env)
    assert table.code == 0 and table.stdout.splitlines() == ["id\tprovider\tmodel\tstatus\tprompt\tsubmitted"]


def test_refresh_reports_a_row_it_could_not_refresh(sandbox: ThreadedSandbox) -> None:
    """A GET that keeps failing: the row is named on stderr, kept as it was, and the exit code is
    the failure's (5 for a task the provider does not know)."""
    env = sandbox_env(sandbox)
    pending = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_duration=30", env=env).stdout.strip()
    sandbox.sandbox.inject(status=404, count=1, method="GET", path_prefix="/api/v3/predictions")
    result = invoke("history", "--refresh", env=env)
    assert result.code == 5, result.stderr
    assert f"could not refresh {pending}" in result.stderr and "Traceback" not in result.stderr
    assert [r["status"] for r in history(env=env)] == ["created"]


def test_refresh_needs_the_key_of_each_provider_before_asking(sandbox: ThreadedSandbox) -> None:
    """No key for a row's provider: exit 3 before any request."""
    env = sandbox_env(sandbox)
    invoke("submit", "abstrakt:flux-schnell", "-p", "x", "-i", "sandbox_duration=30", env=env)
    asked = len(sandbox.sandbox.requests)
    result = invoke("history", "--refresh", env={**env, "ABSTRAKT_API_KEY": ""})
    assert result.code == 3 and "no API key for abstrakt" in result.stderr
    assert len(sandbox.sandbox.requests) == asked


def entry(task_id: str) -> JournalEntry:
    return JournalEntry(ref=task_id, id=task_id, provider="get3w", api="v3", model="m", base_url="http://api",
                        input={}, status="created", record=None, batch=None, created_at=0.0)


def test_fetch_all_keeps_at_most_its_concurrency_in_flight() -> None:
    """fetch_all runs `concurrency` fetches at once, no more; a failed fetch is returned, not raised."""
    active, peak = 0, 0

    async def main() -> list[Any]:
        full = asyncio.Event()

        async def fetch(e: JournalEntry) -> Task:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            if active == 3:
                full.set()  # the first three are in: let everyone through
            await full.wait()
            active -= 1
            if e.id == "t7":
                raise TransientError("busy", status=503)
            return Task(e.id or "", "get3w", "v3", "m", Status.COMPLETED)

        return await asyncio.wait_for(fetch_all([entry(f"t{i}") for i in range(10)], fetch, concurrency=3), 10)

    outcomes = asyncio.run(main())
    assert peak == 3
    assert [e.id for e, _ in outcomes] == [f"t{i}" for i in range(10)]
    assert isinstance(outcomes[7][1], TransientError)
    assert all(isinstance(o, Task) for i, (_, o) in enumerate(outcomes) if i != 7)


# --- listing, searching, showing -----------------------------------------------------------------


def submit(env: dict[str, str], prompt: str, *extra: str) -> str:
    """A journalled task that stays unfinished (the tests below read the journal only)."""
    result = invoke("submit", "flux-dev", "-p", prompt, "-i", "sandbox_duration=600", *extra, env=env)
    assert result.code == 0, result.stderr
    return result.stdout.strip()


def test_history_show_prints_one_journalled_record_without_the_network(sandbox: ThreadedSandbox) -> None:
    """`history show ID`: the task's journalled record (--json) or its fields, with no request at all;
    an id the journal does not know is exit 2."""
    env = sandbox_env(sandbox)
    done = invoke("run", "flux-dev", "-p", "a lighthouse\nat dusk", "--via", "poll", "--poll-max", "0.2", "--json",
                  env=env).json()
    asked = len(sandbox.sandbox.requests)

    shown = invoke("history", "show", done["id"], "--json", env=env)
    assert shown.code == 0, shown.stderr
    assert shown.json() == done
    text = invoke("history", "show", done["id"], env=env)
    assert text.code == 0, text.stderr
    fields = dict(line.split(":", 1) for line in text.stdout.splitlines() if not line.startswith(" "))
    assert fields["id"].strip() == done["id"] and fields["status"].strip() == "completed"
    assert fields["prompt"].strip() == "a lighthouse" and "\n           at dusk\n" in text.stdout
    assert fields["outputs"].strip() == done["outputs"][0]
    assert datetime.fromisoformat(fields["submitted"].strip()).tzinfo is not None
    assert len(sandbox.sandbox.requests) == asked  # offline

    missing = invoke("history", "show", "pred_nope", env=env)
    assert missing.code == 2 and "no task pred_nope in the journal" in missing.stderr
    assert invoke("history", "show", env=env).code == 2
    assert invoke("history", "show", done["id"], "--refresh", env=env).code == 2


def test_prompt_search_ignores_case_and_the_table_shows_prompts_and_zoned_times(sandbox: ThreadedSandbox) -> None:
    """--prompt TEXT: tasks whose prompt contains TEXT in any case (Unicode folding too); the table
    has a shortened prompt column and ISO 8601 times with an offset; stderr says how many of how many."""
    env = sandbox_env(sandbox)
    long_prompt = "A Red Fox " + "running through the snow " * 5
    fox = submit(env, long_prompt)
    street = submit(env, "Die STRASSE bei Nacht")
    submit(env, "a blue whale")
    before = time.time()

    found = history("--prompt", "red fox", env=env)
    assert [r["id"] for r in found] == [fox]
    assert [r["id"] for r in history("--prompt", "straße", env=env)] == [street]  # ß folds to ss
    assert history("--prompt", "red fox", "--status", "completed", env=env) == []

    table = invoke("history", "--prompt", "FOX", env=env)
    assert table.code == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split("\t") == ["id", "provider", "model", "status", "prompt", "submitted"]
    cells = row.split("\t")
    assert cells[4].startswith("A Red Fox running") and cells[4].endswith("…") and len(cells[4]) == 40
    submitted = datetime.fromisoformat(cells[5])
    assert submitted.tzinfo is not None and abs(submitted.timestamp() - before) < 60
    assert "showing 1 of 1 tasks" in table.stderr


def test_limit_says_how_many_it_shows_of_how_many(sandbox: ThreadedSandbox) -> None:
    """-n N shows the newest N and says "showing N of M" on stderr; -n 0 shows them all."""
    env = sandbox_env(sandbox)
    ids = [submit(env, f"task {i}") for i in range(3)]
    two = invoke("history", "-n", "2", "--json", env=env)
    assert [json.loads(line)["id"] for line in two.stdout.splitlines()] == ids[:0:-1]
    assert "showing 2 of 3 tasks" in two.stderr
    everything = invoke("history", "-n", "0", "--json", env=env)
    assert len(everything.stdout.splitlines()) == 3 and "showing 3 of 3 tasks" in everything.stderr


def test_an_unknown_status_is_exit_2_naming_the_valid_ones() -> None:
    """--status must be a status a row can have (for --batch: a line state); flags that would be
    ignored are refused too."""
    wrong = invoke("history", "--status", "complete")
    assert wrong.code == 2 and "unknown status 'complete'" in wrong.stderr
    for status in ("created", "processing", "completed", "failed", "cancelled", "submitting", "unknown"):
        assert status in wrong.stderr
        assert invoke("history", "--status", status).code == 0
    lines = invoke("history", "--batch", "b", "--status", "completed")
    assert lines.code == 2 and "submitting, submitted, done, failed, unknown" in lines.stderr
    assert invoke("history", "--batches", "--prompt", "x").code == 2
    assert invoke("history", "--batches", "--status", "failed").code == 2
    assert invoke("history", "list").code == 2


def test_a_batch_listing_honours_its_limit(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """history --batch NAME -n N: the first N lines (of those in --status), and "showing N of M"."""
    source = write(tmp_path / "t.jsonl", make_lines(5, fail_every=5))
    assert batch(sandbox, str(source), "--name", "five").code == 9
    two = invoke("history", "--batch", "five", "-n", "2", "--json")
    assert [json.loads(row)["line"] for row in two.stdout.splitlines()] == [1, 2]
    assert "showing 2 of 5 lines" in two.stderr
    failed = invoke("history", "--batch", "five", "--status", "failed", "--json")
    assert [json.loads(row)["line"] for row in failed.stdout.splitlines()] == [5]
    assert "showing 1 of 1 lines" in failed.stderr


def test_the_prompt_function_never_raises() -> None:
    """The SQL function behind --prompt: anything stored reads as a prompt or as none."""
    assert prompt_of('{"prompt": "Ärger"}') == "ärger"
    for stored in (None, "", "not json", "[1, 2]", '{"prompt": 7}', '{"other": "x"}'):
        assert prompt_of(stored) is None
