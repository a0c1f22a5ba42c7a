"""--preview (CONTRACT 12): image outputs drawn on the terminal, by the escapes or cells written.

g3w runs on a pseudo-terminal against the sandbox; ``TERM`` / ``TERM_PROGRAM`` and the answers
the test types back as the terminal decide the protocol (kitty, iTerm2, sixel, half-blocks).
The tests that draw need the preview extra (textual-image and Pillow) and skip without it.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSandbox, g3w_on_terminal, sandbox_env
from inproc import invoke

from get3w_cli.cli.preview import BLOCKS, ITERM, KITTY, SIXEL, choose_protocol, fit

needs_extra = pytest.mark.skipif(find_spec("textual_image") is None or find_spec("PIL") is None,
                                 reason="the preview extra (textual-image, Pillow) is not installed")
DA1 = b"\x1b[c"  # "which terminal are you": the query g3w sends when TERM does not say
SIXEL_TERMINAL = b"\x1b[?62;4;22c"  # a VT240-like answer that lists sixel (4)
PLAIN_TERMINAL = b"\x1b[?62;22c"  # an answer without sixel
SIZE = (80, 24)


@pytest.fixture
def done_task(sandbox: ThreadedSandbox) -> str:
    """A completed sandbox task with one PNG output."""
    submitted = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", env=sandbox_env(sandbox))
    assert submitted.code == 0, submitted.stderr
    return submitted.stdout.strip()


def preview(sandbox: ThreadedSandbox, task_id: str, *extra: str, env: dict[str, str] | None = None,
            answers: dict[bytes, bytes] | None = None) -> tuple[int, str, str]:
    result = g3w_on_terminal("get", task_id, *extra, env={**sandbox_env(sandbox), **(env or {})},
                             answers=answers if answers is not None else {}, size=SIZE)
    return result.code, result.stdout, result.stderr


@needs_extra
def test_kitty_named_by_term_gets_kitty_graphics_on_stderr(sandbox: ThreadedSandbox, done_task: str) -> None:
    code, out, err = preview(sandbox, done_task, "--preview", env={"TERM": "xterm-kitty"})
    assert code == 0, err
    assert "\x1b_Ga=T,f=100," in err and "iVBORw0KGgo" in err  # a PNG, transmitted and displayed
    assert re.search(r"\x1b_Ga=T,f=100,q=2,c=(\d+),r=(\d+)", err)
    assert "\x1b" not in out and out.strip().endswith(".png")  # stdout carries only the data


@needs_extra
def test_download_and_wait_preview_too(sandbox: ThreadedSandbox, done_task: str, tmp_path: Path) -> None:
    """`download --preview` and `wait --preview` draw what they fetched, as `get --preview` does."""
    env = {**sandbox_env(sandbox), "TERM": "xterm-kitty"}
    for command in (["download", done_task, "-o", str(tmp_path)], ["wait", done_task]):
        result = g3w_on_terminal(*command, "--preview", env=env, answers={}, size=SIZE)
        assert result.code == 0, result.stderr
        assert "\x1b_Ga=T,f=100," in result.stderr, command
    assert list(tmp_path.glob(f"{done_task}_0.*"))


@pytest.mark.parametrize("term", ["xterm-kitty", "xterm"])
@needs_extra
def test_run_previews_what_it_made(sandbox: ThreadedSandbox, term: str) -> None:
    """`run --preview` on a terminal draws the image it waited for on stderr: kitty graphics when
    TERM says kitty, else coloured half-blocks that fit the window; stdout stays the output's URL."""
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", "--via", "poll", "--preview",
                             env={**sandbox_env(sandbox), "TERM": term}, answers={}, size=SIZE)
    assert result.code == 0, result.stderr
    [url] = result.stdout.split()
    assert url.startswith(sandbox.base_url) and url.endswith(".png")
    if term == "xterm-kitty":
        assert "\x1b_Ga=T,f=100," in result.stderr and "iVBORw0KGgo" in result.stderr
    else:
        rows = [line for line in result.stderr.split("\n") if "▀" in line]
        assert rows and all("\x1b[" in row for row in rows) and len(rows) <= SIZE[1]
        assert "\x1b_G" not in result.stderr


@needs_extra
def test_iterm2_named_by_term_program_gets_an_inline_image(sandbox: ThreadedSandbox, done_task: str) -> None:
    code, _, err = preview(sandbox, done_task, "--preview", env={"TERM_PROGRAM": "iTerm.app"})
    assert code == 0, err
    assert "\x1b]1337;File=inline=1;" in err and "\x1b_G" not in err


@needs_extra
def test_a_terminal_that_answers_sixel_gets_sixel(sandbox: ThreadedSandbox, done_task: str) -> None:
    code, _, err = preview(sandbox, done_task, "--preview", answers={DA1: SIXEL_TERMINAL})
    assert code == 0, err
    assert re.search(r"\x1bP[0-9;]*q", err), err[-400:]  # a sixel DCS string
    assert "▀" not in err


@pytest.mark.parametrize("answers", [{DA1: PLAIN_TERMINAL}, {}], ids=["answers-without-sixel", "no-answer"])
@needs_extra
def test_other_terminals_get_coloured_half_blocks_that_fit_the_window(sandbox: ThreadedSandbox, done_task: str,
                                                                       answers: dict[bytes, bytes]) -> None:
    code, _, err = preview(sandbox, done_task, "--preview", answers=answers)
    assert code == 0, err
    rows = [line for line in err.split("\n") if "▀" in line]
    assert rows and all("\x1b[" in row for row in rows)  # coloured cells
    cells = [len(re.sub(r"\x1b\[[0-9;]*m", "", row).strip()) for row in rows]
    assert max(cells) <= SIZE[0] and len(rows) <= SIZE[1]


