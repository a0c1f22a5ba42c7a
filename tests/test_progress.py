"""Honest progress on a terminal (issue #13): the spinner says what is happening, downloads get
bars with bytes, speed and ETA, and log lines never run into the spinner.

g3w runs on a pseudo-terminal (``g3w_on_terminal``); what it draws there is read back, control
sequences included. Off a terminal none of it is printed (one in-process check).
"""

from __future__ import annotations

import re

import pytest
from conftest import ThreadedSandbox, g3w_on_terminal, sandbox_env
from inproc import invoke

from get3w_cli.cli.render import describe_retry
from get3w_cli.http import Retrying

FAST = ("--poll-max", "0.2")
SGR = re.compile(r"\x1b\[[0-9;]*m")
DEAD_URL = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused


def test_the_spinner_shows_the_phase_and_the_provider_status(sandbox: ThreadedSandbox) -> None:
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=1.5", "--via", "poll", *FAST,
                             env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    drawn = SGR.sub("", result.stderr)
    assert "polling · processing" in drawn


def test_the_spinner_says_rate_limited_and_when_the_retry_comes(sandbox: ThreadedSandbox) -> None:
    sandbox.sandbox.inject(status=429, count=1, method="POST", retry_after=1)
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", "--via", "poll", *FAST,
                             env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert "submitting · rate limited, retrying in 1 s" in SGR.sub("", result.stderr)


def test_the_spinner_counts_connection_retries() -> None:
    run = g3w_on_terminal("wait", "pred_abc", *FAST, env={"GET3W_BASE_URL": DEAD_URL, "GET3W_API_KEY": "sk_test_key"})
    assert run.code == 6, run.stderr
    assert re.search(r"connection refused, retry [2-5] of 5", SGR.sub("", run.stderr)), run.stderr


@pytest.mark.parametrize(("retry", "said"), [
    (Retrying("POST", 2, 5, 3.2, "rate limited", rate_limited=True), "rate limited, retrying in 3 s"),
    (Retrying("GET", 2, 5, 0.4, "connection refused"), "connection refused, retry 2 of 5"),
    (Retrying("GET", 4, 5, 4.0, "HTTP 503"), "HTTP 503, retry 4 of 5 in 4 s"),
])
def test_retry_notes_read_as_the_issue_asks(retry: Retrying, said: str) -> None:
    assert describe_retry(retry) == said


def test_a_large_download_shows_a_bar_with_bytes_speed_and_eta(sandbox: ThreadedSandbox, tmp_path: object) -> None:
    size = 3 * 1024 * 1024
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", "-i",
                             f"sandbox_output_bytes={size}", "--via", "poll", "-o", str(tmp_path), *FAST,
                             env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    drawn = SGR.sub("", result.stderr)
    bar = r"_0(\.png)?\s+━+\s+3\.\d/3\.\d MB\s+[\d.]+ [kMG]?B/s\s+(\d+:\d\d:\d\d|-:--:--)"
    assert re.search(bar, drawn), drawn[-2000:]


def test_log_lines_go_above_the_spinner_never_into_it(sandbox: ThreadedSandbox) -> None:
    result = g3w_on_terminal("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0.5", "--via", "poll", "--debug",
                             *FAST, env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    drawn = SGR.sub("", result.stderr)
    starts = [m.start() for m in re.finditer(r"(httpx|httpcore[.\w]*|asyncio): ", drawn)]
    assert len(starts) >= 4
    for start in starts:
        # Each log line starts a line of its own: after a newline, or after the spinner's line
        # was rubbed out (carriage return, erase line), never right after the spinner's text.
        assert start == 0 or drawn[:start].endswith(("\n", "\r", "\x1b[2K")), repr(drawn[start - 80:start + 20])


def test_off_a_terminal_status_and_retries_are_not_printed(sandbox: ThreadedSandbox) -> None:
    sandbox.sandbox.inject(status=429, count=1, method="POST", retry_after=0.1)
    result = invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0.3", "--via", "poll", *FAST,
                    env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert "rate limited" not in result.stderr and "processing" not in result.stderr


def test_the_spinner_line_is_phase_status_percentage_retry() -> None:
    """What each notify kind does to the spinner's line (``--via stream`` sends "progress")."""
    import io

    from rich.console import Console

    from get3w_cli.cli.progress import Activity

    activity = Activity(Console(file=io.StringIO(), force_terminal=True, width=100), "streaming")

    def line() -> str:
        return str(activity.progress.tasks[0].description)

    activity.say("status", "processing")
    activity.say("progress", "42%")
    assert line() == "streaming · processing · 42%"
    activity.say("retry", "rate limited, retrying in 3 s")
    assert line() == "streaming · processing · 42% · rate limited, retrying in 3 s"
    activity.say("progress", "57%")  # an answer came since: the retry is over
    assert line() == "streaming · processing · 57%"
    activity.say("phase", "downloading")  # a new phase keeps the last status, not the percentage
    assert line() == "downloading · processing"
    activity.say("status", "[red]x")  # provider text is never markup
    assert line() == "downloading · \\[red]x"


def test_the_http_retry_hook_hears_each_retry_before_its_pause(sandbox: ThreadedSandbox) -> None:
    import asyncio

    from get3w_cli.errors import RejectedError
    from get3w_cli.http import HttpSession
    from get3w_cli.providers import error_parser

    sandbox.sandbox.inject(status=503, count=2, method="GET")
    heard: list[Retrying] = []

    async def main() -> None:
        async with HttpSession(on_retry=heard.append) as http:
            client = http.api(sandbox.base_url, "sk_test_key", errors=error_parser(("get3w", "v3")))
            with pytest.raises(RejectedError):  # after the two 503s: no such task
                await client.get("/api/v3/predictions/pred_none")

    asyncio.run(main())
    assert [(r.method, r.next_attempt, r.max_attempts, r.reason, r.rate_limited) for r in heard] == [
        ("GET", 2, 5, "HTTP 503", False), ("GET", 3, 5, "HTTP 503", False)]
