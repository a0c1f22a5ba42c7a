"""g3w download ID: a finished task's outputs, from the journal's URLs or fresh ones when those have
expired (checked against the sandbox's request log); files journalled as absolute paths."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli.downloads import NameTemplate
from get3w_cli.errors import UsageError


def run_task(env: dict[str, str], *extra: str) -> dict[str, Any]:
    result = invoke("run", "flux-dev", "-p", "a lighthouse", "--via", "poll", "--poll-max", "0.2", "--json", *extra,
                    env=env)
    assert result.code == 0, result.stderr
    record: dict[str, Any] = result.json()
    return record


def requests_since(sb: ThreadedSandbox, start: int) -> list[tuple[str, str]]:
    """(method, path with its query) of the requests the sandbox got after the first ``start``."""
    return [(r.method, r.path + (f"?{urlencode(r.query)}" if r.query else "")) for r in sb.sandbox.requests[start:]]


def journalled(task_id: str, env: dict[str, str]) -> dict[str, Any]:
    shown = invoke("history", "show", task_id, "--json", env=env)
    assert shown.code == 0, shown.stderr
    record: dict[str, Any] = shown.json()
    return record


def test_recorded_urls_are_downloaded_without_asking_the_provider(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """A completed task in the journal: its recorded URLs are fetched, no API request; stdout is the
    absolute file path, and the journal's record lists it."""
    env = sandbox_env(sandbox)
    record = run_task(env, "-i", "sandbox_outputs=2")
    start = len(sandbox.sandbox.requests)

    result = invoke("download", record["id"], "-o", str(tmp_path / "out"), env=env)
    assert result.code == 0, result.stderr
    files = [str(tmp_path / "out" / f"{record['id']}_{i}.png") for i in range(2)]
    assert result.stdout.splitlines() == files
    assert all(Path(f).read_bytes().startswith(b"\x89PNG") for f in files)
    assert requests_since(sandbox, start) == [
        ("GET", f"/cdn/outputs/{record['id']}_{i}.png") for i in range(2)]
    assert journalled(record["id"], env)["files"] == files
    assert f"into {tmp_path / 'out'} (-o)" in result.stderr