@needs_extra
def test_config_defaults_preview_and_no_preview(sandbox: ThreadedSandbox, done_task: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[defaults]\npreview = true\n")
    env = {"G3W_CONFIG": str(config), "TERM": "xterm-kitty"}
    assert "\x1b_G" in preview(sandbox, done_task, env=env)[2]
    assert "\x1b_G" not in preview(sandbox, done_task, "--no-preview", env=env)[2]
    assert "\x1b_G" not in preview(sandbox, done_task, env={"TERM": "xterm-kitty"})[2]  # off by default


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(sandbox: ThreadedSandbox, done_task: str) -> None:
    result = invoke("get", done_task, "--preview", env={**sandbox_env(sandbox), "TERM": "xterm-kitty"})
    assert result.code == 0, result.stderr
    assert "\x1b" not in result.stderr and "▀" not in result.stderr and "preview" not in result.stderr


def test_without_the_extra_one_hint_line(sandbox: ThreadedSandbox, done_task: str, tmp_path: Path) -> None:
    """textual-image made unimportable (a package of that name that refuses to load, first on the path)."""
    hidden = tmp_path / "hidden" / "textual_image"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not installed, for the test')\n")
    path = f"{hidden.parent}:{Path(__file__).resolve().parents[1]}"
    code, out, err = preview(sandbox, done_task, "--preview", env={"PYTHONPATH": path, "TERM": "xterm-kitty"})
    assert code == 0 and out.strip().endswith(".png")
    assert re.search(r"Hint: .*--preview needs textual-image and Pillow: pip install 'g3w\[preview\]'", err)
    assert "\x1b_G" not in err and "Traceback" not in err


class VideoProvider:
    """A Get3W v3 stand-in whose completed task's one output is a video."""

    def __init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = {"id": "pred_video", "model": "get3w/wan-2.1-i2v-720p", "status": "completed",
                        "outputs": [f"{stand_in.url}/cdn/clip.mp4"]}
                body = json.dumps({"code": 200, "message": "success", "data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def video_provider() -> Iterator[VideoProvider]:
    provider = VideoProvider()
    yield provider
    provider.close()


@needs_extra
@pytest.mark.skipif(find_spec("av") is not None or find_spec("cv2") is not None,
                    reason="a video decoder is installed: the first frame would be shown")
def test_a_video_without_a_decoder_is_said_to_be_a_video(video_provider: VideoProvider) -> None:
    result = g3w_on_terminal("get", "pred_video", "--preview", answers={}, size=SIZE,
                             env={"GET3W_BASE_URL": video_provider.url, "GET3W_API_KEY": "sk_test_key",
                                  "TERM": "xterm-kitty"})
    assert result.code == 0, result.stderr
    assert "clip.mp4 is a video: no preview" in result.stderr and "\x1b_G" not in result.stderr


@pytest.mark.parametrize(("env", "answer", "protocol"), [
    ({"TERM": "xterm-kitty"}, None, KITTY),
    ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, None, KITTY),
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"}, None, ITERM),
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, None, ITERM),
    ({"TERM": "tmux-256color", "TERM_PROGRAM": "iTerm.app", "TMUX": "/tmp/t,1,0"}, "\x1b[?62;4c", SIXEL),
    ({"TERM": "xterm"}, "\x1b[?63;1;4;22c", SIXEL),
    ({"TERM": "xterm"}, "\x1b[?64;1;2;6;22c", BLOCKS),
    ({"TERM": "xterm"}, None, BLOCKS),
])
def test_the_protocol_from_the_environment_then_the_terminal_answer(env: dict[str, str], answer: str | None,
                                                                    protocol: str) -> None:
    asked: list[str] = []

    def ask(query: str, end: str) -> str | None:
        asked.append(query)
        return answer

    assert choose_protocol(env, ask) == protocol
    assert asked == ([] if protocol in (KITTY, ITERM) else ["\x1b[c"])


@pytest.mark.parametrize(("image", "window", "cells"), [
    ((64, 64), (80, 24), (26, 13)),  # small: enlarged at most 4 times
    ((2000, 500), (80, 24), (80, 10)),  # wide: as wide as the window
    ((500, 2000), (80, 24), (10, 21)),  # tall: as tall as the window less the rows kept
])
def test_the_image_fits_the_window(image: tuple[int, int], window: tuple[int, int], cells: tuple[int, int]) -> None:
    assert fit(image, window, (10, 20)) == cells


def test_the_extra_is_optional_and_not_loaded_by_other_commands() -> None:
    """--preview's libraries are imported only when an image is drawn."""
    import subprocess

    probe = ("import sys\nsys.argv = ['g3w', 'get', '--help']\nfrom get3w_cli.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('textual_image', 'PIL') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("[]"), done.stdout


def test_config_defaults_preview_takes_a_boolean(tmp_path: Path) -> None:
    env = {"G3W_CONFIG": str(tmp_path / "config.toml")}
    bad = invoke("config", "set", "defaults.preview", "maybe", env=env)
    assert bad.code == 2 and "invalid defaults.preview 'maybe'" in bad.stderr
    assert invoke("config", "set", "defaults.preview", "yes", env=env).code == 0
    assert "preview = true" in (tmp_path / "config.toml").read_text()
    shown = invoke("config", "get", "defaults.preview", env=env)
    assert shown.code == 0 and shown.stdout.strip().lower() == "true"
