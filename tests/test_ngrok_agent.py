"""Finding the ngrok agent (never pyngrok's console script), its version, and installing it with
pyngrok's real installer, offline: its download is pointed at a server of the test's own that
serves an archive of the stand-in agent (pyngrok reads the URL from its table on each call)."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fake_ngrok
import pytest
from inproc import invoke
from pyngrok import installer

from get3w_cli.config import check_config_value, load_settings
from get3w_cli.errors import TunnelError, UsageError
from get3w_cli.webhooks.ngrok_agent import (
    Agent,
    AgentSearch,
    check_drivable,
    default_install_path,
    find_agent,
    install_agent,
    probe,
)
from get3w_cli.webhooks.tunnel import resolve_agent

# What pip writes as pyngrok's console script (bin/ngrok in every venv that has pyngrok).
PIP_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from pyngrok.ngrok import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def pyngrok_script(folder: Path, ran: Path) -> Path:
    """pyngrok's console script as pip writes it, which also leaves ``ran`` behind if it is ever run."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ngrok"
    text = PIP_SCRIPT.format(python=sys.executable).replace("import re\n", f"import re\nopen({str(ran)!r}, 'w')\n")
    script.write_text(text)
    script.chmod(0o755)
    return script


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


class Cdn:
    """ngrok's download site, on 127.0.0.1: serves files by name, 404 for the rest; counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        cdn = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                cdn.requests.append(self.path)
                data = cdn.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, data: bytes | None) -> str:
        """A fresh URL (its own archive name: pyngrok names the downloaded file after it) serving ``data``."""
        path = f"/c/ngrok-v3-stable-{uuid.uuid4().hex[:8]}.tgz"
        if data is not None:
            self.files[path] = data
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def cdn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cdn]:
    server = Cdn()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def point_pyngrok_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """pyngrok's download table, for this platform, names ``url``."""
    monkeypatch.setitem(installer.PLATFORMS, f"{installer.get_system()}_{installer.get_arch()}", url)


def agent_archive(tmp_path: Path, version: str = fake_ngrok.CURRENT) -> bytes:
    return Path(fake_ngrok.archive(str(tmp_path / f"agent-{uuid.uuid4().hex[:6]}.tgz"), version=version)).read_bytes()


# --- which file is the agent ---------------------------------------------------------------------


def test_pyngrok_script_first_on_path_is_passed_over_and_never_run(tmp_path: Path) -> None:
    """A venv's bin/ngrok (pyngrok's script) comes first on PATH: the real agent after it is used,
    and the script is never run (running it would make pyngrok download ngrok)."""
    ran = tmp_path / "script-ran"
    venv_bin = pyngrok_script(tmp_path / "venv" / "bin", ran).parent
    agent = fake_ngrok.install(str(tmp_path / "usr-bin"), name="ngrok")
    search = AgentSearch(search_path=os.pathsep.join([str(venv_bin), str(tmp_path / "usr-bin")]))
    lookup = find_agent(search, str(tmp_path / "nowhere" / "ngrok"))
    assert lookup.agent == Agent(agent, fake_ngrok.version_tuple(fake_ngrok.CURRENT), "PATH")
    assert lookup.skipped == (f"{venv_bin / 'ngrok'} (pyngrok's console script, not the ngrok agent)",)
    assert not ran.exists()


def test_non_agents_are_passed_over_with_their_reason(tmp_path: Path) -> None:
    """An `ngrok` that does not answer `version` as ngrok does is not the agent; nor is a missing default."""
    other = executable(tmp_path / "a" / "ngrok", "#!/bin/sh\necho 'usage: something else'\nexit 2\n")
    lookup = find_agent(AgentSearch(search_path=str(other.parent)), str(tmp_path / "none" / "ngrok"))
    assert lookup.agent is None
    assert len(lookup.skipped) == 1 and "did not answer as ngrok does" in lookup.skipped[0]
    assert "usage: something else" in lookup.skipped[0]


