"""CI integrations (CONTRACT.md section 10, issue #12), through the real environment variables and
files a runner gives a step: $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY parsed the way GitHub parses
them, workflow commands on stderr, GitLab's sections and dotenv reports."""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import Result, ThreadedSandbox, sandbox_env, wait_until
from inproc import invoke

from get3w_cli.cli.ci import github_output_text
from get3w_cli.cli.ci_summary import SummaryTable

FAST = ("--poll-max", "0.2")
SECTION = re.compile(r"\x1b\[0Ksection_(start|end):(\d+):g3w_batch(\[collapsed=true\])?\r\x1b\[0K")


def parse_github_output(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: ``name=value``, or ``name<<DELIMITER`` then lines up
    to the one that is exactly the delimiter."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            values[line[:equals]] = line[equals + 1:]
            continue
        assert heredoc > 0, line
        name, delimiter = line[:heredoc], line[heredoc + 2:]
        body = []
        while lines[index] != delimiter:
            body.append(lines[index])
            index += 1
        index += 1
        values[name] = "\n".join(body)
    return values


def unescape(data: str) -> str:
    return data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def commands(stderr: str, name: str) -> list[str]:
    """The messages of the ``::name...::`` workflow commands on stderr, unescaped."""
    return [unescape(line.split("::", 2)[2]) for line in stderr.splitlines()
            if line.startswith((f"::{name}::", f"::{name} "))]


@pytest.fixture
def github(tmp_path: Path) -> dict[str, str]:
    """A GitHub Actions step's environment (files as a runner makes them)."""
    (tmp_path / "output").write_text("")
    (tmp_path / "summary").write_text("")
    return {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}


def outputs(env: dict[str, str]) -> dict[str, str]:
    return parse_github_output(Path(env["GITHUB_OUTPUT"]).read_text(encoding="utf-8"))


def summary(env: dict[str, str]) -> str:
    return Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")


# --- GitHub Actions: step outputs and summary ----------------------------------------------------------


def test_run_appends_its_outputs_and_a_summary(sandbox: ThreadedSandbox, github: dict[str, str],
                                               tmp_path: Path) -> None:
    """run -o: id, status, via, outputs, files and record (the record stdout printed, on many lines);
    a summary table row with the output as a link; stdout stays the record alone."""
    Path(github["GITHUB_OUTPUT"]).write_text("earlier=step\n")
    result = invoke("run", "flux-dev", "-p", "a cat", "--via", "poll", *FAST, "--json", "-o", str(tmp_path / "o"),
                    env={**sandbox_env(sandbox), **github})
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    values = outputs(github)
    assert values["earlier"] == "step"  # appended, as GitHub expects
    assert (values["id"], values["status"], values["via"]) == (record["id"], "completed", "poll")
    assert json.loads(values["outputs"]) == record["outputs"] and json.loads(values["files"]) == record["files"]
    assert "\n" in values["record"] and json.loads(values["record"]) == record
    text = summary(github)
    assert text.startswith("### g3w run\n")
    [row] = [line for line in text.splitlines() if record["id"] in line]
    assert "| get3w/flux-dev | completed |" in row and f"[output 0]({record['outputs'][0]})" in row
    assert "<img" not in row  # 127.0.0.1 is not public: a link, not an inline image


def test_a_record_is_read_back_whole_whatever_it_holds(sandbox: ThreadedSandbox, github: dict[str, str]) -> None:
    """A prompt holding lines that look like delimiters and ``name=value`` pairs is read back whole."""
    prompt = "line one\nEOF\nid=forged\nrecord<<EOF\nghadelimiter_x"
    result = invoke("run", "flux-dev", "-p", prompt, "--via", "poll", *FAST, "--json",
                    env={**sandbox_env(sandbox), **github})
    assert result.code == 0
    values = outputs(github)
    assert json.loads(values["record"])["input"]["prompt"] == prompt
    assert values["id"] == json.loads(result.stdout)["id"]


def test_the_delimiter_never_occurs_in_the_value() -> None:
    value = "\n".join(f"g3w_{i:032x}" for i in range(50)) + "\nend"
    text = github_output_text({"record": value, "id": "x"})
    assert parse_github_output(text) == {"record": value, "id": "x"}
    delimiter = text.split("\n", 1)[0].split("<<", 1)[1]
    assert delimiter not in value and len(delimiter) >= 32


def test_get_and_wait_and_a_failure_write_outputs_too(sandbox: ThreadedSandbox, github: dict[str, str]) -> None:
    """get and wait write the same outputs; a failed task's too (exit 1), with an ::error annotation."""
    env = {**sandbox_env(sandbox), **github}
    task_id = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_fail=boom", env=env).stdout.strip()
    waited = invoke("wait", task_id, *FAST, env=env)
    assert waited.code == 1
    assert (outputs(github)["id"], outputs(github)["status"]) == (task_id, "failed")
    assert commands(waited.stderr, "error") == [f"task {task_id} failed: boom"]
    assert f"::error title=g3w wait::task {task_id} failed" in waited.stderr
    Path(github["GITHUB_OUTPUT"]).write_text("")
    got = invoke("get", task_id, env=env)
    assert got.code == 1
    assert json.loads(outputs(github)["record"])["error"]["message"] == "boom"
    assert summary(github) == ""  # only run and batch write a summary


def test_an_error_is_annotated_with_its_hint(sandbox: ThreadedSandbox, github: dict[str, str]) -> None:
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", env={**sandbox_env(sandbox, "sk_invalid"), **github})
    assert result.code == 3
    [annotation] = [line for line in result.stderr.splitlines() if line.startswith("::error")]
    assert annotation.startswith("::error title=g3w run::HTTP 401")
    message = unescape(annotation.split("::", 2)[2])
    assert "\nHint: check the Get3W API key" in message
    assert outputs(github) == {}  # no task, nothing to say


def test_wait_for_several_writes_them_all(sandbox: ThreadedSandbox, github: dict[str, str]) -> None:
    """wait ID ID: ids and statuses in the arguments' order, the outputs in one array, the records as
    JSON Lines; every task's error is annotated."""
    env = {**sandbox_env(sandbox), **github}
    ids = [invoke("submit", "flux-dev", "-p", p, *extra, env=env).stdout.strip()
           for p, extra in (("a", ()), ("b", ()), ("c", ("-i", "sandbox_fail=one")), ("d", ("-i", "sandbox_fail=two")))]
    result = invoke("wait", *ids, *FAST, env=env)
    assert result.code == 1
    values = outputs(github)
    assert values["id"].split() == ids and values["status"] == "completed completed failed failed"
    assert len(json.loads(values["outputs"])) == 2
    assert [json.loads(line)["id"] for line in values["record"].splitlines()] == ids
    expected = {f"task {ids[2]} failed: one", f"task {ids[3]} failed: two"}
    assert sorted(commands(result.stderr, "error")) == sorted(expected)


# --- masks --------------------------------------------------------------------------------------------


def test_every_secret_is_masked_before_it_could_appear(sandbox: ThreadedSandbox, github: dict[str, str]) -> None:
    """The keys, the webhook secret, the authtoken and the callback token are announced with
    ::add-mask:: (in every form redact knows, escaped as GitHub asks) before g3w writes anything else."""
    key, secret, authtoken = "sk_live/Te+st:key%1=", "whsec_abcdef123", "ngrok_token_abc123"
    env = {**sandbox_env(sandbox, key), **github, "GET3W_WEBHOOK_SECRET": secret, "NGROK_AUTHTOKEN": authtoken,
           "ABSTRAKT_API_KEY": "sk_abstrakt_other"}
    result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "none", *FAST, env=env)
    assert result.code == 0, result.stderr
    masked = set(commands(result.stderr, "add-mask"))
    [post] = sandbox.sandbox.submissions()
    token = json.loads(post.body)["webhook_url"].rsplit("/", 1)[1]
    for value in (key, quote(key, safe=""), quote(key), secret, authtoken, "sk_abstrakt_other", token):
        assert value in masked, value
    lines = result.stderr.splitlines()
    first_talk = next(i for i, line in enumerate(lines) if not line.startswith("::"))
    settings_masks = [i for i, line in enumerate(lines) if line.startswith("::add-mask::")
                      and unescape(line[len("::add-mask::"):]) in (key, secret, authtoken)]
    assert max(settings_masks) < first_talk
    token_mask = next(i for i, line in enumerate(lines) if line == f"::add-mask::{token}")
    listening = next(i for i, line in enumerate(lines) if "listening for callbacks" in line)
    assert token_mask < listening
    assert result.stdout.startswith("http") and "::" not in result.stdout  # workflow commands stay off stdout


