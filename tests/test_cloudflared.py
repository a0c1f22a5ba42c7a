"""cloudflared quick tunnels: the log as the real program writes it, the stand-in, the CLI's choices.

The stand-in (tests/fake_cloudflared.py) prints what ``cloudflared tunnel --url`` prints and
forwards its URL to the listener; it writes ``<pid>.pid`` in a state folder, so each test can
check that no cloudflared is left running afterwards.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import fake_cloudflared  # tests/fake_cloudflared.py
import fake_ngrok  # tests/fake_ngrok.py
import pytest
from conftest import ThreadedSandbox, said_until_submitted, sandbox_env, wait_until
from inproc import invoke
from test_webhook_e2e import finish, start_run

from get3w_cli.errors import TunnelError
from get3w_cli.webhooks.cloudflared import LogWatch, cloudflared_version, open_cloudflared

SECRET = "whsec_cf"

# What cloudflared 2022.1 printed for a quick tunnel (github.com/homeassistant-apps/app-cloudflared#24),
# then a registration line as 2025.1 prints it (app-cloudflared#775).
REAL_START = """\
2022-01-20T09:56:33Z INF Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick \
way to experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee. If you \
intend to use Tunnels in production you should use a pre-created named tunnel by following: \
https://developers.cloudflare.com/cloudflare-one/connections/connect-apps
2022-01-20T09:56:33Z INF Requesting new quick Tunnel on trycloudflare.com...
2022-01-20T09:56:36Z INF +--------------------------------------------------------------------------------------------+
2022-01-20T09:56:36Z INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |
2022-01-20T09:56:36Z INF |  https://disciplinary-tennis-breaking-under.trycloudflare.com                              |
2022-01-20T09:56:36Z INF +--------------------------------------------------------------------------------------------+
2025-01-28T06:13:37Z INF Starting metrics server on [::]:36500/metrics
2025-01-28T06:13:37Z INF Registered tunnel connection connIndex=0 connection=5c94b68c-6732-40c1-9b49-9f8f6c23521d \
event=0 ip=198.41.192.67 location=las01 protocol=quic
2025-01-28T06:13:37Z INF Registered tunnel connection connIndex=1 connection=fc4309e9-6b0c-4644-88e5-f05c879d67ab \
event=0 ip=198.41.200.53 location=lax01 protocol=quic
"""
# A 429 from the quick-tunnel service (github.com/decolua/9router#1545, 2026).
REAL_429 = """\
2026-05-29T09:25:34Z INF Requesting new quick Tunnel on trycloudflare.com...
2026-05-29T09:25:34Z ERR Error unmarshaling QuickTunnel response: error code: 1015 error="invalid character 'e' \
looking for beginning of value" status_code="429 Too Many Requests"
failed to unmarshal quick Tunnel: invalid character 'e' looking for beginning of value
"""


def test_the_url_is_read_from_the_real_banner_and_connections_are_counted() -> None:
    """The URL inside the box, nothing before it; the first registration says "connected"; losing
    every connection (and only then) says "lost"."""
    watch = LogWatch()
    events = [watch.feed(line) for line in REAL_START.splitlines()]
    assert watch.url == "https://disciplinary-tennis-breaking-under.trycloudflare.com"
    assert [e for e in events if e] == ["url", "connected"]
    assert watch.feed("2025-01-28T06:14:00Z ERR Connection terminated error=\"timeout\" connIndex=0") is None
    assert watch.feed("2025-01-28T06:14:00Z INF Unregistered tunnel connection connIndex=1 event=0") == "lost"


def test_a_429_from_the_quick_tunnel_service_is_recognised_with_its_words() -> None:
    watch = LogWatch()
    for line in REAL_429.splitlines():
        watch.feed(line)
    assert "429 Too Many Requests" in watch.rate_limited and watch.url is None
    assert "failed to unmarshal quick Tunnel" in watch.last_error()


def test_a_url_outside_the_banner_is_not_taken() -> None:
    """The thank-you line carries URLs of its own; only the boxed one is the tunnel's."""
    watch = LogWatch()
    watch.feed(REAL_START.splitlines()[0])
    watch.feed("2024-01-01T00:00:00Z INF |  https://example.com  |")  # a box, but not after the banner's words
    assert watch.url is None


