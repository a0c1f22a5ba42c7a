"""The ngrok tunnel, driven through pyngrok against a stand-in agent (tests/fake_ngrok.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import fake_ngrok
import pytest

from get3w_cli.errors import TunnelError
from get3w_cli.records import Status
from get3w_cli.webhooks.inbox import Inbox
from get3w_cli.webhooks.listener import CallbackListener, check_reachable
from get3w_cli.webhooks.signatures import sign_get3w
from get3w_cli.webhooks.tunnel import open_ngrok

TOKEN = "2abcDEFfakeAuthtoken_0123456789"
SECRET = "tunnel-secret"


@pytest.fixture
def agents(tmp_path):
    """A factory of fake agents by mode; afterwards, no agent process may be left running."""
    state = tmp_path / "state"
    state.mkdir()
    before = _config_dirs()

    def make(mode: str = "ok", version: str = fake_ngrok.CURRENT) -> str:
        return fake_ngrok.install(str(tmp_path / "bin"), mode, state_dir=str(state), version=version)

    make.state = state  # type: ignore[attr-defined]
    yield make
    assert _live(state) == [], "an ngrok agent outlived its tunnel"
    assert _config_dirs() <= before, "a private ngrok config was left behind"


def _live(state: Path) -> list[int]:
    return [int(f.stem) for f in state.glob("*.pid") if Path(f"/proc/{f.stem}").exists()]


def _started(state: Path) -> list[int]:
    return [int(f.stem) for f in state.glob("*.pid")]


def _config_dirs() -> set[str]:
    """This process's private ngrok configs (the tunnels here open in it): other processes, such
    as the suite's other workers, make and remove their own meanwhile."""
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(f"g3w-ngrok-{os.getpid()}-")}


async def _kind(**kwargs) -> str:
    with pytest.raises(TunnelError) as info:
        await open_ngrok(1, **kwargs)
    assert info.value.hint
    assert info.value.exit_code == 7
    return info.value.kind


# Agent releases pyngrok 9 must speak to differently (tests/fake_ngrok.py): /api/endpoints, /api/tunnels
# only, and version "2" config files only.
GENERATIONS = [fake_ngrok.CURRENT, fake_ngrok.TUNNELS_ONLY, fake_ngrok.CONFIG_V2_ONLY]


@pytest.mark.parametrize("version", GENERATIONS)
def test_delivery_through_the_tunnel_reaches_the_inbox(agents, version):
    """A signed POST to the public URL arrives in the Inbox, verified; the probe passes; whatever the
    agent's release, g3w speaks the API and the config file it has."""

    async def main():
        inbox = Inbox()
        async with CallbackListener(inbox, secrets={"get3w": SECRET}) as listener:
            async with await open_ngrok(listener.port, authtoken=TOKEN, ngrok_path=agents(version=version)) as tunnel:
                assert tunnel.agent is not None and tunnel.agent.version_text == version
                assert tunnel.public_url.startswith("http")
                assert str(listener.port) not in tunnel.public_url
                await check_reachable(tunnel.public_url, listener, timeout=5)
                body = json.dumps({"id": "pred_t", "status": "completed", "outputs": ["https://x/1.png"]}).encode()
                headers = {"X-Get3W-Signature": sign_get3w(SECRET, body), "Content-Type": "application/json"}
                async with aiohttp.ClientSession() as session:
                    url = listener.callback_url(tunnel.public_url)
                    async with session.post(url, data=body, headers=headers) as resp:
                        assert resp.status == 200
                delivery = await asyncio.wait_for(inbox.next("pred_t"), 2)
                assert delivery.verified and delivery.task.status is Status.COMPLETED
                assert delivery.body == body
                assert len(_live(agents.state)) == 1

    asyncio.run(main())


def test_close_kills_the_agent_and_allows_a_new_tunnel(agents):
    """close() is idempotent, leaves no agent running, and a new tunnel can then be opened."""

    async def main():
        path = agents()
        tunnel = await open_ngrok(9, authtoken=TOKEN, ngrok_path=path)
        assert len(_live(agents.state)) == 1
        await tunnel.close()
        await tunnel.close()
        assert _live(agents.state) == []
        again = await open_ngrok(9, authtoken=TOKEN, ngrok_path=path)
        await again.close()

    asyncio.run(main())


def test_authtoken_stays_off_the_command_line(agents):
    """The authtoken is in a private 0600 config file, not in the agent's argv."""

    async def main():
        async with await open_ngrok(9, authtoken=TOKEN, ngrok_path=agents()) as tunnel:
            (pid,) = _live(agents.state)
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert TOKEN.encode() not in b" ".join(argv)
            config = argv[argv.index(b"--config") + 1].decode()
            assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
            assert TOKEN in Path(config).read_text()
            assert TOKEN not in repr(tunnel)
        assert not Path(config).exists()

    asyncio.run(main())


