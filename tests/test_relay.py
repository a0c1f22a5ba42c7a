"""The relay (CONTRACT 8): one listener and one tunnel that every g3w process on the machine borrows.

In-process tests drive the relay's server and a borrower's link over real sockets on 127.0.0.1;
CLI tests run ``g3w run`` in-process against a relay serving from a thread; the end-to-end tests
run real processes: a detached ``g3w relay`` with a stand-in ngrok agent that allows one session,
eight ``g3w run``s at once, kill -9 of the relay mid-wait, kill -9 of a borrower.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import fake_ngrok  # tests/fake_ngrok.py
import httpx
import pytest
from conftest import ThreadedSandbox, g3w, sandbox_env, wait_until
from inproc import invoke
from test_webhook_e2e import finish, start_run

from get3w_cli.callbacks import ChannelOptions
from get3w_cli.callbacks.choices import relay_allowed, usable_relay
from get3w_cli.errors import TunnelError
from get3w_cli.webhooks.endpoint import CallbackEndpoint
from get3w_cli.webhooks.inbox import Inbox
from get3w_cli.webhooks.listener import CallbackListener, check_reachable
from get3w_cli.webhooks.relay import RelayServer
from get3w_cli.webhooks.relay_client import RelayLink
from get3w_cli.webhooks.relay_state import RelayInfo, control, describe, read_info, relay_lock, write_info
from get3w_cli.webhooks.signatures import sign_get3w

SECRET = "whsec_relay"
CONTROL_SECRET = "c" * 43


def body(task_id: str = "pred_r1", status: str = "completed") -> bytes:
    return json.dumps({"id": task_id, "model": "get3w/flux-dev", "status": status,
                       "outputs": ["https://cdn.example/a.png"]}).encode()


def info_of(server: RelayServer, secret: str = CONTROL_SECRET, public: str | None = None) -> RelayInfo:
    return RelayInfo(pid=os.getpid(), local_url=server.local_url, public_url=public or server.local_url,
                     control_port=server.control_port, tunnel="local", started_at="now", secret=secret)


async def post(url: str, data: bytes, headers: list[tuple[str, str]] | None = None,
               method: str = "POST") -> tuple[int, Any]:
    payload = io.BytesIO(data) if len(data) > 2**20 else data  # aiohttp warns on big bytes
    async with aiohttp.ClientSession() as session, session.request(method, url, data=payload,
                                                                  headers=headers or []) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


@contextlib.asynccontextmanager
async def relay_with_borrower(secrets: dict[str, str] | None = None, **server_kwargs: Any
                              ) -> Any:
    """A relay serving, and one borrower registered with it: (server, link, inbox)."""
    server = RelayServer(secret=CONTROL_SECRET, **server_kwargs)
    await server.start()
    inbox = Inbox()
    link = RelayLink(info_of(server), CallbackEndpoint(inbox, secrets=secrets))
    try:
        await link.open()
        yield server, link, inbox
    finally:
        await link.close()
        await server.close()


# --- the relay and a borrower, in-process ---------------------------------------------------------


def test_a_delivery_is_answered_by_its_borrower_exactly_as_its_own_listener_would() -> None:
    """The same requests (signed, badly signed, duplicated, not JSON) sent to a listener and through
    the relay get the same answers, and the same deliveries reach the inbox: raw body and headers."""
    signed = body()
    cases: list[tuple[bytes, list[tuple[str, str]]]] = [
        (signed, [("X-Get3W-Signature", sign_get3w(SECRET, signed)), ("X-Custom", "a"), ("x-custom", "b")]),
        (signed, [("X-Get3W-Signature", sign_get3w(SECRET, signed))]),  # a duplicate
        (body("pred_r2"), [("X-Get3W-Signature", "0" * 64)]),  # a forgery
        (b"not json", []),
    ]

    async def send_all(url: str, inbox: Inbox) -> tuple[list[tuple[int, Any]], Any]:
        answers = [await post(url + "/hooks/get3w", data, headers) for data, headers in cases]
        delivery = inbox.take("pred_r1")
        assert inbox.take("pred_r1") is None
        assert delivery is not None
        seen = {k: v for k, v in delivery.headers.items() if k.lower() != "host"}
        return answers, (delivery.body, seen, delivery.verified, inbox.rejected_signatures)

    async def main() -> tuple[Any, Any]:
        direct_inbox = Inbox()
        async with CallbackListener(direct_inbox, secrets={"get3w": SECRET}) as listener:
            direct = await send_all(listener.local_url, direct_inbox)
        async with relay_with_borrower({"get3w": SECRET}) as (server, link, inbox):
            relayed = await send_all(link.endpoint.callback_url(server.local_url), inbox)
            assert link.endpoint.stats.accepted == 1 and link.endpoint.stats.duplicates == 1
        return direct, relayed

    direct, relayed = asyncio.run(main())
    assert relayed == direct
    answers, (raw, headers, verified, rejected) = relayed
    assert [status for status, _ in answers] == [200, 200, 401, 400]
    assert answers[1][1].get("duplicate") is True
    assert raw == signed and verified and rejected == 1
    assert "x-custom" in {name.lower() for name in headers}  # every header, as the listener's handler sees them


def test_tokens_nobody_holds_get_404_and_a_closed_link_leaves_nothing() -> None:
    async def main() -> None:
        async with relay_with_borrower() as (server, link, inbox):
            url = link.endpoint.callback_url(server.local_url)
            assert (await post(server.local_url + "/not-a-token", body()))[0] == 404
            assert (await post(url + "x", body()))[0] == 404
            assert (await post(url, body()))[0] == 200 and inbox.pending("pred_r1") == 1
            assert server.clients == 1 and server.holds(link.endpoint.token)
            await link.close()
            wait = asyncio.get_running_loop().time() + 5
            while server.holds(link.endpoint.token):  # the relay sees the connection close
                assert asyncio.get_running_loop().time() < wait
                await asyncio.sleep(0.01)
            assert (await post(url, body("pred_r9")))[0] == 404 and server.clients == 0
            assert not link.lost.done()  # closed by us: not a loss

    asyncio.run(main())


def test_large_deliveries_pass_and_oversized_ones_get_413() -> None:
    """Up to the listener's 10 MiB limit a delivery passes whole; beyond it the relay answers 413."""
    padded = json.dumps({"id": "pred_big", "status": "completed", "outputs": [], "pad": "x" * (9 * 2**20)}).encode()

    async def main() -> tuple[int, int, bytes]:
        async with relay_with_borrower() as (server, link, inbox):
            url = link.endpoint.callback_url(server.local_url)
            ok = (await post(url, padded))[0]
            too_big = (await post(url, b"{" + b" " * (10 * 2**20) + b"}"))[0]
            delivery = inbox.take("pred_big")
            assert delivery is not None
            return ok, too_big, delivery.body

    ok, too_big, received = asyncio.run(main())
    assert (ok, too_big) == (200, 413) and received == padded


