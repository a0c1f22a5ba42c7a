"""``g3w open ID|FILE`` (CONTRACT 12): the outputs, or a file, in the desktop's default viewer.

The viewer is a small recording program named by ``BROWSER`` (as Python's webbrowser reads it):
each call appends what it was asked to show to a file the test reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli.cli.open_cmd import viewer

RECORDER = "import sys\nwith open(sys.argv[1], 'a') as f:\n    f.write(sys.argv[2] + '\\n')\n"


@pytest.fixture
def shown(tmp_path: Path) -> Path:
    (tmp_path / "recorder.py").write_text(RECORDER)
    return tmp_path / "shown.txt"


def browser(shown: Path) -> dict[str, str]:
    return {"BROWSER": f"{sys.executable} {shown.parent / 'recorder.py'} {shown} %s"}


def done_task(sandbox: ThreadedSandbox, *extra: str) -> str:
    result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", "--via", "poll", "--poll-max", "0.2",
                    "--json", *extra, env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    return str(result.json()["id"])


def test_open_a_file(shown: Path, tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG")
    result = invoke("open", str(picture), env=browser(shown))
    assert result.code == 0, result.stderr
    assert shown.read_text().splitlines() == [str(picture)]
    assert result.stdout == "" and f"opened {picture}" in result.stderr


def test_open_a_task_opens_its_downloaded_files(sandbox: ThreadedSandbox, shown: Path, tmp_path: Path) -> None:
    task_id = done_task(sandbox, "-o", str(tmp_path / "out"), "-i", "sandbox_outputs=2")
    result = invoke("open", task_id, env={**sandbox_env(sandbox), **browser(shown)})
    assert result.code == 0, result.stderr
    assert shown.read_text().splitlines() == [str(tmp_path / "out" / f"{task_id}_{i}.png") for i in range(2)]


def test_open_a_task_not_downloaded_opens_its_urls(sandbox: ThreadedSandbox, shown: Path) -> None:
    task_id = done_task(sandbox)
    result = invoke("open", task_id, env={**sandbox_env(sandbox), **browser(shown)})
    assert result.code == 0, result.stderr
    assert shown.read_text().splitlines() == [f"{sandbox.base_url}/cdn/outputs/{task_id}_0.png"]


def test_open_a_task_the_journal_does_not_know_asks_the_provider(sandbox: ThreadedSandbox, shown: Path) -> None:
    task_id = done_task(sandbox, "--no-history")
    result = invoke("open", task_id, env={**sandbox_env(sandbox), **browser(shown)})
    assert result.code == 0, result.stderr
    assert shown.read_text().splitlines() == [f"{sandbox.base_url}/cdn/outputs/{task_id}_0.png"]
    assert [r.path for r in sandbox.sandbox.requests][-1] == f"/api/v3/predictions/{task_id}"


@pytest.mark.skipif(sys.platform != "linux", reason="xdg-open is the desktop's viewer on Linux only")
def test_without_browser_the_desktops_xdg_open_is_given_the_file_or_the_url(sandbox: ThreadedSandbox,
                                                                           tmp_path: Path) -> None:
    """No BROWSER: the xdg-open first on PATH (a stand-in that records its arguments) is run once
    per output, with the downloaded file, or with the URL when the task was not downloaded."""
    bin_dir, called = tmp_path / "bin", tmp_path / "xdg-open-calls.txt"
    bin_dir.mkdir()
    stand_in = bin_dir / "xdg-open"
    stand_in.write_text(f"#!/bin/sh\necho \"$#:$1\" >> '{called}'\n")
    stand_in.chmod(0o755)
    env = {**sandbox_env(sandbox), "BROWSER": "", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    downloaded = done_task(sandbox, "-o", str(tmp_path / "out"))
    not_downloaded = done_task(sandbox)
    for task_id in (downloaded, not_downloaded):
        result = invoke("open", task_id, env=env)
        assert result.code == 0, result.stderr
    assert called.read_text().splitlines() == [
        f"1:{tmp_path / 'out' / f'{downloaded}_0.png'}",
        f"1:{sandbox.base_url}/cdn/outputs/{not_downloaded}_0.png",
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="elsewhere the desktop always has a viewer (open, start)")
def test_no_viewer_is_a_clear_error(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG")
    result = invoke("open", str(picture), env={"PATH": str(tmp_path / "empty"), "BROWSER": ""})
    assert result.code == 3
    assert f"Error: no program to open {picture} with" in result.stderr
    assert "Hint: install xdg-utils (xdg-open), or set BROWSER" in result.stderr


def test_a_viewer_that_fails_is_an_error(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG")
    result = invoke("open", str(picture), env={"BROWSER": f"{sys.executable} -c 'raise SystemExit(3)'"})
    assert result.code == 3 and "could not open" in result.stderr and "exit status 3" in result.stderr


def test_a_missing_file_is_a_usage_error() -> None:
    result = invoke("open", "out/nothing_0.png")
    assert result.code == 2 and "no such file: out/nothing_0.png" in result.stderr


@pytest.mark.parametrize(("value", "command"), [
    ("firefox %s", ["firefox", "URL"]),
    ("firefox", ["firefox", "URL"]),
    ("my viewer --new '%s'", ["my", "viewer", "--new", "URL"]),
    (f"first %s{__import__('os').pathsep}second", ["first", "URL"]),
])
def test_browser_is_read_as_webbrowser_reads_it(value: str, command: list[str]) -> None:
    assert viewer("URL", {"BROWSER": value}) == command