def test_second_tunnel_on_the_same_binary_is_refused(agents):
    """pyngrok runs one agent per binary: a second open while one is up is an error."""

    async def main():
        path = agents()
        async with await open_ngrok(9, authtoken=TOKEN, ngrok_path=path):
            assert await _kind(authtoken=TOKEN, ngrok_path=path) == "other"

    asyncio.run(main())


@pytest.mark.parametrize("authtoken", [None, ""])
def test_no_authtoken(agents, authtoken):
    """No authtoken: 'no_authtoken' before anything is started."""
    assert asyncio.run(_kind(authtoken=authtoken, ngrok_path=agents())) == "no_authtoken"
    assert _started(agents.state) == []


def test_binary_missing_is_quick(agents, tmp_path):
    """A path that does not exist, or is not executable, is 'binary_missing' at once."""
    start = time.monotonic()
    assert asyncio.run(_kind(authtoken=TOKEN, ngrok_path=str(tmp_path / "nope" / "ngrok"))) == "binary_missing"
    assert asyncio.run(_kind(authtoken=TOKEN, ngrok_path=str(tmp_path))) == "binary_missing"
    not_executable = tmp_path / "ngrok"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    assert asyncio.run(_kind(authtoken=TOKEN, ngrok_path=str(not_executable))) == "binary_missing"
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    ("mode", "kind", "code"),
    [("session_limit", "session_limit", "ERR_NGROK_108"), ("auth_failed", "auth_failed", "ERR_NGROK_105"),
     ("revoked", "auth_failed", "ERR_NGROK_107"), ("update_required", "update_required", "ERR_NGROK_121"),
     ("endpoint_in_use", "endpoint_in_use", "ERR_NGROK_334"),
     ("too_many_endpoints", "too_many_endpoints", "ERR_NGROK_324"), ("crash", "other", "simulated crash"),
     ("credential_revoked", "auth_failed", "ERR_NGROK_300"), ("no_token", "auth_failed", "ERR_NGROK_4018"),
     ("v1_token", "auth_failed", "ERR_NGROK_106"), ("unsupported", "update_required", "ERR_NGROK_120")],
)
def test_agent_failures_are_classified(agents, mode, kind, code):
    """ngrok's ERR_NGROK_ codes become kinds, with the agent's own words in one line (its \\r\\n escapes
    gone) and a hint naming flags that exist; the message never repeats the authtoken."""

    async def main():
        with pytest.raises(TunnelError) as info:
            await open_ngrok(9, authtoken=TOKEN, ngrok_path=agents(mode), timeout=5)
        return info.value

    error = asyncio.run(main())
    assert error.kind == kind
    assert code in error.message
    assert not any(escape in error.message for escape in ("\\r", "\\n", "\r", "\n")), error.message
    assert TOKEN not in error.message and TOKEN not in (error.hint or "")
    assert "--public-url" in (error.hint or "") or "--debug" in (error.hint or "")
    assert "--verbose" not in (error.hint or "")
    assert len(_started(agents.state)) == 1


def test_the_stand_in_serves_the_api_of_its_release(agents):
    """The stand-in is faithful: /api/endpoints exists from 3.30 only, /api/tunnels in every 3.x."""
    from pyngrok import process

    async def main():
        for version in GENERATIONS:
            path = agents(version=version)
            async with await open_ngrok(9, authtoken=TOKEN, ngrok_path=path):
                api = process._current_processes[path].api_url
                async with aiohttp.ClientSession() as session:
                    statuses = []
                    for route in ("/api/endpoints", "/api/tunnels"):
                        async with session.get(f"{api}{route}") as resp:
                            statuses.append(resp.status)
                endpoints = 200 if fake_ngrok.version_tuple(version) >= (3, 30) else 404
                assert statuses == [endpoints, 200], version

    asyncio.run(main())


def test_an_agent_too_old_for_pyngrok_is_reported_and_never_started(agents):
    """An agent 2.x: 'agent_too_old' with its version and what to do, before anything runs."""
    with pytest.raises(TunnelError) as info:
        asyncio.run(open_ngrok(9, authtoken=TOKEN, ngrok_path=agents(version=fake_ngrok.V2_AGENT)))
    assert info.value.kind == "agent_too_old" and "2.3.41" in info.value.message
    assert "update" in (info.value.hint or "") and "NGROK_PATH" in (info.value.hint or "")
    assert _started(agents.state) == []


def test_no_network_times_out_with_the_agents_reason(agents):
    """An agent that cannot reach ngrok logs why every second and never exits: the start times out
    with that reason, not a bare "did not start"."""
    start = time.monotonic()
    with pytest.raises(TunnelError) as info:
        asyncio.run(open_ngrok(9, authtoken=TOKEN, ngrok_path=agents("offline"), timeout=1.5))
    assert time.monotonic() - start < 6
    assert info.value.kind == "start_timeout"
    assert "network is unreachable" in info.value.message and "failed to reconnect session" in info.value.message
    assert "connect.ngrok-agent.com" in info.value.message and '\\"' not in info.value.message
    assert _live(agents.state) == []