def test_the_probe_reaches_a_borrower_through_the_relay() -> None:
    async def main() -> None:
        async with relay_with_borrower() as (server, link, _):
            await check_reachable(server.local_url, link.endpoint, timeout=5)
            assert len(link.endpoint.probes) == 1

    asyncio.run(main())


def test_the_control_port_needs_the_secret_and_takes_each_token_once() -> None:
    async def main() -> list[str]:
        async with relay_with_borrower() as (server, link, _):
            failures = []
            wrong = info_of(server, secret="w" * 43)
            with pytest.raises(TunnelError) as caught:
                await asyncio.to_thread(control, wrong, "GET", "/status")
            failures.append(caught.value.message)
            for endpoint, who in ((CallbackEndpoint(Inbox()), wrong), (link.endpoint, info_of(server)),
                                  (CallbackEndpoint(Inbox(), token="short"), info_of(server))):
                with pytest.raises(TunnelError) as caught:
                    await RelayLink(who, endpoint).open()
                failures.append(caught.value.message)
            assert (await asyncio.to_thread(control, info_of(server), "GET", "/status"))["clients"] == 1
            return failures

    messages = asyncio.run(main())
    assert ["HTTP 401" in m for m in messages] == [True, True, False, False]
    assert "HTTP 409" in messages[2] and "HTTP 400" in messages[3]


