"""g3w history --refresh: unfinished rows asked about (bounded, rate limits honoured) and updated."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke
from test_batch import wait_until

from get3w_cli.cli.history_refresh import fetch_all
from get3w_cli.errors import TransientError
from get3w_cli.journal import JournalEntry
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
    assert table.code == 0 and table.stdout.splitlines() == ["id\tprovider\tmodel\tstatus\tsubmitted"]


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