def test_an_agent_is_not_a_script_because_its_path_names_pyngrok(tmp_path: Path) -> None:
    """Only a file that imports pyngrok is pyngrok's script: a wrapper living under a folder whose
    name says pyngrok is still asked its version."""
    agent = fake_ngrok.install(str(tmp_path / "pyngrok-things"), name="ngrok",
                               state_dir=str(tmp_path / "pyngrok-state"))
    assert "pyngrok" in Path(agent).read_text()
    assert probe(agent) == (fake_ngrok.version_tuple(fake_ngrok.CURRENT), "")


def test_the_agent_at_pyngrok_default_location_is_found(tmp_path: Path) -> None:
    default = fake_ngrok.install(str(tmp_path / "cfg" / "ngrok"), name="ngrok", version=fake_ngrok.TUNNELS_ONLY)
    lookup = find_agent(AgentSearch(search_path=str(tmp_path / "empty")), default)
    assert lookup.agent is not None and lookup.agent.found == "pyngrok's default location"
    assert lookup.agent.version == (3, 22, 1)


def test_ngrok_path_is_used_as_is_and_must_be_an_agent(tmp_path: Path) -> None:
    """NGROK_PATH wins over PATH; naming pyngrok's script or another program is an error, never a run of it."""
    agent = fake_ngrok.install(str(tmp_path / "x"), name="my-ngrok", version=fake_ngrok.TUNNELS_ONLY)
    on_path = fake_ngrok.install(str(tmp_path / "p"), name="ngrok")
    lookup = find_agent(AgentSearch(ngrok_path=agent, search_path=str(Path(on_path).parent)), "/nonexistent")
    assert lookup.agent is not None and (lookup.agent.path, lookup.agent.found) == (agent, "NGROK_PATH")
    ran = tmp_path / "ran"
    script = pyngrok_script(tmp_path / "venv", ran)
    with pytest.raises(TunnelError) as info:
        find_agent(AgentSearch(ngrok_path=str(script)), "/nonexistent")
    assert info.value.kind == "not_agent" and "pyngrok's console script" in info.value.message
    assert "NGROK_PATH" in (info.value.hint or "") and not ran.exists()
    with pytest.raises(TunnelError) as missing:
        find_agent(AgentSearch(ngrok_path=str(tmp_path / "gone")), "/nonexistent")
    assert missing.value.kind == "binary_missing"


@pytest.mark.parametrize(("version", "api", "config_version"), [
    (fake_ngrok.CURRENT, "/api/endpoints", "3"),
    ("3.30.0", "/api/endpoints", "3"),
    (fake_ngrok.TUNNELS_ONLY, "/api/tunnels", "3"),
    (fake_ngrok.CONFIG_V2_ONLY, "/api/tunnels", "2"),
])
def test_what_pyngrok_speaks_follows_the_agent_release(tmp_path: Path, version: str, api: str,
                                                       config_version: str) -> None:
    found, why = probe(fake_ngrok.install(str(tmp_path), version=version))
    assert why == "" and found is not None
    agent = Agent("ngrok", found, "PATH")
    assert (agent.api, agent.config_version) == (api, config_version)
    check_drivable(agent, "9.1.0")


def test_an_agent_2x_is_too_old_for_pyngrok_9(tmp_path: Path) -> None:
    found, _ = probe(fake_ngrok.install(str(tmp_path), version=fake_ngrok.V2_AGENT))
    assert found == (2, 3, 41)
    with pytest.raises(TunnelError) as info:
        check_drivable(Agent("/opt/ngrok", found, "PATH"), "9.1.0")
    assert info.value.kind == "agent_too_old"
    assert "2.3.41" in info.value.message and "pyngrok 9.1.0" in info.value.message
    assert "/opt/ngrok update" in (info.value.hint or "")
    with pytest.raises(TunnelError) as unsupported:
        check_drivable(Agent("/opt/ngrok", (3, 39, 8), "PATH"), "7.2.3")
    assert unsupported.value.kind == "pyngrok_unsupported"