def test_a_relay_that_closes_tells_its_borrowers_why() -> None:
    async def main() -> str:
        async with relay_with_borrower() as (server, link, _):
            await server.close("the relay's tunnel dropped (test)")
            return await asyncio.wait_for(link.lost, 5)

    assert asyncio.run(main()) == "the relay's tunnel dropped (test)"


def test_a_borrower_that_does_not_answer_costs_the_sender_a_504_not_a_hang() -> None:
    async def main() -> int:
        server = RelayServer(secret=CONTROL_SECRET, reply_timeout=0.3)
        await server.start()
        token = "t" * 32
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(
                    f"http://127.0.0.1:{server.control_port}/connect", params={"token": token},
                    headers={"Authorization": f"Bearer {CONTROL_SECRET}"}):  # registered, never answers
                return (await post(f"{server.local_url}/{token}", body()))[0]
        finally:
            await server.close()

    assert asyncio.run(main()) == 504


# --- when a relay is borrowed -------------------------------------------------------------------


def test_the_flags_that_keep_a_run_off_the_relay() -> None:
    base = ChannelOptions(relay_dir="/x")
    assert relay_allowed(base)
    for changed in (ChannelOptions(relay_dir="/x", no_relay=True), ChannelOptions(relay_dir="/x", listen_port=8000),
                    ChannelOptions(relay_dir="/x", public_url="https://h.example"),
                    ChannelOptions(relay_dir="/x", tunnel="none"), ChannelOptions()):
        assert not relay_allowed(changed)


class ThreadedRelay:
    """A relay serving from a thread, described in G3W_HOME as ``g3w relay`` would (lock held)."""

    def __init__(self, folder: Path, public: str | None = None) -> None:
        self.folder, self.public = folder, public
        self.loop = asyncio.new_event_loop()
        self.server = RelayServer(secret=CONTROL_SECRET)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._lock = contextlib.ExitStack()

    def __enter__(self) -> ThreadedRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self._lock.enter_context(relay_lock(self.folder))
        write_info(self.folder, info_of(self.server, public=self.public))
        return self

    def close(self, reason: str = "the relay stopped") -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(reason), self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._lock.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def home() -> Path:
    return Path(os.environ["G3W_HOME"])


def registered_url(sb: ThreadedSandbox, index: int = 0) -> str:
    return str(json.loads(sb.sandbox.submissions()[index].body)["webhook_url"])


def test_a_run_borrows_the_running_relay_and_the_flags_keep_it_off() -> None:
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb, \
            ThreadedRelay(home()) as relay:
        env = {**sandbox_env(sb), "GET3W_WEBHOOK_SECRET": SECRET}
        borrowed = invoke("run", "flux-dev", "-p", "x", "--json", "--via", "webhook", env=env)
        own = invoke("run", "flux-dev", "-p", "x", "--json", "--via", "webhook", "--no-relay", env=env)
        local = invoke("run", "flux-dev", "-p", "x", "--json", "--via", "webhook", "--tunnel", "none", env=env)
        urls = [registered_url(sb, i) for i in range(3)]
        forwarded = relay.server.forwarded
    for result in (borrowed, own, local):
        assert result.code == 0 and result.json()["via"] == "webhook", result.stderr
    assert urls[0].startswith(relay.server.local_url + "/") and "(through the relay)" in borrowed.stderr
    assert not urls[1].startswith(relay.server.local_url) and not urls[2].startswith(relay.server.local_url)
    assert forwarded == 2  # the borrower's probe and its callback; nothing of the other two


def test_a_batch_borrows_the_relay_too(tmp_path: Path) -> None:
    """One registration for the whole batch, every line's callback through the relay."""
    from test_batch import batch, make_lines, read_records, write

    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb, ThreadedRelay(home()) as relay:
        result = batch(sb, str(write(tmp_path / "t.jsonl", make_lines(12))), "-j", "4", "--via", "webhook")
        urls = {d.url for d in sb.sandbox.deliveries}
    assert result.code == 0, result.stderr
    assert all(r["via"] == "webhook" for r in read_records(result.stdout))
    assert len(urls) == 1 and next(iter(urls)).startswith(relay.server.local_url + "/")
    assert result.stderr.count("(through the relay)") == 1