# --- the stand-in, driven directly ---------------------------------------------------------------


def stand_in(tmp_path: Path, mode: str) -> str:
    state = tmp_path / f"cf-{mode}"
    state.mkdir(exist_ok=True)
    return fake_cloudflared.install(str(tmp_path), mode=mode, state_dir=str(state))


def live(tmp_path: Path, mode: str) -> list[int]:
    """Stand-ins of ``mode`` still running (each start leaves <pid>.pid; zombies do not count)."""
    alive = []
    for pid_file in (tmp_path / f"cf-{mode}").glob("*.pid"):
        stat = Path(f"/proc/{pid_file.stem}/stat")
        try:
            if stat.read_text().split(")")[-1].split()[0] != "Z":
                alive.append(int(pid_file.stem))
        except OSError:
            pass
    return alive


def started(tmp_path: Path, mode: str) -> int:
    return len(list((tmp_path / f"cf-{mode}").glob("*.pid")))


@pytest.mark.parametrize(("mode", "timeout", "kind", "words"), [
    ("rate_limited", 20, "rate_limited", "429"),
    ("no_network", 20, "other", "api.trycloudflare.com"),
    ("hang", 1, "start_timeout", "no quick tunnel URL within 1s"),
])
def test_failures_to_start_are_classified_and_leave_nothing_running(tmp_path: Path, mode: str, timeout: float,
                                                                    kind: str, words: str) -> None:
    async def main() -> TunnelError:
        with pytest.raises(TunnelError) as caught:
            await open_cloudflared(9, path=stand_in(tmp_path, mode), timeout=timeout)
        return caught.value

    error = asyncio.run(main())
    assert error.kind == kind and words in error.message and error.hint
    assert started(tmp_path, mode) == 1 and live(tmp_path, mode) == []


def test_the_tunnel_is_ready_once_connected_not_at_the_start_timeout(tmp_path: Path) -> None:
    """The URL printed and a connection registered: open_cloudflared returns then, well before the
    (here one minute) start timeout."""
    async def main() -> tuple[float, str]:
        begun = time.monotonic()
        tunnel = await open_cloudflared(9, path=stand_in(tmp_path, "ok"), timeout=60)
        took = time.monotonic() - begun
        await tunnel.close()
        return took, tunnel.public_url

    took, url = asyncio.run(main())
    assert url.startswith("http://127.0.0.1:") and took < 30  # generous: it did not wait out the minute
    assert live(tmp_path, "ok") == []


def test_a_missing_or_unrunnable_binary_is_binary_missing(tmp_path: Path) -> None:
    not_executable = tmp_path / "cloudflared"
    not_executable.write_text("#!/bin/sh\n")

    async def main() -> list[TunnelError]:
        errors = []
        for path in (str(tmp_path / "nowhere"), str(not_executable)):
            with pytest.raises(TunnelError) as caught:
                await open_cloudflared(9, path=path, timeout=1)
            errors.append(caught.value)
        return errors

    for error in asyncio.run(main()):
        assert error.kind == "binary_missing" and error.hint and "CLOUDFLARED_PATH" in error.hint


def test_close_stops_cloudflared_and_a_drop_is_reported(tmp_path: Path) -> None:
    """An open tunnel forwards; when cloudflared loses the edge, ``dropped`` says so; close() ends it."""
    async def main() -> str:
        from aiohttp import ClientSession

        from get3w_cli.webhooks.inbox import Inbox
        from get3w_cli.webhooks.listener import CallbackListener, check_reachable

        async with CallbackListener(Inbox()) as listener:
            tunnel = await open_cloudflared(listener.port, path=stand_in(tmp_path, "drop"), timeout=10)
            try:
                await check_reachable(tunnel.public_url, listener, timeout=5)  # the one request it forwards
                reason = await asyncio.wait_for(tunnel.dropped, 10)
                async with ClientSession() as session, session.get(tunnel.public_url) as response:
                    assert response.status == 530  # the edge has lost the tunnel: error 1033
                return reason
            finally:
                await tunnel.close()

    reason = asyncio.run(main())
    assert "lost its connections" in reason and "no recent network activity" in reason
    assert live(tmp_path, "drop") == []


