"""Each command imports only what it uses: the short commands load neither aiohttp nor pyngrok
nor the sandbox (issue #9; bench/startup.py measures what that is worth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ThreadedSandbox, sandbox_env

HEAVY = ("aiohttp", "pyngrok", "get3w_cli.sandbox", "get3w_cli.webhooks.listener", "pydantic", "rich",
         *(("anyio._backends._asyncio", "anyio._core._synchronization") if sys.version_info >= (3, 11) else ()))
PROBE = (
    "import json, os, sys\n"
    "sys.argv = ['g3w', *json.loads(os.environ['PROBE_ARGV'])]\n"
    "from get3w_cli.cli import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "heavy = json.loads(os.environ['PROBE_HEAVY'])\n"
    "os.write(2, ('\\nPROBE ' + json.dumps([code, [m for m in heavy if m in sys.modules]])).encode())\n"
)


def loaded(argv: list[str], env: dict[str, str], heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    """(exit code, which of ``heavy`` were loaded) of ``g3w ARGV`` in a fresh interpreter."""
    full = {**os.environ, **env, "PROBE_ARGV": json.dumps(argv), "PROBE_HEAVY": json.dumps(heavy)}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=full, timeout=60)
    line = result.stderr.rsplit("\nPROBE ", 1)
    assert len(line) == 2, result.stderr
    code, found = json.loads(line[1])
    return code, found


@pytest.mark.parametrize("argv", [
    ["get", "TASK"], ["submit", "flux-dev", "-p", "x"], ["cancel", "TASK"], ["wait", "TASK"], ["history"],
    ["config", "list"], ["models"], ["balance"], ["doctor"], ["--help"], ["run", "--help"],
])
def test_short_commands_load_neither_aiohttp_nor_pyngrok_nor_the_sandbox(sandbox: ThreadedSandbox,
                                                                         argv: list[str]) -> None:
    """Run against the sandbox (a real request each), the command exits as usual and its process
    never imported the webhook server, the tunnel, the sandbox, pydantic, rich, or (3.11+) anyio's
    asyncio layer, which httpcore would load for its locks (asyncio_backend.use_asyncio_primitives)."""
    from inproc import invoke

    env = sandbox_env(sandbox)
    task_id = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", env=env).stdout.strip()
    code, heavy = loaded([task_id if arg == "TASK" else arg for arg in argv], env)
    assert code in (0, 2, 3), code  # cancel of a finished task is 2; doctor without a config is 3
    assert heavy == []


@pytest.mark.parametrize("argv", [["get", "TASK"], ["history"], ["models"], ["--help"]])
def test_commands_that_run_no_task_do_not_load_the_task_core(sandbox: ThreadedSandbox, argv: list[str]) -> None:
    """Looking at a task (get) or at lists loads neither the submit/wait core nor the waiting engine
    (get's exit code for a task without outputs is decided by records.raise_unless_completed)."""
    from inproc import invoke

    env = sandbox_env(sandbox)
    task_id = invoke("submit", "flux-dev", "-p", "x", "-i", "sandbox_duration=0", env=env).stdout.strip()
    code, found = loaded([task_id if arg == "TASK" else arg for arg in argv], env,
                         ("get3w_cli.tasks", "get3w_cli.waiting", "get3w_cli.callbacks"))
    assert code == 0
    assert found == []


def test_the_probe_sees_what_a_command_imports(sandbox: ThreadedSandbox) -> None:
    """The probe is not blind: run --sandbox loads the sandbox (and its aiohttp)."""
    code, heavy = loaded(["run", "flux-dev", "-p", "x", "--sandbox", "--via", "poll"], {})
    assert code == 0
    assert {"aiohttp", "get3w_cli.sandbox"} <= set(heavy)
