"""Webhook scenarios of `g3w run` end to end: forged callbacks, duplicates, and the ngrok tunnel.

Every test runs the CLI against a sandbox on 127.0.0.1, in-process (a forger posts from a thread
of its own while the run waits), or in a subprocess where a signal is sent; tunnel tests drive
pyngrok against the stand-in agent in tests/fake_ngrok.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import fake_ngrok  # tests/fake_ngrok.py
import httpx
import pytest
from conftest import Result, ThreadedSandbox, said_until_submitted, sandbox_env, wait_until
from inproc import invoke

SECRET = "whsec_e2e"
SUBMITTED = re.compile(r"submitted (\S+) \(")
_T = TypeVar("_T")


def start_run(sb: ThreadedSandbox, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = dict(os.environ, **sandbox_env(sb), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "get3w_cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full)


def submitted_task(sb: ThreadedSandbox) -> tuple[str, str]:
    """The callback URL the CLI registered and the id of the task the sandbox made, once both exist."""
    wait_until(lambda: bool(sb.sandbox.submissions()) and bool(sb.call(_task_ids(sb))))
    [task_id] = sb.call(_task_ids(sb))
    return json.loads(sb.sandbox.submissions()[0].body)["webhook_url"], task_id


def while_running(sb: ThreadedSandbox, forger: Callable[[str, str], _T], *args: str,
                  env: dict[str, str] | None = None) -> tuple[Result, _T]:
    """``g3w run ARGS --json`` in-process; once it has submitted, ``forger(callback_url, task_id)``
    posts from a thread of its own while the run waits. Returns the run and what the forger returned."""
    with ThreadPoolExecutor(1) as pool:
        forging: Future[_T] = pool.submit(lambda: forger(*submitted_task(sb)))
        result = invoke("run", *args, "--json", env={**sandbox_env(sb), **(env or {})})
        return result, forging.result(timeout=30)


def finish(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[int, dict[str, Any] | None, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, (json.loads(out) if out.strip() else None), err


def forged(task_id: str) -> bytes:
    return json.dumps({"id": task_id, "model": "get3w/flux-dev", "status": "completed",
                       "outputs": ["https://evil.example/forged.png"]}).encode()


def test_forged_unsigned_completion_is_confirmed_and_ignored(tmp_path: Path) -> None:
    """No secret: a forged 'completed' is checked with one GET, found running, ignored; the real result wins.
    (A callback that beats the submit answer is held for the waiter, so the forger need not wait for it.)"""
    def forge(url: str, task_id: str) -> int:
        return httpx.post(url, content=forged(task_id)).status_code

    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result, status = while_running(sb, forge, "flux-dev", "-p", "x", "-i", "sandbox_duration=1.5",
                                       "--via", "webhook")
    assert status == 200  # a hint, acknowledged
    assert result.code == 0, result.stderr
    record = result.json()
    assert record["outputs"] and "evil" not in json.dumps(record["outputs"])
    assert record["via"] == "webhook"
    assert "ignored an unconfirmed callback" in result.stderr


def test_forged_callback_with_a_secret_gets_401_and_changes_nothing() -> None:
    """With a secret, a callback no configured secret verifies is 401, whatever provider it claims; the
    run says once that a signature was rejected, checks the task itself, and ends with the real result."""
    def forge(url: str, task_id: str) -> tuple[int, int, int]:
        bad = httpx.post(url, content=forged(task_id), headers={"X-Get3W-Signature": "0" * 64})
        unsigned = httpx.post(url, content=forged(task_id))
        claims = {"X-Abstrakt-Timestamp": str(int(time.time())), "X-Abstrakt-Signature": "0"}
        claims_abstrakt = httpx.post(url, content=forged(task_id), headers=claims)
        return bad.status_code, unsigned.status_code, claims_abstrakt.status_code

    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        result, statuses = while_running(sb, forge, "flux-dev", "-p", "x", "-i", "sandbox_duration=1.5",
                                         "--via", "webhook", env={"GET3W_WEBHOOK_SECRET": SECRET})
    assert statuses == (401, 401, 401)
    assert result.code == 0, result.stderr
    assert "evil" not in json.dumps(result.json()["outputs"])
    assert result.stderr.count("the webhook secret looks wrong") == 1
    assert "g3w.webhooks" not in result.stderr  # the listener itself prints nothing


def test_a_wrong_webhook_secret_costs_no_fallback_wait() -> None:
    """A wrong --webhook-secret: the genuine callback gets 401, g3w says so once and polls at once,
    instead of waiting out --fallback-after (60 s by default) with log lines over the progress."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        started = time.monotonic()
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--json", "--webhook-secret", "not-it",
                        "--timeout", "20s", env=sandbox_env(sb))
        elapsed = time.monotonic() - started
        rejected = [d.status_code for d in sb.sandbox.deliveries]
    assert result.code == 0, result.stderr
    assert result.json()["status"] == "completed" and result.json()["via"] == "poll"
    assert rejected and set(rejected) == {401}
    assert result.stderr.count("the webhook secret looks wrong") == 1
    assert "g3w.webhooks" not in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 15  # generous: nowhere near the 60 s fallback, nor the 20 s timeout


