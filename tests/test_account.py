"""Account and local commands: models, balance, upload, history and doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke
from test_cli_run import check_record

SECRET = "sk_live_0123456789abcdef"


def test_models_lists_get3w_and_abstrakt_models(sandbox: ThreadedSandbox) -> None:
    """models: a plain table when piped (the name to run, type, price with its unit), a JSON array
    with --json, searchable, per provider."""
    env = sandbox_env(sandbox)
    table = invoke("models", env=env)
    assert table.code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split("\t") == ["model", "type", "price", "description"]
    assert rows[0].split("\t")[:3] == ["get3w/flux-dev", "text-to-image", "$0.025/run"]
    found = invoke("models", "schnell", "--json", env=env)
    assert [m["id"] for m in json.loads(found.stdout)] == ["get3w/flux-schnell"]
    abstrakt = invoke("models", "--provider", "abstrakt", "--json", env=env)
    listed = {m["run"]: m for m in json.loads(abstrakt.stdout)}
    assert listed["abstrakt:fal-ai/flux/schnell"]["price"] == 1 and listed["abstrakt:fal-ai/flux/schnell"]["id"] == (
        "fal-ai/flux/schnell")
    paths = [(r.method, r.path) for r in sandbox.sandbox.requests]
    assert paths == [("GET", "/api/v3/models")] * 2 + [("GET", "/v1/models")]
    assert all(r.headers["authorization"] == "Bearer sk_test_key" for r in sandbox.sandbox.requests)


def test_balance_as_table_and_json(sandbox: ThreadedSandbox) -> None:
    """balance shows what Get3W answers: a table when piped, the data object with --json."""
    env = sandbox_env(sandbox)
    table = invoke("balance", env=env)
    assert table.code == 0
    assert table.stdout.splitlines() == ["balance\tcurrency", "42.5\tUSD"]
    assert json.loads(invoke("balance", "--json", env=env).stdout) == {"balance": 42.5, "currency": "USD"}


def test_balance_with_a_bad_key_exits_3(sandbox: ThreadedSandbox) -> None:
    """A revoked key: exit 3 and a one-line error."""
    result = invoke("balance", env=sandbox_env(sandbox, key="sk_invalid"))
    assert result.code == 3 and result.stdout == ""
    assert result.stderr.startswith("Error: HTTP 401")


def test_upload_prints_a_url_serving_the_file(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """upload FILE prints the URL Get3W gives it (the file is there), or {"url": ...} with --json."""
    env = sandbox_env(sandbox)
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"\xff\xd8\xff fake jpeg")
    plain = invoke("upload", str(source), env=env)
    assert plain.code == 0
    url = plain.stdout.strip()
    assert url.startswith(sandbox.base_url + "/cdn/uploads/") and url.endswith("photo.jpg")
    assert httpx.get(url).content == source.read_bytes()
    as_json = json.loads(invoke("upload", str(source), "--json", env=env).stdout)
    assert list(as_json) == ["url"] and as_json["url"].startswith(sandbox.base_url)
    [first, _] = [r for r in sandbox.sandbox.requests if r.method == "POST"]
    assert first.path == "/api/v3/files/upload" and b"fake jpeg" in first.body


def test_upload_of_a_missing_file_exits_2_and_sends_nothing(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """upload of a file that is not there: exit 2, naming the file, no request."""
    result = invoke("upload", str(tmp_path / "nope.png"), env=sandbox_env(sandbox))
    assert result.code == 2
    assert "nope.png" in result.stderr and "-i " not in result.stderr
    assert sandbox.sandbox.requests == []


def test_history_lists_journalled_tasks(sandbox: ThreadedSandbox) -> None:
    """history --json: one task record a line, newest first; --status filters; --no-history leaves no trace."""
    env = sandbox_env(sandbox)
    done = invoke("run", "flux-dev", "-p", "ok", "--json", "--poll-max", "0.2", env=env).json()
    failed = invoke("run", "abstrakt:flux-schnell", "-p", "bad", "-i", "sandbox_fail=true", "--json", env=env).json()
    hidden = invoke("run", "flux-dev", "-p", "secret", "--no-history", "--json", env=env).json()
    pending = invoke("submit", "flux-dev", "-p", "later", "-i", "sandbox_duration=30", env=env).stdout.strip()

    lines = invoke("history", "--json", env=env).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [pending, failed["id"], done["id"]]
    for record in records:
        check_record(record)  # every line is a full task record, waited for or not
    assert records[2] == done  # the same record run printed
    assert records[1]["status"] == "failed" and records[1]["error"]["message"]
    assert (records[0]["status"], records[0]["via"]) == ("created", None)
    assert records[0]["input"] == {"prompt": "later", "sandbox_duration": 30}
    assert hidden["id"] not in "\n".join(lines)

    only_failed = invoke("history", "--status", "failed", "--json", env=env).stdout.splitlines()
    assert [json.loads(line)["id"] for line in only_failed] == [failed["id"]]
    table = invoke("history", "--limit", "2", env=env).stdout.splitlines()
    assert table[0].split("\t") == ["id", "provider", "model", "status", "prompt", "submitted"]
    assert table[2].split("\t")[:4] == [failed["id"], "abstrakt v1", "flux-schnell", "failed"]
    assert len(table) == 3


def test_doctor_reports_setup_without_revealing_keys() -> None:
    """doctor --json: checks with ok flags; keys masked; exit 3 when no provider key is set."""
    with_key = invoke("doctor", "--json", env={"GET3W_API_KEY": SECRET})
    assert with_key.code == 0
    checks = {c["check"]: c for c in json.loads(with_key.stdout)}
    assert {"config file", "get3w key", "abstrakt key", "journal", "ngrok authtoken"} <= set(checks)
    assert checks["get3w key"] == {"check": "get3w key", "ok": True, "detail": "****cdef",
                                   "source": "env GET3W_API_KEY"}
    assert checks["abstrakt key"]["ok"] is False
    assert SECRET not in with_key.stdout + with_key.stderr
    without = invoke("doctor", "--json")
    assert without.code == 3
    assert not any(c["ok"] for c in json.loads(without.stdout) if c["check"].endswith(" key"))


def test_reader_closing_stdout_is_not_an_internal_error(tmp_path: Path) -> None:
    """`g3w config list | head -0`: the reader left; g3w exits 0 quietly instead of reporting a bug."""
    from get3w_cli.config import write_config

    config = tmp_path / "c.toml"
    write_config(config, {"provider": "get3w", "defaults.via": "poll"})
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "config", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "G3W_CONFIG": str(config)})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before g3w writes anything: its first write meets a broken pipe
    _, stderr = proc.communicate(timeout=30)
    assert (proc.returncode, stderr) == (0, b"")


@pytest.mark.parametrize(("answer", "paths"), [
    ("download_url", ["/api/v3/files/upload"]),
    ("wavespeed", ["/api/v3/files/upload", "/api/v3/media/upload/binary"]),
])
def test_upload_and_at_file_inputs_take_a_download_url(tmp_path: Path, answer: str, paths: list[str]) -> None:
    """An upload answered with data.download_url (Get3W's path, or WaveSpeed's after a 404): `g3w
    upload` prints that URL, and `run -i KEY=@file` sends it as the input; it serves the file."""
    source = tmp_path / "photo.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\nnot really a picture")
    with ThreadedSandbox(duration=0.05, upload_answer=answer) as sb:
        env = sandbox_env(sb)
        uploaded = invoke("upload", str(source), "--json", env=env)
        run = invoke("run", "flux-dev", "-p", "x", "-i", f"image=@{source}", "--json", "--via", "poll",
                     "--poll-max", "0.2", env=env)
        assert uploaded.code == 0 and run.code == 0, (uploaded.stderr, run.stderr)
        url, image = json.loads(uploaded.stdout)["url"], json.loads(sb.sandbox.submissions()[0].body)["image"]
        served = [httpx.get(u).content for u in (url, image)]
        posts = [r.path for r in sb.sandbox.requests if r.method == "POST"]
    assert url.startswith(sb.base_url + "/cdn/uploads/") and image.startswith(sb.base_url + "/cdn/uploads/")
    assert served == [source.read_bytes()] * 2
    assert run.json()["input"]["image"] == image
    assert posts == [*paths, *paths, "/api/v3/get3w/flux-dev"]