def test_version_is_what_the_binary_says(tmp_path: Path) -> None:
    assert cloudflared_version(stand_in(tmp_path, "ok")) == "cloudflared version 2024.8.2 (built 2024-08-20-1254 UTC)"


# --- g3w run ----------------------------------------------------------------------------------------


def env_for(sb: ThreadedSandbox, tmp_path: Path, mode: str, **extra: str) -> dict[str, str]:
    return {**sandbox_env(sb), "CLOUDFLARED_PATH": stand_in(tmp_path, mode), "GET3W_WEBHOOK_SECRET": SECRET, **extra}


def test_auto_uses_cloudflared_when_installed_and_no_authtoken(tmp_path: Path) -> None:
    """--tunnel auto, no ngrok authtoken, cloudflared found: the callback travels the quick tunnel,
    and cloudflared is gone afterwards."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--json", env=env_for(sb, tmp_path, "ok"))
        webhook_url = json.loads(sb.sandbox.submissions()[0].body)["webhook_url"]
        # The sandbox records the attempt once it has read the answer, which may be after the run exits.
        delivered = wait_until(lambda: [d.status_code for d in sb.sandbox.deliveries if d.url == webhook_url])
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "webhook"
    assert delivered[0] == 200
    assert started(tmp_path, "ok") == 1 and live(tmp_path, "ok") == []


def test_the_check_waits_for_a_tunnel_still_coming_up(tmp_path: Path) -> None:
    """The edge answers 530 (error 1033) twice while the tunnel comes up: the check tries again."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--json", "--tunnel", "cloudflared", "--via", "webhook",
                        env=env_for(sb, tmp_path, "warming"))
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "webhook"


@pytest.mark.parametrize(("mode", "words"), [("rate_limited", "429"), ("unreachable", "did not reach"),
                                             ("no_network", "api.trycloudflare.com")])
def test_failures_exit_7_under_via_webhook_before_paying(tmp_path: Path, mode: str, words: str) -> None:
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "cloudflared",
                        env=env_for(sb, tmp_path, mode))
        assert sb.sandbox.submissions() == []
    assert result.code == 7, result.stderr
    assert words in result.stderr and "Hint:" in result.stderr and "Traceback" not in result.stderr
    assert live(tmp_path, mode) == []


def test_missing_cloudflared_exits_7_with_its_hint(tmp_path: Path) -> None:
    with ThreadedSandbox(duration=0.05) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--tunnel", "cloudflared",
                        env={**sandbox_env(sb), "CLOUDFLARED_PATH": str(tmp_path / "none")})
        assert sb.sandbox.submissions() == []
    assert result.code == 7 and "CLOUDFLARED_PATH" in result.stderr and "does not download" in result.stderr


def test_a_rate_limited_quick_tunnel_falls_back_to_polling_under_auto(tmp_path: Path) -> None:
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        result = invoke("run", "flux-dev", "-p", "x", "--json", "--poll-max", "0.2", env=env_for(sb, tmp_path,
                                                                                                   "rate_limited"))
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "poll"
    assert "falling back to polling" in result.stderr and "429" in result.stderr


@pytest.mark.parametrize("mode", ["drop", "exit"])
def test_a_tunnel_that_drops_during_the_wait_is_noticed_and_the_run_polls_at_once(tmp_path: Path, mode: str) -> None:
    """cloudflared loses the edge (or exits) after the check: g3w says so once and polls at once,
    instead of waiting out --fallback-after (60 s by default)."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        begun = time.monotonic()
        result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=1", "--json", "--tunnel",
                        "cloudflared", "--via", "webhook", "--poll-max", "0.2", env=env_for(sb, tmp_path, mode))
        elapsed = time.monotonic() - begun
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "poll"
    assert result.stderr.count("lost the cloudflared tunnel: cloudflared") == 1
    assert elapsed < 30  # generous: nowhere near the 60 s fallback
    assert live(tmp_path, mode) == []


def test_auto_tries_ngrok_first_then_cloudflared(tmp_path: Path) -> None:
    """Both available: ngrok is used and cloudflared never started. ngrok failing (one session only):
    one warning line, then the quick tunnel."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        ngrok_ok = {"NGROK_PATH": fake_ngrok.install(str(tmp_path), mode="ok"), "NGROK_AUTHTOKEN": "tok"}
        first = invoke("run", "flux-dev", "-p", "x", "--json", env=env_for(sb, tmp_path, "ok", **ngrok_ok))
        assert started(tmp_path, "ok") == 0
        ngrok_busy = {"NGROK_PATH": fake_ngrok.install(str(tmp_path), mode="session_limit"), "NGROK_AUTHTOKEN": "tok"}
        second = invoke("run", "flux-dev", "-p", "x", "--json", env=env_for(sb, tmp_path, "ok", **ngrok_busy))
    assert first.code == 0 and first.json()["via"] == "webhook", first.stderr
    assert second.code == 0 and second.json()["via"] == "webhook", second.stderr
    assert "ERR_NGROK_108" in second.stderr and "trying cloudflared" in second.stderr
    assert started(tmp_path, "ok") == 1 and live(tmp_path, "ok") == []