def test_a_relay_without_a_tunnel_is_not_borrowed_for_a_remote_provider() -> None:
    """A relay whose URL is on this machine cannot serve a provider elsewhere: not borrowed."""
    with ThreadedRelay(home()) as relay:
        remote = ChannelOptions(relay_dir=str(home()), provider_urls=("https://api.get3w.com",))
        local = ChannelOptions(relay_dir=str(home()), provider_urls=("http://127.0.0.1:9",))
        assert usable_relay(remote) is None
        found = usable_relay(local)
        assert found is not None and found.control_port == relay.server.control_port
    assert usable_relay(local) is None  # gone: its lock is free, its relay.json is stale


def test_a_relay_that_does_not_answer_costs_one_warning_and_the_next_choice(tmp_path: Path) -> None:
    """relay.json names a relay that holds the lock but whose control port refuses connections: one
    warning, then the run's own listener (the sandbox is local) under auto; exit 7 for a remote
    provider under --via webhook, before anything is sent."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused while we hold it
    dead = RelayInfo(pid=os.getpid(), local_url="http://127.0.0.1:9", public_url="http://127.0.0.1:9",
                     control_port=held.getsockname()[1], tunnel="local", started_at="now", secret=CONTROL_SECRET)
    try:
        with relay_lock(home()), ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
            write_info(home(), dead)
            local = invoke("run", "flux-dev", "-p", "x", "--json", "--via", "webhook", env=sandbox_env(sb))
            write_info(home(), RelayInfo(**{**dead.as_json(), "public_url": "https://relay.example"}))
            remote = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "auto",
                            env={"GET3W_API_KEY": "k", "GET3W_BASE_URL": "https://api.get3w.invalid"})
    finally:
        held.close()
    assert local.code == 0 and local.json()["via"] == "webhook", local.stderr
    assert local.stderr.count("not using the relay") == 1 and "does not answer" in local.stderr
    assert remote.code == 7 and "does not answer" in remote.stderr and "--no-relay" in remote.stderr


def test_relay_json_is_private_and_a_second_relay_is_refused() -> None:
    with ThreadedRelay(home()):
        mode = stat.S_IMODE((home() / "relay.json").stat().st_mode)
        second = invoke("relay", "--tunnel", "none")
        status = invoke("relay", "status", "--json")
    assert mode == 0o600
    assert second.code == 2 and "already running" in second.stderr
    report = json.loads(status.stdout)
    assert status.code == 0 and report["alive"] is True and report["clients"] == 0 and "secret" not in report
    gone = invoke("relay", "status", "--json")
    assert gone.code == 1 and json.loads(gone.stdout) == {"alive": False}
    assert not (home() / "relay.json").exists()  # the stale description was removed


# --- real processes --------------------------------------------------------------------------------

ONE_SESSION = """\
#!{python}
# A stand-in ngrok account that allows one agent session at a time: the first agent holds a lock
# for its life; another started meanwhile fails as ngrok does (ERR_NGROK_108).
import fcntl, os, sys
lock = os.open({lock!r}, os.O_RDWR | os.O_CREAT)
if sys.argv[1:2] == ["start"]:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.environ["FAKE_NGROK_MODE"] = "ok"
    except BlockingIOError:
        os.environ["FAKE_NGROK_MODE"] = "session_limit"
    os.set_inheritable(lock, True)