class PublicProxy:
    """The proxy a --public-url names: passes each request on to g3w's listener, whose port it
    reads from the listener's own debug line ("webhook listener on 127.0.0.1:PORT")."""

    def __init__(self) -> None:
        self.port: int | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def forward(self) -> None:
                port = wait_until(lambda: proxy.port, timeout=10)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, f"http://127.0.0.1:{port}{self.path}", content=body,
                                       headers=headers)
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        proxy_self = self

        class Spy(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                found = re.fullmatch(r"webhook listener on 127\.0\.0\.1:(\d+)", record.getMessage())
                if found:
                    proxy_self.port = int(found.group(1))

        self.spy = Spy()

    def __enter__(self) -> PublicProxy:
        logging.getLogger("g3w.webhooks").addHandler(self.spy)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("g3w.webhooks").removeHandler(self.spy)
        self.server.shutdown()
        self.server.server_close()


def test_a_public_callback_url_is_masked_whole(sandbox: ThreadedSandbox, github: dict[str, str]) -> None:
    """run --public-url: the whole callback URL (the proxy's URL and the token) is announced with
    ::add-mask:: before g3w says it listens, and it is the URL the provider was given."""
    with PublicProxy() as proxy:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--public-url", proxy.url,
                        "--debug", *FAST, env={**sandbox_env(sandbox), **github})
    assert result.code == 0, result.stderr
    [post] = sandbox.sandbox.submissions()
    callback = json.loads(post.body)["webhook_url"]
    assert callback.startswith(proxy.url + "/")
    lines = result.stderr.splitlines()
    url_mask = lines.index(f"::add-mask::{callback}")
    listening = next(i for i, line in enumerate(lines) if "listening for callbacks" in line)
    assert url_mask < listening
    assert json.loads(outputs(github)["record"])["via"] == "webhook"