def test_wrong_token_gets_404_during_a_run() -> None:
    """A request to the listener without the token is 404 and does not end the wait."""
    def forge(url: str, task_id: str) -> int:
        return httpx.post(url.rsplit("/", 1)[0] + "/not-the-token", content=forged(task_id)).status_code

    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result, status = while_running(sb, forge, "flux-dev", "-p", "x", "-i", "sandbox_duration=1", "--via", "webhook")
    assert status == 404
    assert result.code == 0, result.stderr
    assert "evil" not in json.dumps(result.json()["outputs"])


def test_duplicate_deliveries_end_the_wait_once() -> None:
    """The sandbox sends each callback three times; the run completes once, with one API call."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET, webhook_duplicates=2) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--json",
                     env={**sandbox_env(sb), "GET3W_WEBHOOK_SECRET": SECRET})
        assert result.code == 0 and result.json()["via"] == "webhook"
        api = [r for r in sb.sandbox.requests if r.path.startswith(("/api/", "/v1/"))]
        # The model list (run's input check, then cached) and the submit: signed, so no confirming GET.
        assert [(r.method, r.path) for r in api] == [("GET", "/api/v3/models"), ("POST", "/api/v3/get3w/flux-dev")]


def _task_ids(sb: ThreadedSandbox) -> Any:
    async def ids() -> list[str]:
        return list(sb.sandbox._runtime.store.tasks)

    return ids()


# --- ngrok, through pyngrok and the stand-in agent ---------------------------------------------


def ngrok_env(tmp_path: Path, mode: str, version: str = fake_ngrok.CURRENT) -> dict[str, str]:
    state = tmp_path / f"agents-{mode}"
    state.mkdir(exist_ok=True)
    return {"NGROK_PATH": fake_ngrok.install(str(tmp_path), mode=mode, state_dir=str(state), version=version),
            "NGROK_AUTHTOKEN": "fake-token-123"}


def live_agents(tmp_path: Path, mode: str) -> list[int]:
    """Stand-in agents still running (each start leaves <pid>.pid; zombies do not count)."""
    alive = []
    for pid_file in (tmp_path / f"agents-{mode}").glob("*.pid"):
        stat = Path(f"/proc/{pid_file.stem}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z":
            alive.append(int(pid_file.stem))
    return alive


@pytest.mark.parametrize("version", [fake_ngrok.CURRENT, fake_ngrok.TUNNELS_ONLY])
def test_run_through_an_ngrok_tunnel(tmp_path: Path, version: str) -> None:
    """--tunnel auto with an authtoken: the callback travels the tunnel, whichever agent API the agent's
    release has (pyngrok 9 defaults to the one added in 3.30); the agent is gone afterwards."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        env = {**sandbox_env(sb), **ngrok_env(tmp_path, "ok", version), "GET3W_WEBHOOK_SECRET": SECRET}
        result = invoke("run", "flux-dev", "-p", "x", "--json", env=env)
        webhook_url = json.loads(sb.sandbox.submissions()[0].body)["webhook_url"]
        # The sandbox records the attempt once it has read the answer, which may be after the run exits.
        wait_until(lambda: [d for d in sb.sandbox.deliveries if d.url == webhook_url])
    assert result.code == 0, result.stderr
    # Signed, and posted only to the agent's public URL: it reached the listener through the tunnel.
    # (Whether the sandbox then read the 200 depends on the agent outliving the run by a moment:
    # pyngrok kills it with SIGKILL.)
    assert result.json()["via"] == "webhook"
    assert {d.url for d in sb.sandbox.deliveries} == {webhook_url}
    assert list((tmp_path / "agents-ok").glob("*.pid"))  # an agent was started
    assert live_agents(tmp_path, "ok") == []  # and is gone