def test_expired_urls_are_replaced_by_fresh_ones_from_the_provider(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """The output host answers 403 for the recorded URL: one GET of the task, then its fresh URL; the
    journal keeps the fresh URL and the file."""
    env = sandbox_env(sandbox)
    record = run_task(env)
    assert sandbox.sandbox.expire_outputs(record["id"]) == 1
    start = len(sandbox.sandbox.requests)

    result = invoke("download", record["id"], "-o", str(tmp_path), "--json", env=env)
    assert result.code == 0, result.stderr
    task_id = record["id"]
    assert requests_since(sandbox, start) == [
        ("GET", f"/cdn/outputs/{task_id}_0.png"),  # 403: expired
        ("GET", f"/api/v3/predictions/{task_id}"),
        ("GET", f"/cdn/outputs/{task_id}_0.png?v=1"),
    ]
    printed = result.json()
    assert printed["outputs"] == [f"{sandbox.base_url}/cdn/outputs/{task_id}_0.png?v=1"]
    assert printed["files"] == [str(tmp_path / f"{task_id}_0.png")] and Path(printed["files"][0]).is_file()
    assert (printed["via"], printed["elapsed_s"]) == (record["via"], record["elapsed_s"])  # what the run knew
    assert journalled(task_id, env) == printed


def test_outputs_the_provider_deleted_are_exit_8_with_the_urls(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """After a v3 DELETE the outputs 404 and the task no longer lists any: exit 8, nothing written."""
    env = sandbox_env(sandbox)
    record = run_task(env)
    assert invoke("cancel", record["id"], "--delete-outputs", env=env).code == 0
    result = invoke("download", record["id"], "-o", str(tmp_path / "out"), env=env)
    assert result.code == 8, result.stderr
    assert "have expired and the provider no longer lists any" in result.stderr
    assert result.stdout.splitlines() == record["outputs"]
    assert list((tmp_path / "out").iterdir()) == []


def test_an_unfinished_task_is_exit_4_and_a_failed_one_exit_1(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Nothing to download: still running is exit 4 (its record printed, `g3w wait` hinted), failed is 1."""
    env = sandbox_env(sandbox)
    pending = invoke("submit", "flux-dev", "-p", "later", "-i", "sandbox_duration=600", env=env).stdout.strip()
    out = tmp_path / "out"
    waiting = invoke("download", pending, "-o", str(out), "--json", env=env)
    assert waiting.code == 4, waiting.stderr
    assert waiting.json()["status"] == "created" and f"g3w wait {pending} -o DIR" in waiting.stderr
    failed = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_fail=boom", "--json", env=env).json()
    result = invoke("download", failed["id"], "-o", str(out), env=env)
    assert result.code == 1 and "failed: boom" in result.stderr
    assert not out.exists()


def test_a_task_completed_without_outputs_is_exit_1_no_outputs(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Completed with no outputs (a safety filter, say): exit 1, error.code no_outputs in the record."""
    env = sandbox_env(sandbox)
    ran = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_outputs=0", "--via", "poll", "--poll-max", "0.2",
                 "--json", env=env)
    task_id = ran.json()["id"]  # run's own exit code for this case is not what this test is about
    result = invoke("download", task_id, "-o", str(tmp_path / "out"), "--json", env=env)
    assert result.code == 1 and "no outputs" in result.stderr
    record = result.json()
    assert (record["status"], record["error"]["code"], record["outputs"]) == ("completed", "no_outputs", [])


def test_the_folder_is_the_config_default_else_the_current_one(tmp_path: Path, sandbox: ThreadedSandbox,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Without -o: the config's defaults.output, else the current directory; stderr says which."""
    env = sandbox_env(sandbox)
    record = run_task(env)
    monkeypatch.chdir(tmp_path)
    here = invoke("download", record["id"], env=env)
    assert here.code == 0, here.stderr
    assert here.stdout.strip() == str(tmp_path / f"{record['id']}_0.png") and "the current directory" in here.stderr

    config = tmp_path / "config.toml"
    config.write_text(f'[defaults]\noutput = "{tmp_path / "from-config"}"\n')
    configured = invoke("download", record["id"], env={**env, "G3W_CONFIG": str(config)})
    assert configured.code == 0, configured.stderr
    assert configured.stdout.strip() == str(tmp_path / "from-config" / f"{record['id']}_0.png")
    assert "defaults.output" in configured.stderr


def test_a_task_not_in_the_journal_is_asked_for(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """A task run with --no-history: its id's shape names its API, one GET gives its outputs."""
    env = sandbox_env(sandbox)
    record = run_task(env, "--no-history")
    start = len(sandbox.sandbox.requests)
    result = invoke("download", record["id"], "-o", str(tmp_path), env=env)
    assert result.code == 0, result.stderr
    assert [p for _, p in requests_since(sandbox, start)] == [
        f"/api/v3/predictions/{record['id']}", f"/cdn/outputs/{record['id']}_0.png"]


def test_a_file_given_as_the_folder_is_exit_2_before_any_request(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    env = sandbox_env(sandbox)
    record = run_task(env)
    start = len(sandbox.sandbox.requests)
    (tmp_path / "taken").write_text("x")
    result = invoke("download", record["id"], "-o", str(tmp_path / "taken"), env=env)
    assert result.code == 2 and "is not a folder" in result.stderr
    assert requests_since(sandbox, start) == []


def test_run_with_a_relative_folder_records_absolute_paths(tmp_path: Path, sandbox: ThreadedSandbox,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`run -o out` journals (and prints) the files as absolute paths: the record means the same
    file wherever it is read from."""
    monkeypatch.chdir(tmp_path)
    env = sandbox_env(sandbox)
    record = run_task(env, "-o", "out")
    assert record["files"] == [str(tmp_path / "out" / f"{record['id']}_0.png")]
    assert journalled(record["id"], env)["files"] == record["files"]


def test_the_sandbox_expires_urls_through_its_admin_endpoint(sandbox: ThreadedSandbox) -> None:
    """POST /_sandbox/expire-outputs: the URLs handed out answer 403, the task's next GET gives working ones."""
    record = run_task(sandbox_env(sandbox))
    old = record["outputs"][0]
    request = urllib.request.Request(f"{sandbox.base_url}/_sandbox/expire-outputs", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer) == {"expired": 1}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(old, timeout=10)
    refused.value.close()
    assert refused.value.code == 403
    get = urllib.request.Request(f"{sandbox.base_url}/api/v3/predictions/{record['id']}",
                                 headers={"Authorization": "Bearer sk_test_key"})
    with urllib.request.urlopen(get, timeout=10) as answer:
        fresh = json.load(answer)["data"]["outputs"][0]
    with urllib.request.urlopen(fresh, timeout=10) as answer:
        assert answer.read().startswith(b"\x89PNG")


# --- --name-template (batch) ---------------------------------------------------------------------


def test_a_name_template_renders_safe_file_names() -> None:
    """Values are made safe (no separators, no leading dot); without {index} later outputs get _<index>."""
    template = NameTemplate.parse("{key}_{index:02d}.{ext}")
    assert template.render(key="cats/../x y", index=3, ext=".png", task_id="pred_1", line=4) == "cats_.._x_y_03.png"
    assert template.render(key=7, index=0, ext=".jpg", task_id="p", line=7) == "7_00.jpg"
    plain = NameTemplate.parse("{key}.{ext}")
    assert [plain.render(key="a", index=i, ext=".png", task_id="p", line=1) for i in range(2)] == ["a.png", "a_1.png"]
    assert plain.render(key="..", index=0, ext=".png", task_id="p", line=1) == "_..png"  # not hidden, not a parent


@pytest.mark.parametrize(("text", "why"), [
    ("{key}_{nope}.{ext}", "unknown placeholder {nope}"),
    ("out/{key}.{ext}", "not a path"),
    ("{index}.{ext}", "needs {key}, {id} or {line}"),
    ("{key", "expected '}'"),
    ("{key:d}.{ext}", "Unknown format code"),
    ("{key.upper}.{ext}", "unknown placeholder"),
])
def test_a_bad_name_template_is_a_usage_error(text: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        NameTemplate.parse(text)
    assert why in caught.value.message