def test_a_value_given_to_config_set_is_masked(github: dict[str, str]) -> None:
    """config set KEY - (the value piped in): the value is announced with ::add-mask:: before any
    other line, and never printed."""
    result = invoke("config", "set", "get3w.api_key", "-", input="sk_piped_secret_7\n", env=github)
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "::add-mask::sk_piped_secret_7"
    assert all("sk_piped_secret_7" not in line for line in lines[1:]) and result.stdout == ""


@pytest.mark.parametrize("command", [("submit",), ("run", "--no-wait")])
def test_submit_writes_the_step_outputs_of_the_task_it_created(sandbox: ThreadedSandbox, github: dict[str, str],
                                                                command: tuple[str, ...]) -> None:
    """submit and run --no-wait: id and status (created), an empty via, no outputs, the record."""
    result = invoke(command[0], "flux-dev", "-p", "x", *command[1:], "--json", env={**sandbox_env(sandbox), **github})
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    values = outputs(github)
    assert (values["id"], values["status"], values["via"]) == (record["id"], "created", "")
    assert (values["outputs"], values["files"]) == ("[]", "[]")
    assert json.loads(values["record"]) == record


@pytest.mark.parametrize("off", [("--no-ci",), ("env",)])
def test_no_ci_turns_it_all_off(sandbox: ThreadedSandbox, github: dict[str, str], off: tuple[str, ...]) -> None:
    env = {**sandbox_env(sandbox), **github, **({"G3W_CI": "0"} if off == ("env",) else {})}
    flags = () if off == ("env",) else off
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", *FAST, *flags, env=env)
    assert result.code == 0
    assert "::" not in result.stderr
    assert outputs(github) == {} and summary(github) == ""


# --- batch ---------------------------------------------------------------------------------------------


def batch_lines(n: int, *, failing: int = 0) -> str:
    lines = [{"model": "flux-dev", "input": {"prompt": f"p{i}", "sandbox_duration": 0,
                                            **({"sandbox_fail": True} if i < failing else {})}, "key": f"k{i}"}
             for i in range(n)]
    return "".join(json.dumps(line) + "\n" for line in lines)


def run_batch(sb: ThreadedSandbox, tmp_path: Path, env: dict[str, str], lines: str, *args: str) -> Result:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(lines)
    return invoke("batch", str(jobs), "--via", "poll", *FAST, "-j", "16", *args, env={**sandbox_env(sb), **env})