def test_an_ngrok_session_lost_during_the_wait_is_said_once_and_the_run_polls_at_once(tmp_path: Path) -> None:
    """The agent loses its session (the network went away) while the task runs: the run says so
    once, in the agent's words, and polls at once; with --fallback-after 10m it would otherwise
    wait far past this test's 60 s."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        proc = start_run(sb, "flux-dev", "-p", "x", "-i", "sandbox_duration=4", "--json", "--via", "webhook",
                         "--fallback-after", "10m", "--poll-max", "0.2",
                         env={**ngrok_env(tmp_path, "ok"), "GET3W_WEBHOOK_SECRET": SECRET})
        wait_until(lambda: bool(sb.sandbox.submissions()))  # the tunnel was checked before the submit
        [agent] = live_agents(tmp_path, "ok")
        os.kill(agent, signal.SIGUSR1)
        code, record, err = finish(proc, timeout=60)
    assert code == 0, err
    assert record is not None and record["via"] == "poll"
    assert err.count("lost the ngrok tunnel: ") == 1 and "session closing" in err
    assert live_agents(tmp_path, "ok") == []


@pytest.mark.parametrize("mode", ["session_limit", "auth_failed", "crash", "unreachable"])
def test_tunnel_failures_fall_back_to_polling_under_auto(tmp_path: Path, mode: str) -> None:
    """Under --via auto each classified ngrok failure warns and polls; nothing is left running."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--json", "--poll-max", "0.2",
                     env={**sandbox_env(sb), **ngrok_env(tmp_path, mode)})
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "poll"
    assert "falling back to polling" in result.stderr
    assert live_agents(tmp_path, mode) == []


@pytest.mark.parametrize(("mode", "words"), [("session_limit", "ERR_NGROK_108"), ("auth_failed", "authtoken"),
                                             ("unreachable", "reach")])
def test_tunnel_failures_exit_7_under_via_webhook_before_paying(tmp_path: Path, mode: str, words: str) -> None:
    """Under --via webhook a tunnel failure exits 7 with a hint, and no task was submitted."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook",
                        env={**sandbox_env(sb), **ngrok_env(tmp_path, mode)})
        assert sb.sandbox.submissions() == []
    assert result.code == 7
    assert words.lower() in result.stderr.lower() and "Hint:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("mode", "code", "hint"), [
    ("credential_revoked", "ERR_NGROK_300", "ngrok rejected the authtoken"),
    ("no_token", "ERR_NGROK_4018", "ngrok rejected the authtoken"),
    ("v1_token", "ERR_NGROK_106", "ngrok rejected the authtoken"),
    ("unsupported", "ERR_NGROK_120", "ngrok's service wants a newer agent"),
    ("update_required", "ERR_NGROK_121", "ngrok's service wants a newer agent"),
])
def test_the_services_refusals_exit_7_with_their_code_and_hint(tmp_path: Path, mode: str, code: str,
                                                                hint: str) -> None:
    """ngrok's service refuses the session (revoked credential, unverified account, v1 token, agent too
    old for it): `run --via webhook --tunnel ngrok` exits 7 before paying, with the code in the agent's
    words (one line, the token masked) and the hint of its kind; no agent is left running."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        env = {**sandbox_env(sb), **ngrok_env(tmp_path, mode)}
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "ngrok", env=env)
        assert sb.sandbox.submissions() == []
    assert result.code == 7, result.stderr
    error, _, hint_line = result.stderr.partition("Hint:")
    assert code in error and hint in hint_line, result.stderr
    assert env["NGROK_AUTHTOKEN"] not in result.stderr and "\\r" not in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert live_agents(tmp_path, mode) == []


def test_missing_ngrok_binary_exits_7_with_install_hint(tmp_path: Path) -> None:
    """--tunnel ngrok with no binary: exit 7, say how to install it or set NGROK_PATH."""
    with ThreadedSandbox(duration=0.05) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "ngrok",
                     env={**sandbox_env(sb), "NGROK_PATH": str(tmp_path / "no-ngrok"), "NGROK_AUTHTOKEN": "t"})
        assert sb.sandbox.submissions() == []
    assert result.code == 7 and "NGROK_PATH" in result.stderr


def test_no_authtoken_with_tunnel_ngrok_exits_7(tmp_path: Path) -> None:
    """--tunnel ngrok --via webhook without an authtoken: exit 7 before anything is sent."""
    with ThreadedSandbox(duration=0.05) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "ngrok", env=sandbox_env(sb))
        assert sb.sandbox.submissions() == []
    assert result.code == 7 and "NGROK_AUTHTOKEN" in result.stderr


def test_ctrl_c_closes_the_tunnel_and_the_agent(tmp_path: Path) -> None:
    """SIGINT during a tunnelled wait: exit 130, the id printed, and no ngrok agent left behind."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        proc = start_run(sb, "flux-dev", "-p", "x", "-i", "sandbox_duration=30", env=ngrok_env(tmp_path, "ok"))
        seen = said_until_submitted(proc)
        assert live_agents(tmp_path, "ok"), seen
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc)
    assert code == 130 and "g3w wait" in err
    assert live_agents(tmp_path, "ok") == []


def test_an_agent_too_old_for_pyngrok_warns_and_polls_or_exits_7(tmp_path: Path) -> None:
    """An agent 2.x: under auto one warning with its version, then polling; under --via webhook exit 7."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        env = {**sandbox_env(sb), **ngrok_env(tmp_path, "ok", fake_ngrok.V2_AGENT)}
        auto = invoke("run", "flux-dev", "-p", "x", "--json", "--poll-max", "0.2", env=env)
        strict = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", env=env)
        assert len(sb.sandbox.submissions()) == 1  # only the run that polled paid
    assert auto.code == 0 and auto.json()["via"] == "poll"
    assert "2.3.41" in auto.stderr and "falling back to polling" in auto.stderr
    assert strict.code == 7 and "2.3.41" in strict.stderr and "update" in strict.stderr
    assert list((tmp_path / "agents-ok").glob("*.pid")) == []  # never started