@pytest.mark.parametrize("env", [
    {"HOME": "/home/u"},
    {"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg"},
    {"HOME": "/home/u", "PYNGROK_NGROK_PATH": "/opt/agent/ngrok"},
])
def test_default_install_path_is_pyngrok_own(env: dict[str, str]) -> None:
    """g3w's idea of pyngrok's default location (doctor must not import pyngrok) is pyngrok's."""
    code = "from pyngrok import conf; print(conf.get_default().ngrok_path)"
    full = {"PATH": os.environ.get("PATH", ""), **env}
    theirs = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True)
    assert default_install_path(env) == theirs.stdout.strip()


# --- installing with pyngrok ---------------------------------------------------------------------


def test_pyngrok_installs_the_agent_at_its_default_location(tmp_path: Path, cdn: Cdn,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """No agent anywhere: pyngrok's installer downloads it from its table's URL to the default location;
    one note says so and where; pyngrok's progress never reaches stdout; the archive is not left around."""
    point_pyngrok_at(monkeypatch, cdn.serve(agent_archive(tmp_path)))
    target = tmp_path / "cfg" / "ngrok" / "ngrok"
    said: list[tuple[str, str]] = []
    search = AgentSearch(search_path=str(tmp_path / "empty"), install_to=str(target))
    agent = asyncio.run(resolve_agent(search, lambda kind, text: said.append((kind, text))))
    assert (agent.path, agent.found, agent.version_text) == (str(target), "installed", fake_ngrok.CURRENT)
    assert stat.S_IMODE(target.stat().st_mode) & 0o100
    notes = [text for kind, text in said if kind == "note"]
    assert len(notes) == 1 and str(target) in notes[0] and "G3W_NGROK_INSTALL=0" in notes[0]
    assert len(cdn.requests) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["ngrok"]  # no staging folder, no archive
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize(("served", "words"), [(None, "HTTP 404"), (b"\x1f\x8b not really a gzip", "gzip")])
def test_a_failed_download_or_a_corrupt_archive_is_one_classified_line(tmp_path: Path, cdn: Cdn,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       served: bytes | None, words: str) -> None:
    url = cdn.serve(served)
    point_pyngrok_at(monkeypatch, url)
    target = tmp_path / "cfg" / "ngrok" / "ngrok"
    with pytest.raises(TunnelError) as info:
        asyncio.run(resolve_agent(AgentSearch(search_path="", install_to=str(target)), lambda k, t: None))
    error = info.value
    assert error.kind == "install_failed" and error.exit_code == 7
    assert words in error.message and str(target) in error.message and url in error.message
    assert "\n" not in error.message and "Traceback" not in error.message
    assert "NGROK_PATH" in (error.hint or "")
    assert list(target.parent.iterdir()) == []  # nothing half-installed


def test_no_network_during_the_install_is_said_in_words_without_errno(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The download cannot connect (port 1: nothing listens there): the reason in plain words,
    never Python's ``[Errno 111]``."""
    point_pyngrok_at(monkeypatch, "http://127.0.0.1:1/ngrok-v3-stable-linux-amd64.tgz")
    target = tmp_path / "cfg" / "ngrok" / "ngrok"
    with pytest.raises(TunnelError) as info:
        asyncio.run(resolve_agent(AgentSearch(search_path="", install_to=str(target)), lambda k, t: None))
    assert info.value.kind == "install_failed"
    assert "refused" in info.value.message.lower() and "[Errno" not in info.value.message

def test_install_off_reports_the_missing_agent(tmp_path: Path, cdn: Cdn, monkeypatch: pytest.MonkeyPatch) -> None:
    point_pyngrok_at(monkeypatch, cdn.serve(agent_archive(tmp_path)))
    search = AgentSearch(search_path="", install_to=str(tmp_path / "cfg" / "ngrok"), install=False)
    with pytest.raises(TunnelError) as info:
        asyncio.run(resolve_agent(search, lambda k, t: None))
    assert info.value.kind == "binary_missing" and "G3W_NGROK_INSTALL=0" in info.value.message
    assert cdn.requests == []


def test_two_installs_at_once_download_once(tmp_path: Path, cdn: Cdn) -> None:
    """Two g3w installing together take turns: the second uses what the first installed."""
    url = cdn.serve(agent_archive(tmp_path))
    target = str(tmp_path / "cfg" / "ngrok")

    async def both() -> list[Agent]:
        return list(await asyncio.gather(install_agent(url, target), install_agent(url, target)))

    first, second = asyncio.run(both())
    assert first.path == second.path == target
    assert len(cdn.requests) == 1


def test_a_stuck_download_is_given_up_at_its_deadline(tmp_path: Path) -> None:
    """A download that never answers costs the install timeout, then one classified line."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/ngrok-v3-stuck.tgz"
        with pytest.raises(TunnelError) as info:
            asyncio.run(install_agent(url, str(tmp_path / "cfg" / "ngrok"), timeout=1.0))
        assert info.value.kind == "install_failed" and "after 1s" in info.value.message
    finally:
        silent.close()


# --- the setting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "file", "expected"), [
    ({}, {}, True),
    ({"G3W_NGROK_INSTALL": "0"}, {}, False),
    ({"G3W_NGROK_INSTALL": "off"}, {"ngrok.install": True}, False),
    ({}, {"ngrok.install": False}, False),
    ({"G3W_NGROK_INSTALL": "1"}, {"ngrok.install": False}, True),
])
def test_ngrok_install_setting(env: dict[str, str], file: dict[str, object], expected: bool) -> None:
    assert load_settings({}, env, file).ngrok_install is expected


def test_ngrok_install_bad_value_and_config_set() -> None:
    with pytest.raises(UsageError):
        load_settings({}, {"G3W_NGROK_INSTALL": "maybe"}, {})
    assert check_config_value("ngrok.install", "no") is False
    result = invoke("config", "set", "ngrok.install", "false")
    assert result.code == 0, result.stderr
    assert invoke("config", "get", "ngrok.install").stdout.strip() == "false"


# --- doctor ---------------------------------------------------------------------------------------


def _doctor(env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = invoke("doctor", "--json", env=env)
    return {row["check"]: row for row in json.loads(result.stdout)}


def test_doctor_names_the_agent_never_pyngrok_script(tmp_path: Path) -> None:
    """doctor says which agent would run, its version and whether pyngrok drives it; pyngrok's
    script is only ever 'passed over'; with no agent it says where pyngrok would install it."""
    ran = tmp_path / "ran"
    venv_bin = pyngrok_script(tmp_path / "venv" / "bin", ran).parent
    agent = fake_ngrok.install(str(tmp_path / "usr"), name="ngrok", version=fake_ngrok.TUNNELS_ONLY)
    rows = _doctor({"PATH": f"{venv_bin}{os.pathsep}{Path(agent).parent}", "NGROK_AUTHTOKEN": "tok"})
    detail = str(rows["ngrok agent"]["detail"])
    assert rows["ngrok agent"]["ok"] is True
    assert detail.startswith(f"3.22.1 at {agent} (from PATH)") and "/api/tunnels" in detail
    assert "pyngrok's console script" in detail
    assert rows["pyngrok"]["ok"] is True and rows["ngrok authtoken"]["ok"] is True
    assert not ran.exists()

    rows = _doctor({"PATH": str(venv_bin), "PYNGROK_NGROK_PATH": str(tmp_path / "cfg" / "ngrok")})
    assert rows["ngrok agent"]["ok"] is True
    assert f"pyngrok would install it to {tmp_path / 'cfg' / 'ngrok'}" in str(rows["ngrok agent"]["detail"])
    rows = _doctor({"PATH": str(venv_bin), "G3W_NGROK_INSTALL": "0"})
    assert rows["ngrok agent"]["ok"] is False and "installing it is off" in str(rows["ngrok agent"]["detail"])


def test_doctor_reports_an_agent_too_old_for_pyngrok(tmp_path: Path) -> None:
    old = fake_ngrok.install(str(tmp_path), name="ngrok", version=fake_ngrok.V2_AGENT)
    row = _doctor({"NGROK_PATH": old})["ngrok agent"]
    assert row["ok"] is False and "2.3.41" in str(row["detail"]) and "drives agents 3.x" in str(row["detail"])