def test_batch_outputs_and_summary(sandbox: ThreadedSandbox, github: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = run_batch(sandbox, tmp_path, github, batch_lines(3, failing=1), "--out", str(out))
    assert result.code == 9
    assert outputs(github) == {"total": "3", "completed": "2", "failed": "1", "out": str(out)}
    text = summary(github)
    assert text.startswith("### g3w batch: 2 of 3 completed\n")
    rows = [line for line in text.splitlines() if re.match(r"\| k\d", line)]
    assert sorted(row.split(" | ")[0] for row in rows) == ["| k0", "| k1", "| k2"]
    assert sum("| failed |" in row for row in rows) == 1
    assert commands(result.stderr, "error") == [
        ("1 of 3 lines did not complete\nHint: each record's status and error say why; --resume waits again "
         "for timed-out tasks and submits lines that were never sent")]


def test_a_large_batch_summary_stays_under_the_limit(sandbox: ThreadedSandbox, github: dict[str, str],
                                                     tmp_path: Path) -> None:
    """A step summary already near GitHub's 1 MiB: the rows that fit, then how many were left out."""
    from get3w_cli.constants import GITHUB_SUMMARY_MAX_BYTES, GITHUB_SUMMARY_RESERVE_BYTES

    Path(github["GITHUB_STEP_SUMMARY"]).write_text("x" * (GITHUB_SUMMARY_MAX_BYTES - GITHUB_SUMMARY_RESERVE_BYTES
                                                          - 1200))
    result = run_batch(sandbox, tmp_path, github, batch_lines(40), "--out", str(tmp_path / "r.jsonl"))
    assert result.code == 0, result.stderr
    text = summary(github)
    rows = [line for line in text.splitlines() if re.match(r"\| k\d", line)]
    assert text.count("\n### g3w batch: 40 of 40 completed\n") == 1
    assert 0 < len(rows) < 40
    assert f"{40 - len(rows)} more rows left out" in text and "r.jsonl" in text
    assert len(text.encode()) <= GITHUB_SUMMARY_MAX_BYTES


def test_summary_shows_public_images_inline() -> None:
    table = SummaryTable(batch=False, budget=10_000)
    table.add({"id": "pred_1", "model": "m|x", "status": "completed", "elapsed_s": 75.0,
               "outputs": ["https://cdn.example.com/a.png", "https://cdn.example.com/b.mp4",
                           "http://127.0.0.1:9/c.png", "http://10.0.0.2/d.png", "https://x.example.com/a (1).png"]})
    markdown = table.markdown("g3w run")
    [row] = [line for line in markdown.splitlines() if "pred_1" in line]
    assert '<img src="https://cdn.example.com/a.png"' in row
    assert "[output 1](https://cdn.example.com/b.mp4)" in row
    assert "[output 2](http://127.0.0.1:9/c.png)" in row and "[output 3](http://10.0.0.2/d.png)" in row
    assert "https://x.example.com/a%20%281%29.png" in row
    assert "m\\|x" in row and "00h01m15s" in row


# --- GitLab CI ------------------------------------------------------------------------------------------


def test_gitlab_batch_progress_in_a_collapsible_section(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    result = run_batch(sandbox, tmp_path, {"GITLAB_CI": "true"}, batch_lines(2))
    assert result.code == 0, result.stderr
    found = [(m.group(1), m.group(3)) for m in SECTION.finditer(result.stderr)]
    assert found == [("start", "[collapsed=true]"), ("end", None)]
    starts = [int(m.group(2)) for m in SECTION.finditer(result.stderr)]
    assert starts[0] <= starts[1]
    assert "::" not in result.stderr  # no GitHub commands on GitLab


def parse_dotenv(text: str) -> dict[str, str]:
    """A dotenv report as GitLab takes it: KEY=value lines, nothing else (no blank lines, no comments)."""
    values = {}
    for line in text.split("\n")[:-1]:
        assert re.fullmatch(r"[A-Za-z0-9_]+=[^\n]*", line), line
        name, value = line.split("=", 1)
        values[name] = value
    assert text.endswith("\n") and len(text.encode()) <= 5 * 1024
    return values


def test_dotenv_report_from_run_and_batch(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    report = tmp_path / "g3w.env"
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", *FAST, "--json", "--dotenv", str(report),
                    env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    values = parse_dotenv(report.read_text())
    record = json.loads(result.stdout)
    assert (values["id"], values["status"], values["via"]) == (record["id"], "completed", "poll")
    assert json.loads(values["record"]) == record and json.loads(values["outputs"]) == record["outputs"]
    result = run_batch(sandbox, tmp_path, {}, batch_lines(2), "--dotenv", str(report))
    assert result.code == 0
    assert parse_dotenv(report.read_text()) == {"total": "2", "completed": "2", "failed": "0", "out": ""}


def test_dotenv_leaves_a_large_record_out(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    report = tmp_path / "g3w.env"
    result = invoke("run", "flux-dev", "-p", "x" * 6000, "--via", "poll", *FAST, "--dotenv", str(report),
                    env=sandbox_env(sandbox))
    assert result.code == 0
    values = parse_dotenv(report.read_text())
    assert "record" not in values and values["status"] == "completed"
    assert "left record out of the dotenv report" in result.stderr


def test_a_dotenv_that_cannot_be_written_exits_2_sending_nothing(sandbox: ThreadedSandbox, tmp_path: Path) -> None:
    for target in (tmp_path / "missing" / "g3w.env", tmp_path):
        result = invoke("run", "flux-dev", "-p", "x", "--dotenv", str(target), env=sandbox_env(sandbox))
        assert result.code == 2, result.stderr
        assert "--dotenv" in result.stderr
    assert sandbox.sandbox.requests == []