def test_a_taken_web_address_does_not_stop_the_agent(agents):
    """4040 in use (another agent): the agent says so and serves its API elsewhere; the tunnel works."""

    async def main():
        async with CallbackListener(Inbox()) as listener:
            async with await open_ngrok(listener.port, authtoken=TOKEN, ngrok_path=agents("web_in_use")) as tunnel:
                await check_reachable(tunnel.public_url, listener, timeout=5)

    asyncio.run(main())


def test_a_session_lost_mid_run_sets_dropped(agents):
    """The agent logs its session closing (then a failed reconnect every second): ``dropped`` is set,
    with the agent's words; the tunnel still closes cleanly."""

    async def main():
        async with await open_ngrok(9, authtoken=TOKEN, ngrok_path=agents()) as tunnel:
            assert not tunnel.dropped.is_set()
            (pid,) = _live(agents.state)
            os.kill(pid, signal.SIGUSR1)
            await asyncio.wait_for(tunnel.dropped.wait(), 10)
            assert tunnel.drop_reason is not None and tunnel.drop_reason.startswith("session closing")
            assert "connection reset by peer" in tunnel.drop_reason

    asyncio.run(main())


def test_an_agent_that_dies_sets_dropped_and_close_does_not(agents):
    """kill -9 of the agent sets ``dropped``; closing a healthy tunnel never does."""

    async def main():
        healthy = await open_ngrok(9, authtoken=TOKEN, ngrok_path=agents())
        await healthy.close()
        assert not healthy.dropped.is_set()
        async with await open_ngrok(9, authtoken=TOKEN, ngrok_path=agents()) as tunnel:
            (pid,) = _live(agents.state)
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(tunnel.dropped.wait(), 10)
            assert tunnel.drop_reason == "the ngrok agent exited"

    asyncio.run(main())


def test_start_timeout_kills_the_silent_agent(agents):
    """An agent that never reports its session is killed at the timeout: 'start_timeout'."""
    start = time.monotonic()
    assert asyncio.run(_kind(authtoken=TOKEN, ngrok_path=agents("hang"), timeout=0.5)) == "start_timeout"
    assert 0.5 <= time.monotonic() - start < 2.5
    assert len(_started(agents.state)) == 1


def test_cancelled_start_kills_the_agent(agents):
    """Ctrl-C (cancellation) while the agent starts leaves no agent behind."""

    async def main():
        opening = asyncio.create_task(open_ngrok(9, authtoken=TOKEN, ngrok_path=agents("hang"), timeout=30))
        while not _started(agents.state):
            await asyncio.sleep(0.02)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < 3


def test_unreachable_tunnel_fails_the_probe(agents):
    """A tunnel whose public URL forwards nowhere fails check_reachable with 'unreachable'."""

    async def main():
        async with CallbackListener(Inbox()) as listener:
            async with await open_ngrok(listener.port, authtoken=TOKEN, ngrok_path=agents("unreachable")) as tunnel:
                with pytest.raises(TunnelError) as info:
                    await check_reachable(tunnel.public_url, listener, timeout=3)
                assert info.value.kind == "unreachable"
                assert "502" in info.value.message
                assert listener.probes == set()

    asyncio.run(main())


_HOLD_A_CONFIG = """
import sys
from get3w_cli.webhooks.ngrok_config import make_private_config

make_private_config(sys.argv[1], sys.argv[2])  # what open_ngrok writes before starting the agent
print("written", flush=True)
sys.stdin.read()
"""


def test_a_killed_runs_private_config_is_removed_by_the_next_tunnel(agents, tmp_path):
    """SIGKILL leaves the private config (the authtoken) behind, in a folder named with the dead pid:
    the next tunnel to open removes it, and leaves a live process's folder alone."""
    root = tmp_path / "tmp"
    root.mkdir()
    # The killed process holds no agent: an orphaned agent would be left to this machine's init.
    killed = subprocess.Popen([sys.executable, "-c", _HOLD_A_CONFIG, TOKEN, str(root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert killed.stdout is not None and killed.stdout.readline() == "written\n"
        (left,) = root.glob(f"g3w-ngrok-{killed.pid}-*")
        assert TOKEN in (left / "ngrok.yml").read_text()
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert left.exists()  # what the fix is for: nobody else removes it
        alive = root / f"g3w-ngrok-{live.pid}-abc123"
        alive.mkdir()
        (alive / "ngrok.yml").write_text("in use")
        unrelated = root / "g3w-ngrok-notapid"
        unrelated.mkdir()

        async def main():
            async with await open_ngrok(9, authtoken=TOKEN, ngrok_path=agents(), temp_dir=str(root)):
                assert not left.exists()
                assert (alive / "ngrok.yml").read_text() == "in use"
                assert len(list(root.glob(f"g3w-ngrok-{os.getpid()}-*"))) == 1  # this run's own

        asyncio.run(main())
        assert sorted(p.name for p in root.iterdir()) == sorted([alive.name, unrelated.name])
    finally:
        for proc in (killed, live):
            proc.kill()
            proc.communicate(timeout=10)  # closes its pipes