os.environ["FAKE_NGROK_STATE"] = {state!r}
os.execv(sys.executable, [sys.executable, {agent!r}, *sys.argv[1:]])
"""


def one_session_ngrok(tmp_path: Path) -> tuple[str, Path]:
    """An ngrok that allows a single session; returns (its path, the folder of its agents' pid files)."""
    state = tmp_path / "agents"
    state.mkdir()
    path = tmp_path / "ngrok-one-session"
    path.write_text(ONE_SESSION.format(python=sys.executable, lock=str(tmp_path / "session.lock"),
                                       state=str(state), agent=fake_ngrok.__file__))
    path.chmod(0o755)
    return str(path), state


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def detached_relay(*args: str, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``g3w relay --detach ARGS --json``; stopped (or killed) afterwards, whatever happened."""
    started = g3w("relay", "--detach", "--json", *args, env=env, timeout=90)
    assert started.code == 0, (started.stderr, (home() / "relay.log").read_text())
    about = json.loads(started.stdout)
    try:
        yield about
    finally:
        if alive(about["pid"]):
            g3w("relay", "stop", env=env, timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.kill(about["pid"], signal.SIGKILL)


def start_runs(sb: ThreadedSandbox, count: int, *args: str, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    return [start_run(sb, "flux-dev", "-p", f"task {i}", "--via", "webhook", "--json", *args, env=env)
            for i in range(count)]


def test_eight_parallel_runs_share_one_relay_and_one_ngrok_session(tmp_path: Path) -> None:
    """Eight `g3w run --via webhook` at once, an ngrok account that allows one session: all of
    them get their result by webhook, through the relay's one tunnel (one agent ever started)."""
    ngrok_path, agents = one_session_ngrok(tmp_path)
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        env = {"NGROK_PATH": ngrok_path, "NGROK_AUTHTOKEN": "tok-relay", "GET3W_WEBHOOK_SECRET": SECRET}
        with detached_relay("--tunnel", "ngrok", env=env) as about:
            public = about["public_url"]
            runs = start_runs(sb, 8, "-i", "sandbox_duration=0.5", env=env)
            results = [finish(proc, timeout=120) for proc in runs]
            urls = [registered_url(sb, i) for i in range(8)]
            stopped = g3w("relay", "stop", env=env)
        agent_pids = [int(p.stem) for p in agents.glob("*.pid")]
    for code, record, err in results:
        assert code == 0 and record is not None and record["via"] == "webhook", err
        assert "(through the relay)" in err
    assert all(url.startswith(public + "/") for url in urls) and len(set(urls)) == 8
    assert len(agent_pids) == 1  # the relay's: no run opened a tunnel of its own
    assert stopped.code == 0 and not (home() / "relay.json").exists()
    wait_until(lambda: not alive(agent_pids[0]))  # the relay closed its tunnel on the way out


def test_kill_9_of_the_relay_mid_wait_costs_only_speed() -> None:
    """Eight runs wait through the relay; it is killed with SIGKILL: each says so once and completes
    by polling at once (not after the 60 s fallback)."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        with detached_relay("--tunnel", "none", env={}) as about:
            runs = start_runs(sb, 8, "-i", "sandbox_duration=4", "--poll-max", "0.5", env={})
            # every run submitted (so its check through the relay passed) and waits, registered
            wait_until(lambda: len(sb.sandbox.submissions()) == 8 and describe(home()).get("clients") == 8, timeout=60)
            os.kill(about["pid"], signal.SIGKILL)
            begun = time.monotonic()
            results = [finish(proc, timeout=60) for proc in runs]
            elapsed = time.monotonic() - begun
    for code, record, err in results:
        assert code == 0 and record is not None and record["via"] == "poll", err
        assert err.count("lost the relay: the connection to the relay closed; polling") == 1
        assert "Traceback" not in err
    assert elapsed < 40  # generous; the fallback would be 60 s
    assert describe(home()) == {"alive": False}


def test_a_borrower_killed_with_sigkill_leaves_no_registration() -> None:
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb, detached_relay("--tunnel", "none", env={}):
        [run] = start_runs(sb, 1, "-i", "sandbox_duration=30", env={})
        try:
            wait_until(lambda: describe(home()).get("clients") == 1 and bool(sb.sandbox.submissions()), timeout=60)
            url = registered_url(sb)
        finally:
            run.kill()
            run.communicate(timeout=30)
        wait_until(lambda: describe(home()).get("clients") == 0)
        assert httpx.post(url, content=body()).status_code == 404


def test_a_relay_whose_tunnel_drops_says_so_and_exits_7(tmp_path: Path) -> None:
    """The relay's quick tunnel loses Cloudflare's edge after its check: the relay tells its
    borrowers, removes relay.json and exits 7 with the tunnel's own words."""
    import fake_cloudflared

    state = tmp_path / "cf"
    state.mkdir()
    path = fake_cloudflared.install(str(tmp_path), mode="drop", state_dir=str(state))
    result = g3w("relay", "--tunnel", "cloudflared", env={"CLOUDFLARED_PATH": path}, timeout=90)
    assert result.code == 7, result.stderr
    assert "the cloudflared tunnel dropped" in result.stderr and "no recent network activity" in result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")  # it had come up, and said where
    assert not (home() / "relay.json").exists()
    [pid_file] = state.glob("*.pid")
    assert not alive(int(pid_file.stem))


def test_ctrl_c_stops_a_foreground_relay_as_a_server_stops() -> None:
    """Ctrl-C is how a relay in the foreground is stopped: exit 130, "relay stopped", no error line."""
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "relay", "--tunnel", "none"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "relay stopped" in err and "Error" not in err and "Traceback" not in err
    assert not (home() / "relay.json").exists()


def test_relay_status_and_stop_from_the_command_line() -> None:
    """--detach prints the pid alone on stdout; status prints the public URL; stop stops it (twice is fine)."""
    started = g3w("relay", "--detach", "--tunnel", "none", timeout=90)
    assert started.code == 0, started.stderr
    pid = int(started.stdout.strip())
    try:
        info = read_info(home())
        assert info is not None and info.pid == pid and "relay running in the background" in started.stderr
        status = g3w("relay", "status")
        assert status.code == 0 and status.stdout.strip() == info.public_url
        stopped = g3w("relay", "stop")
        assert stopped.code == 0 and f"pid {pid}" in stopped.stderr
        assert not (home() / "relay.json").exists()
        again = g3w("relay", "stop")
        assert again.code == 0 and "no relay is running" in again.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def doctor_relay_row(env: dict[str, str] | None = None) -> dict[str, Any]:
    result = g3w("doctor", "--json", env=env or {}, timeout=60)  # exit 3: no API key here, not the relay's doing
    [row] = [row for row in json.loads(result.stdout) if row["check"] == "relay"]
    return row


def test_doctor_shows_the_relay_running_with_its_borrowers_then_not_running() -> None:
    """doctor's relay row: a detached relay running (its pid, public URL, tunnel and how many runs
    borrow it, counted while one borrower is registered), then "not running" once stopped; both
    are fine (ok), and a relay that holds its lock but does not answer is not."""
    with detached_relay("--tunnel", "none", env={}) as about:
        alone = doctor_relay_row()
        info = read_info(home())
        assert info is not None

        async def with_a_borrower() -> dict[str, Any]:
            link = RelayLink(info, CallbackEndpoint(Inbox()))
            await link.open()
            try:
                return await asyncio.to_thread(doctor_relay_row)
            finally:
                await link.close()

        borrowed = asyncio.run(with_a_borrower())
        assert g3w("relay", "stop").code == 0
    stopped = doctor_relay_row()
    head = f"running (pid {about['pid']}): {about['public_url']} via {info.tunnel}, "
    assert alone["ok"] is True and alone["detail"].startswith(head + "0 borrower(s)"), alone
    assert borrowed["ok"] is True and borrowed["detail"].startswith(head + "1 borrower(s)"), borrowed
    assert "--no-relay" in alone["detail"]
    assert stopped["ok"] is True and stopped["detail"].startswith("not running (optional: `g3w relay --detach`")
    held = socket.socket()
    held.bind(("127.0.0.1", 0))  # bound, never listening: the relay's control port refuses connections
    dead = RelayInfo(pid=os.getpid(), local_url="http://127.0.0.1:9", public_url="http://127.0.0.1:9",
                     control_port=held.getsockname()[1], tunnel="local", started_at="now", secret=CONTROL_SECRET)
    try:
        with relay_lock(home()):
            write_info(home(), dead)
            silent = invoke("doctor", "--json")
    finally:
        held.close()
    [row] = [row for row in json.loads(silent.stdout) if row["check"] == "relay"]
    assert row["ok"] is False and row["detail"].startswith("not running (") and "does not answer" in row["detail"]