# --- "done when" (issue 10): a fresh install in a venv on PATH, no agent, no network ----------------

_POINT_PYNGROK = """
from pyngrok import installer
for key in installer.PLATFORMS:
    installer.PLATFORMS[key] = {url!r}
"""


def venv_without_network(tmp_path: Path, url: str) -> dict[str, str]:
    """A venv's bin/ first on PATH, holding pyngrok's console script (and no agent anywhere), and
    pyngrok's download table pointed at ``url`` in the g3w process (a sitecustomize of the test's)."""
    from test_ngrok_agent import pyngrok_script

    venv_bin = pyngrok_script(tmp_path / "venv" / "bin", tmp_path / "pyngrok-script-ran").parent
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_POINT_PYNGROK.format(url=url))
    return {"PATH": os.pathsep.join([str(venv_bin), "/usr/bin", "/bin"]), "NGROK_AUTHTOKEN": "2fakeToken_abc",
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_fresh_venv_no_network_one_line_then_polls_or_exits_7(tmp_path: Path) -> None:
    """The issue's "done when": `g3w run flux-dev -p x --sandbox --tunnel ngrok` in a venv on PATH,
    NGROK_AUTHTOKEN set, no network (pyngrok's download refused): one clear line, no traceback,
    exit 0 by polling; with --via webhook exit 7. pyngrok's script is never taken for the agent,
    nor run; nothing on stdout but data."""
    import socket

    from conftest import g3w

    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
    try:
        url = f"http://127.0.0.1:{refusing.getsockname()[1]}/ngrok-v3-stable-linux-amd64.tgz"
        env = venv_without_network(tmp_path, url)
        auto = g3w("run", "flux-dev", "-p", "x", "--sandbox", "--tunnel", "ngrok", "--json", env=env)
        strict = g3w("run", "flux-dev", "-p", "x", "--sandbox", "--tunnel", "ngrok", "--via", "webhook", env=env)
    finally:
        refusing.close()
    for result in (auto, strict):
        assert "Traceback" not in result.stderr and "\\r" not in result.stderr
        about_ngrok = [line for line in result.stderr.splitlines() if "ngrok" in line and not line.startswith("Hint:")]
        assert len(about_ngrok) == 1, result.stderr
        assert "could not install the ngrok agent" in about_ngrok[0] and "Connection refused" in about_ngrok[0]
    assert auto.code == 0, auto.stderr
    assert auto.json()["status"] == "completed" and auto.json()["via"] == "poll"
    assert "falling back to polling" in auto.stderr
    assert strict.code == 7 and strict.stdout == ""
    assert strict.stderr.startswith("Error: ") and "Hint: " in strict.stderr
    assert not (tmp_path / "pyngrok-script-ran").exists()
    assert not (tmp_path / "home" / ".config" / "ngrok" / "ngrok").exists()


def test_pyngrok_installs_the_agent_and_the_run_completes_by_webhook(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No agent on PATH (only pyngrok's script): pyngrok installs it at its default location, g3w says
    so in one line, and the callback travels the tunnel through the installed agent."""
    from test_ngrok_agent import Cdn, point_pyngrok_at, pyngrok_script

    state = tmp_path / "agents"
    state.mkdir()
    cdn = Cdn()
    cdn.thread.start()
    try:
        archive = Path(fake_ngrok.archive(str(tmp_path / "agent.tgz"), state_dir=str(state))).read_bytes()
        point_pyngrok_at(monkeypatch, cdn.serve(archive))
        venv_bin = pyngrok_script(tmp_path / "venv" / "bin", tmp_path / "ran").parent
        target = tmp_path / "agent-home" / "ngrok"
        with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
            env = {**sandbox_env(sb), "PATH": str(venv_bin), "PYNGROK_NGROK_PATH": str(target),
                   "NGROK_AUTHTOKEN": "2fakeToken_abc", "GET3W_WEBHOOK_SECRET": SECRET}
            result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--json", env=env)
    finally:
        cdn.server.shutdown()
        cdn.server.server_close()
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "webhook"
    installed = [line for line in result.stderr.splitlines() if "installed the ngrok agent" in line]
    assert len(installed) == 1 and str(target) in installed[0]
    assert target.is_file() and len(cdn.requests) == 1
    assert list(state.glob("*.pid")) and not (tmp_path / "ran").exists()