def test_ctrl_c_closes_cloudflared(tmp_path: Path) -> None:
    """SIGINT during a wait through a quick tunnel: exit 130, and cloudflared is gone."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01) as sb:
        proc = start_run(sb, "flux-dev", "-p", "x", "-i", "sandbox_duration=30", "--tunnel", "cloudflared",
                         env={"CLOUDFLARED_PATH": stand_in(tmp_path, "ok")})
        seen = said_until_submitted(proc)
        assert live(tmp_path, "ok"), seen
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc)
    assert code == 130 and "g3w wait" in err
    assert live(tmp_path, "ok") == []


def test_listen_can_use_a_quick_tunnel(tmp_path: Path) -> None:
    """g3w listen --tunnel cloudflared prints the quick tunnel's URL, and closes it on the way out."""
    result = invoke("listen", "--tunnel", "cloudflared", "--port", "0", "--print-url", "--timeout", "0.5",
                    env={"CLOUDFLARED_PATH": stand_in(tmp_path, "ok")})
    assert result.code == 4, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:") and "Public URL" in result.stderr
    assert live(tmp_path, "ok") == []


def test_doctor_shows_cloudflared_and_its_version(tmp_path: Path) -> None:
    result = invoke("doctor", "--json", env={"CLOUDFLARED_PATH": stand_in(tmp_path, "ok")})
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["cloudflared"]["ok"] is True and "2024.8.2" in rows["cloudflared"]["detail"]
    missing = invoke("doctor", "--json")
    rows = {row["check"]: row for row in json.loads(missing.stdout)}
    assert rows["cloudflared"]["ok"] is False and "CLOUDFLARED_PATH" in rows["cloudflared"]["detail"]


def test_cloudflared_is_found_on_path_without_cloudflared_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No CLOUDFLARED_PATH: the `cloudflared` first on PATH is the one doctor names and a run starts
    (and stops); with none on PATH, --tunnel cloudflared says so and exits 7 before paying."""
    import os

    monkeypatch.delenv("CLOUDFLARED_PATH")
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "cloudflared").symlink_to(stand_in(tmp_path, "ok"))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    doctor = invoke("doctor", "--json")
    [row] = [row for row in json.loads(doctor.stdout) if row["check"] == "cloudflared"]
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET) as sb:
        env = {**sandbox_env(sb), "GET3W_WEBHOOK_SECRET": SECRET}
        found = invoke("run", "flux-dev", "-p", "x", "--json", "--tunnel", "cloudflared", "--via", "webhook", env=env)
        missing = invoke("run", "flux-dev", "-p", "x", "--tunnel", "cloudflared", "--via", "webhook",
                         env={**env, "PATH": str(empty)})
        submitted = len(sb.sandbox.submissions())
    assert row["ok"] is True and row["source"] is None
    assert row["detail"] == f"{on_path / 'cloudflared'}: cloudflared version 2024.8.2 (built 2024-08-20-1254 UTC)"
    assert found.code == 0 and found.json()["via"] == "webhook", found.stderr
    assert started(tmp_path, "ok") == 1 and live(tmp_path, "ok") == []
    assert missing.code == 7 and "not on PATH" in missing.stderr and submitted == 1, missing.stderr
